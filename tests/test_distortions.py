"""The 10 MIQD distortions: PSNR-ranked levels, determinism, input handling, registry."""
import cv2
import numpy as np
import pytest
from skimage import data

from miqa.distortions import (
    LEVEL_RANKS,
    apply_distortion,
    candidates,
    distortion_levels,
    distortion_names,
    get_distortion,
    psnr,
    rank_by_psnr,
    to_rgb_uint8,
)
from miqa.distortions.blur import fit_kernel, local_shuffle, motion_kernel
from miqa.distortions.weather import FRACTAL_MAX_SIZE, fog_layer, plasma_fractal
from miqa.registry import DISTORTIONS

NAMES = ['contrast', 'pixelate', 'jpeg_compression', 'motion_blur', 'defocus_blur', 'glass_blur',
         'fog', 'snow', 'darkness', 'gaussian_noise']
RANDOM = {'motion_blur', 'glass_blur', 'fog', 'snow', 'darkness', 'gaussian_noise'}


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


PHOTOS = {'astronaut': _resize(data.astronaut(), 128, 128), 'chelsea': _resize(data.chelsea(), 150, 100)}
SMALL = _resize(data.coffee(), 40, 30)


def test_registry_holds_exactly_the_ten_types():
    assert sorted(DISTORTIONS.module_dict) == sorted(NAMES) == distortion_names()
    for name in NAMES:
        fn = get_distortion(name)
        assert len(fn.params) == 12
        assert fn.category in ('digital', 'blur', 'environmental', 'noise')


def test_unknown_name_suggests_close_names():
    with pytest.raises(KeyError, match='Did you mean: gaussian_noise'):
        apply_distortion(SMALL, 'gaussian_nosie', 1)
    with pytest.raises(KeyError):
        candidates(SMALL, 'miqa.nothing')


@pytest.mark.parametrize('photo', sorted(PHOTOS))
@pytest.mark.parametrize('name', NAMES)
def test_levels_strictly_decrease_in_psnr(name, photo):
    img = PHOTOS[photo]
    levels = distortion_levels(img, name, seed=7)
    scores = [psnr(img, lv) for lv in levels]
    assert all(a > b for a, b in zip(scores, scores[1:])), scores
    for lv in levels:
        assert lv.dtype == np.uint8 and lv.shape == img.shape and lv.flags.c_contiguous


@pytest.mark.parametrize('name', NAMES)
def test_levels_are_psnr_ranks_1_5_8_10_12(name):
    cands = candidates(SMALL, name, seed=3)
    order = sorted(range(12), key=lambda i: -psnr(SMALL, cands[i]))
    levels = distortion_levels(SMALL, name, seed=3)
    for level, rank in enumerate(LEVEL_RANKS, start=1):
        assert np.array_equal(levels[level - 1], cands[order[rank - 1]])
        assert np.array_equal(apply_distortion(SMALL, name, level, seed=3), levels[level - 1])


@pytest.mark.parametrize('name', NAMES)
def test_seed_determinism(name):
    first = candidates(SMALL, name, seed=11)
    again = candidates(SMALL.copy(), name, seed=11)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(first, again))
    other = candidates(SMALL, name, seed=12)
    same = all(np.array_equal(a, b) for a, b in zip(first, other))
    assert same == (name not in RANDOM)


def test_opencv_thread_count_does_not_change_bytes():
    img = _resize(data.astronaut(), 320, 240)
    threads = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        single = [distortion_levels(img, name, seed=2)[4] for name in NAMES]
        cv2.setNumThreads(max(2, threads))
        multi = [distortion_levels(img, name, seed=2)[4] for name in NAMES]
    finally:
        cv2.setNumThreads(threads)
    assert all(np.array_equal(a, b) for a, b in zip(single, multi))


@pytest.mark.parametrize('shape', [(5, 7), (7, 5), (1, 1), (1, 9), (2, 3)])
@pytest.mark.parametrize('name', NAMES)
def test_tiny_images(name, shape):
    img = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    for level in distortion_levels(img, name, seed=1):
        assert level.shape == (*shape, 3) and level.dtype == np.uint8


def test_identical_candidates_keep_table_order():
    flat = np.full((4, 4, 3), 90, np.uint8)
    assert psnr(flat, flat) == float('inf')
    cands = candidates(flat, 'contrast')  # a flat image has no contrast to lose: all 12 identical
    assert rank_by_psnr(flat, cands) == list(range(12))
    assert np.array_equal(apply_distortion(flat, 'contrast', 5), flat)


@pytest.mark.parametrize('name', ['gaussian_noise', 'glass_blur', 'jpeg_compression'])
def test_input_conversions(name):
    rgb = SMALL
    expected = distortion_levels(rgb, name, seed=5)

    def same(image):
        return all(np.array_equal(a, b) for a, b in zip(distortion_levels(image, name, seed=5), expected))

    alpha = np.full(rgb.shape[:2] + (1,), 17, np.uint8)
    assert same(np.concatenate([rgb, alpha], axis=2))  # RGBA: alpha dropped
    assert same(rgb.astype(np.uint16) * 257)  # uint16: x / 257
    assert same(rgb / 255.0)  # float in [0, 1]
    assert same(np.asfortranarray(rgb))
    gray = rgb[..., 1]
    gray_expected = distortion_levels(np.repeat(gray[..., None], 3, axis=2), name, seed=5)
    for image in (gray, gray[..., None]):
        out = distortion_levels(image, name, seed=5)
        assert all(np.array_equal(a, b) for a, b in zip(out, gray_expected))
        assert out[0].shape == rgb.shape


def test_to_rgb_uint8_rules():
    assert to_rgb_uint8(np.array([[0, 128, 65535]], np.uint16)).tolist() == [[[0] * 3, [0] * 3, [255] * 3]]
    floats = to_rgb_uint8(np.array([[0.0, -0.0005, 0.5, 1.0005]]))  # 1e-3 of slack, clipped
    assert floats.tolist() == [[[0] * 3, [0] * 3, [128] * 3, [255] * 3]]
    # one rule with the API (miqa.utils.image): NaN, infinity and values outside [0, 1] are refused
    for bad, match in ((np.nan, 'NaN'), (np.inf, 'infinite'), (-1.0, r'\[0, 1\]'), (2.0, r'\[0, 1\]')):
        with pytest.raises(ValueError, match=match):
            to_rgb_uint8(np.array([[bad, 0.5]]))
    assert to_rgb_uint8(np.array([[True, False]])).tolist() == [[[255] * 3, [0] * 3]]
    for dtype in (np.float32, np.float64):  # the caller's image is never written to
        image = np.full((4, 4, 3), 0.25, dtype)
        assert to_rgb_uint8(image)[0, 0, 0] == 64 and np.all(image == 0.25)
        assert apply_distortion(image, 'contrast', 3, seed=0).dtype == np.uint8 and np.all(image == 0.25)
    with pytest.raises(ValueError, match='empty'):
        to_rgb_uint8(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(ValueError, match='shape'):
        to_rgb_uint8(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(TypeError, match='int32'):
        to_rgb_uint8(np.zeros((4, 4), np.int32))


def test_bad_level_and_seed():
    for level in (0, 6, 2.0, True):
        with pytest.raises(ValueError, match='level'):
            apply_distortion(SMALL, 'contrast', level)
    with pytest.raises(ValueError, match='seed'):
        apply_distortion(SMALL, 'contrast', 1, seed=-1)


def test_local_shuffle_is_a_bounded_permutation():
    rng = np.random.default_rng(0)
    h, w, delta = 40, 300, 3
    index = np.arange(h * w, dtype=np.uint32).reshape(h, w)
    for axis in (0, 1):
        out = local_shuffle(index, delta, rng, axis)
        assert np.array_equal(np.sort(out.ravel()), index.ravel())
        rows, cols = np.divmod(out.astype(np.int64), w)
        moved, fixed = (rows, cols) if axis == 0 else (cols, rows)
        position = np.indices((h, w))[axis]
        assert np.array_equal(fixed, np.indices((h, w))[1 - axis])
        assert np.abs(moved - position).max() <= 2 * delta + 1
        assert np.abs(moved - position).mean() > 1.0


def test_kernels():
    k = motion_kernel(10, 3, 0.0)
    assert k.shape == (1, 41) and np.isclose(k.sum(), 1) and k[0, :20].sum() == 0  # one-sided line
    assert np.isclose(motion_kernel(15, 5, 37.0).sum(), 1)
    small = fit_kernel(np.ones((9, 9)), 2, 1)
    assert small.shape == (3, 1) and np.isclose(small.sum(), 1)


def test_fog_fractal_sizes():
    rng = np.random.default_rng(0)
    grid = plasma_fractal(64, 2.0, rng)
    assert grid.shape == (64, 64) and grid.min() == 0 and grid.max() == 1
    with pytest.raises(ValueError):
        plasma_fractal(48, 2.0, rng)
    for shape in [(1, 1), (7, 5), (30, 200), (FRACTAL_MAX_SIZE + 200, 20)]:
        layer = fog_layer(*shape, 1.7, rng)
        assert layer.shape == shape and layer.dtype == np.float32
