"""Region-aware fusion (spec §3 step 2) and ROI masks: exactness, soft band, the 25 variants."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from miqa.database.fusion import SOFT_KERNEL, fuse, region_variants, scaled_kernel, soft_mask
from miqa.database.masks import MASK_SOURCES, center_prior_mask, find_mask_files, source_mask
from miqa.datasets.naming import parse_name, variant_names
from miqa.distortions import distortion_levels


def _images(h: int = 60, w: int = 80, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _photo(h: int = 96, w: int = 128) -> np.ndarray:
    from skimage import data

    return cv2.resize(data.chelsea(), (w, h), interpolation=cv2.INTER_AREA)


def _box_mask(h: int = 60, w: int = 80) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[10:50, 15:65] = True
    return mask


def test_kernel_scales_with_long_side():
    assert scaled_kernel(SOFT_KERNEL, (375, 500)) == 65
    assert scaled_kernel(SOFT_KERNEL, (320, 427)) == 57
    assert scaled_kernel(SOFT_KERNEL, (10, 12)) == 3
    assert all(scaled_kernel(SOFT_KERNEL, (s, s)) % 2 == 1 for s in range(1, 700, 37))


@pytest.mark.parametrize('value, expected', [(True, 0), (False, 1)])
def test_constant_masks_are_exact(value, expected):
    fg, bg = _images()
    mask = np.full(fg.shape[:2], value)
    out = fuse(fg, bg, mask)
    assert out.dtype == np.uint8 and out.tobytes() == (fg, bg)[expected].tobytes()
    assert np.all(soft_mask(mask).m == float(value))


def test_core_and_background_exact_band_soft():
    fg, bg = _images(100, 140)
    mask = np.zeros((100, 140), bool)
    mask[30:70, 40:100] = True
    soft = soft_mask(mask, soft_kernel=15, core_kernel=8, reference_side=100)
    out = fuse(fg, bg, soft)
    assert soft.core.any() and soft.background.any() and soft.band.any()
    assert np.array_equal(out[soft.core], fg[soft.core])
    assert np.array_equal(out[soft.background], bg[soft.background])
    assert soft.m.dtype == np.float32 and 0.0 <= soft.m.min() and soft.m.max() <= 1.0
    assert np.all(soft.m[soft.core] == 1.0) and np.all(soft.m[soft.background] == 0.0)
    band = soft.m[soft.band]
    assert band.min() > 0.0 and band.max() <= 1.0
    # continuous: no seam at the core's edge (steps of a smooth ramp only)
    assert np.abs(np.diff(soft.m, axis=0)).max() < 0.25 and np.abs(np.diff(soft.m, axis=1)).max() < 0.25
    # inside the band the result lies between fg and bg up to the light blur
    t = soft.m[..., None]
    linear = fg.astype(np.float32) * t + bg.astype(np.float32) * (1 - t)
    assert np.abs(out.astype(np.float32) - linear)[soft.band].mean() < 40


def test_flat_images_fuse_exactly():  # the light blur does not change flat regions
    fg = np.full((60, 80, 3), (200, 10, 90), np.uint8)
    bg = np.full((60, 80, 3), (20, 30, 40), np.uint8)
    soft = soft_mask(_box_mask())
    assert fuse(fg, fg, soft).tobytes() == fg.tobytes()
    out = fuse(fg, bg, soft).astype(int)
    m = soft.m[..., None]
    assert np.abs(out - (fg * m + bg * (1 - m))).max() <= 12  # gradient slightly smoothed


def test_fuse_rejects_size_mismatch():
    fg, bg = _images()
    with pytest.raises(ValueError, match='sizes differ'):
        fuse(fg, bg[:-1], _box_mask())


@pytest.mark.parametrize('distortion', ['gaussian_noise', 'defocus_blur'])
def test_region_variants_official_names_and_content(distortion):
    img = _photo()
    mask = np.zeros(img.shape[:2], bool)
    mask[20:80, 30:100] = True
    soft = soft_mask(mask)
    variants = region_variants(img, distortion, 7, soft, 'n01_photo')
    assert list(variants) == variant_names('n01_photo', distortion)
    levels = distortion_levels(img, distortion, 7)
    for name, image in variants.items():
        info = parse_name(name)
        assert info.src_id == 'n01_photo' and info.distortion == distortion
        assert image.shape == img.shape and image.dtype == np.uint8
        fg, bg = levels[info.fg_level - 1], levels[info.bg_level - 1]
        if info.region == 'UD':
            assert image.tobytes() == fg.tobytes()
        else:
            assert np.array_equal(image[soft.core], fg[soft.core])
            assert np.array_equal(image[soft.background], bg[soft.background])
    assert sum(parse_name(n).region == 'ROI' for n in variants) == 10


def test_region_variants_accept_a_binary_mask():
    img = _photo(48, 64)
    a = region_variants(img, 'contrast', 1, center_prior_mask(img.shape[:2]), 's')
    b = region_variants(img, 'contrast', 1, soft_mask(center_prior_mask(img.shape[:2])), 's')
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)


# ---------------------------------------------------------------- masks
def test_mask_from_folder_resized(tmp_path: Path):
    img = _photo()
    big = np.zeros((192, 256), np.uint8)
    big[40:150, 60:200] = 200
    cv2.imwrite(str(tmp_path / 'cat.png'), big)
    cv2.imwrite(str(tmp_path / 'empty.png'), np.zeros((96, 128), np.uint8))
    (tmp_path / 'notes.txt').write_text('not a mask')
    files = find_mask_files(str(tmp_path))
    assert set(files) == {'cat', 'empty'}
    mask, origin = source_mask(img, files['cat'])
    assert origin == 'file' and mask.shape == img.shape[:2]
    assert mask[50, 64] and not mask[2, 2]
    assert abs(mask.mean() - (110 * 140) / (192 * 256)) < 0.02
    mask, origin = source_mask(img, files['empty'])  # empty file mask: not usable, falls back
    assert origin in MASK_SOURCES[1:] and mask.any() and not mask.all()


def test_mask_fallbacks_never_empty_or_full():
    mask, origin = source_mask(_photo())
    assert origin in ('spectral_residual', 'center_prior')
    assert mask.dtype == bool and 0 < mask.mean() < 1
    flat = np.full((50, 70, 3), 128, np.uint8)  # no saliency at all
    mask, origin = source_mask(flat)
    assert origin == 'center_prior' and abs(mask.mean() - 1 / 3) < 0.05
    for size in [(2, 2), (3, 7), (9, 1)]:
        m = center_prior_mask(size)
        assert m.any() and not m.all()
    assert source_mask(_photo(), '/nonexistent/mask.png')[1] != 'file'
