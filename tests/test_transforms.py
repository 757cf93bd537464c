"""miqa.datasets.transforms against docs/CONTRACTS.md and the reference torchvision pipeline."""
import functools

import cv2
import numpy as np
import pytest
import torch
import torchvision.transforms as T
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope
from PIL import Image

from miqa.datasets import transforms as tf
from miqa.registry import TRANSFORMS
from miqa.utils.image import read_rgb


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (37, 50, 3), dtype=np.uint8)


@pytest.fixture
def log_calls(monkeypatch) -> list:
    """Messages the transforms log."""
    calls = []
    monkeypatch.setattr(tf, 'print_log', lambda msg, **kwargs: calls.append(msg))
    return calls


def _write(path, img) -> str:
    assert cv2.imwrite(str(path), img)
    return str(path)


def test_load_image_converts_to_rgb_uint8(tmp_path, rgb):
    out = tf.LoadImage()(dict(img_path=_write(tmp_path / 'c.png', rgb[:, :, ::-1])))
    assert out['img'].dtype == np.uint8 and out['img'].flags.c_contiguous
    np.testing.assert_array_equal(out['img'], rgb)
    assert out['valid'] is True and out['img_shape'] == (37, 50)

    gray = rgb[:, :, 0]
    out = tf.LoadImage()(dict(img_path=_write(tmp_path / 'g.png', gray)))
    np.testing.assert_array_equal(out['img'], np.repeat(gray[:, :, None], 3, axis=2))

    bgra = np.dstack([rgb[:, :, ::-1], np.full(gray.shape, 7, np.uint8)])
    np.testing.assert_array_equal(tf.LoadImage()(dict(img_path=_write(tmp_path / 'a.png', bgra)))['img'], rgb)

    deep = rgb[:, :, ::-1].astype(np.uint16) * 257
    np.testing.assert_array_equal(tf.LoadImage()(dict(img_path=_write(tmp_path / 'd.png', deep)))['img'], rgb)


@pytest.mark.parametrize('kind', ['garbage', 'zero_byte', 'missing'])
def test_load_image_on_error(tmp_path, kind, log_calls):
    path = tmp_path / 'bad.png'
    if kind == 'garbage':
        path.write_bytes(b'\x89PNG this is not an image' * 10)
    elif kind == 'zero_byte':
        path.write_bytes(b'')
    skip = tf.LoadImage(on_error='skip')
    assert skip(dict(img_path=str(path))) is None
    assert skip(dict(img_path=str(path))) is None
    assert str(path) in log_calls[-1] and '2 unreadable' in log_calls[-1]

    flagged = tf.LoadImage(on_error='flag')(dict(img_path=str(path), gt_score=0.5))
    assert flagged['valid'] is False and flagged['gt_score'] == 0.5
    assert flagged['img'].shape == (288, 288, 3) and not flagged['img'].any()

    with pytest.raises(OSError, match='bad.png'):
        tf.LoadImage(on_error='error')(dict(img_path=str(path)))
    with pytest.raises(ValueError, match='on_error'):
        tf.LoadImage(on_error='ignore')


def test_resize_matches_torchvision_on_pil(rgb):
    out = tf.Resize((29, 64))(dict(img=rgb))
    expected = np.asarray(T.Resize((29, 64))(Image.fromarray(rgb)))
    assert out['img'].shape == (29, 64, 3) and out['img_shape'] == (29, 64)
    assert np.abs(out['img'].astype(int) - expected).max() <= 1
    assert tf.Resize(24)(dict(img=rgb))['img'].shape == (24, 24, 3)


@functools.lru_cache(maxsize=1)
def _photos():
    """Real photos (scikit-image, scikit-learn), downscaled to MIQD's 500x375, clean and distorted."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    from miqa.distortions import get_distortion

    photos = [data.chelsea(), data.astronaut(), data.coffee(), *load_sample_images().images]
    out = []
    for i, photo in enumerate(photos):
        img = cv2.resize(photo, (500, 375), interpolation=cv2.INTER_AREA)
        fn = get_distortion(('gaussian_noise', 'jpeg_compression', 'motion_blur', 'snow', 'pixelate')[i])
        out += [img, fn(img, fn.params[-1], np.random.default_rng(i))]  # the most severe setting
    return tuple(out)


@pytest.mark.parametrize('hw', [(288, 288), (224, 224), (160, 160), (375, 500), (501, 377), (600, 700),
                                (7, 300), (300, 5), (1, 1)])
def test_torch_warp_is_pil_bilinear_within_one_level(hw):
    """The default warp stays within 1/255 of the reference (PIL's antialiased bilinear filter) on
    every pixel of real photos, down- and upscaling; OpenCV's INTER_LINEAR (no antialiasing) and
    INTER_AREA (a box filter) do not, which is what this comparison can tell apart."""
    worst, cv_worst = 0, 0
    for img in _photos():
        reference = tf.Resize(hw, backend='pil')(dict(img=img))['img'].astype(int)
        fast = tf.Resize(hw)(dict(img=img))['img']
        assert fast.shape == (*hw, 3) and fast.dtype == np.uint8
        worst = max(worst, np.abs(fast.astype(int) - reference).max())
        for flag in (cv2.INTER_LINEAR, cv2.INTER_AREA):
            cv_worst = max(cv_worst, np.abs(cv2.resize(img, hw[::-1], interpolation=flag).astype(int)
                                            - reference).max())
    assert worst <= 1
    if min(hw) < 300 and hw != (1, 1):  # downscaling: the antialiasing matters
        assert cv_worst > 1


def test_torch_warp_on_random_shapes_and_views():
    """Random sizes both ways, noise (the hardest case), and non-contiguous inputs (the crops and
    planar warps the pipeline hands on)."""
    rng = np.random.default_rng(1)
    for _ in range(60):
        h, w, th, tw = (int(v) for v in rng.integers(1, 400, 4))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        reference = tf.Resize((th, tw), backend='pil')(dict(img=img))['img'].astype(int)
        assert np.abs(tf.Resize((th, tw))(dict(img=img))['img'].astype(int) - reference).max() <= 1
    planar = tf.Resize((50, 60))(dict(img=rng.integers(0, 256, (80, 90, 3), dtype=np.uint8)))['img']
    crop = planar[5:45, 3:53]
    np.testing.assert_array_equal(tf._warp_torch(crop, (30, 20)),
                                  tf._warp_torch(np.ascontiguousarray(crop), (30, 20)))
    with pytest.raises(ValueError, match='backend'):
        tf.Resize(32, backend='cv2')


@pytest.mark.parametrize('size', [24, (20, 31), (36, 49), (40, 55)])
def test_center_crop_matches_torchvision(rgb, size):
    out = tf.CenterCrop(size)(dict(img=rgb))
    expected = np.asarray(T.CenterCrop(size)(Image.fromarray(rgb)))
    np.testing.assert_array_equal(out['img'], expected)
    assert out['img_shape'] == ((size, size) if isinstance(size, int) else size)


def test_random_crop_uses_numpy_global_rng(rgb):
    crop = tf.RandomCrop(24)
    np.random.seed(3)
    first = crop(dict(img=rgb))['img']
    np.random.seed(3)
    top, left = np.random.randint(0, 37 - 24 + 1), np.random.randint(0, 50 - 24 + 1)
    np.testing.assert_array_equal(first, rgb[top:top + 24, left:left + 24])
    with pytest.raises(ValueError, match='Resize'):
        tf.RandomCrop(64)(dict(img=rgb, img_path='x.png'))


@pytest.mark.parametrize('mean, std', [(tf.IMAGENET_MEAN, tf.IMAGENET_STD), (tf.VIT_MEAN, tf.VIT_STD)])
def test_normalize_matches_torchvision(rgb, mean, std):
    out = tf.Normalize(mean, std)(dict(img=rgb))['inputs']
    expected = T.Normalize(mean, std)(T.ToTensor()(Image.fromarray(rgb)))
    assert out.dtype == torch.float32 and out.shape == (3, 37, 50)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_region_view_is_the_normalised_warp(rgb):
    out = tf.RegionView(32, tf.VIT_MEAN, tf.VIT_STD)(dict(img=rgb))
    expected = tf.Normalize(tf.VIT_MEAN, tf.VIT_STD)(tf.Resize(32)(dict(img=rgb)))['inputs']
    torch.testing.assert_close(out['region_inputs'], expected, rtol=0, atol=0)
    assert out['img'] is rgb  # the image itself is left to the crop


def test_pack_inputs_never_none():
    packed = tf.PackMIQAInputs()(dict(inputs=torch.zeros(3, 4, 4), region_inputs=torch.ones(3, 8, 8),
                                      gt_score=np.float64(0.25), sample_idx=3, fg_level=5, bg_level=2,
                                      region='ROI', distortion='fog', src_id='s', img_path='/p.png'))
    assert set(packed) == {'inputs', 'data_samples', 'region_inputs'}
    assert packed['data_samples'] == dict(gt_score=0.25, sample_idx=3, valid=True, distortion='fog',
                                          region='ROI', src_id='s', img_path='/p.png', fg_level=5, bg_level=2)
    bare = tf.PackMIQAInputs()(dict(inputs=torch.zeros(3, 4, 4)))['data_samples']
    assert None not in bare.values() and np.isnan(bare['gt_score']) and bare['sample_idx'] == -1
    img = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    raw = tf.PackMIQAInputs()(dict(img=img))['inputs']  # no Normalize: uint8 CHW for the device
    assert raw.dtype == torch.uint8 and torch.equal(raw, torch.from_numpy(img).permute(2, 0, 1))


def test_device_normalisation_equals_cpu_normalize(rgb):
    """uint8 pipeline + MIQADataPreprocessor gives what Normalize/RegionView(mean, std) give."""
    from miqa.models.data_preprocessor import MIQADataPreprocessor

    results = tf.Resize(32)(dict(img=rgb))
    cpu = tf.PackMIQAInputs()(tf.Normalize(tf.VIT_MEAN, tf.VIT_STD)(
        tf.RegionView(32, tf.IMAGENET_MEAN, tf.IMAGENET_STD)(dict(results))))
    dev = tf.PackMIQAInputs()(tf.RegionView(32)(dict(results)))
    assert dev['inputs'].dtype == dev['region_inputs'].dtype == torch.uint8
    pre = MIQADataPreprocessor(mean=tf.VIT_MEAN, std=tf.VIT_STD)
    batch = pre(dict(inputs=dev['inputs'][None], region_inputs=dev['region_inputs'][None]))
    torch.testing.assert_close(batch['inputs'][0], cpu['inputs'], rtol=0, atol=1e-6)
    torch.testing.assert_close(batch['region_inputs'][0], cpu['region_inputs'], rtol=0, atol=1e-6)


def test_eval_pipeline_from_config_dicts(tmp_path, rgb):
    cfg = [dict(type='LoadImage', on_error='flag'), dict(type='Resize', size=288),
           dict(type='RegionView', size=288), dict(type='CenterCrop', size=224),
           dict(type='Normalize', mean=tf.VIT_MEAN, std=tf.VIT_STD), dict(type='PackMIQAInputs')]
    with DefaultScope.overwrite_default_scope('miqa'):
        pipeline = Compose(cfg)
    assert [type(t) for t in pipeline.transforms] == [TRANSFORMS.get(c['type']) for c in cfg]
    out = pipeline(dict(img_path=_write(tmp_path / 'x.png', rgb), gt_score=0.5, sample_idx=0))
    assert out['inputs'].shape == (3, 224, 224) and out['region_inputs'].shape == (3, 288, 288)
    assert out['data_samples']['valid'] is True
    bad = pipeline(dict(img_path=str(tmp_path / 'missing.png'), gt_score=0.5, sample_idx=1))
    assert bad['inputs'].shape == (3, 224, 224) and bad['data_samples']['valid'] is False


# ------------------------------------------------------------------ read_rgb: headers before decoding
def radiance_hdr_bomb(path, width: int = 14000, height: int = 14000) -> None:
    """A Radiance HDR file (new-style RLE) whose header says ``width x height``: each scanline is
    runs of 127 equal bytes, so 14000 x 14000 takes 12.5 MB on disk and 2.35 GB once decoded."""
    runs = bytearray()
    left = width
    while left:
        n = min(127, left)
        runs += bytes([128 + n, 128])
        left -= n
    line = bytes([2, 2, width >> 8, width & 255]) + bytes(runs) * 4  # R, G, B, E
    with open(path, 'wb') as f:
        f.write(f'#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {height} +X {width}\n'.encode())
        for _ in range(height):
            f.write(line)


def test_decompression_bomb_is_refused_from_its_header_fast_and_small(tmp_path):
    import resource
    import time

    bomb = tmp_path / 'holiday.jpg'  # a renamed .hdr: the header, not the name, decides
    radiance_hdr_bomb(bomb)
    assert 12e6 < bomb.stat().st_size < 13e6
    small = tmp_path / 'small.hdr'
    radiance_hdr_bomb(small, 50, 40)
    assert cv2.imread(str(small), cv2.IMREAD_UNCHANGED).shape == (40, 50, 3)  # a genuine HDR file
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    with pytest.raises(OSError, match=r'holiday\.jpg.*HDR header says 14000x14000 = 196 Mpx, above'):
        read_rgb(str(bomb))
    assert time.perf_counter() - start < 2.0
    # the 12.5 MB file is read once; decoding would have taken > 2 GB (5.5 GB measured before)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) * 1024 < 200e6
    with pytest.raises(OSError, match='floating point'):  # HDR never decodes to 8/16-bit pixels
        read_rgb(str(small))


def _encoded(ext: str, img: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(ext, img)
    assert ok, ext
    return buffer.tobytes()


def test_header_sizes_match_decoded_sizes_for_every_format_opencv_writes(rgb):
    from miqa.utils.image_header import read_header

    grey = rgb[:, :, 0]
    hdr = rgb.astype(np.float32) / 255
    samples = {'.bmp': rgb, '.jpg': rgb, '.png': rgb, '.webp': rgb, '.pbm': grey, '.pgm': grey, '.ppm': rgb,
               '.pam': rgb, '.pfm': hdr, '.sr': rgb, '.tiff': rgb, '.hdr': hdr, '.gif': rgb, '.avif': rgb,
               '.jp2': np.pad(rgb, ((0, 27), (0, 14), (0, 0)))}  # OpenJPEG wants >= 64 px here
    for ext, img in samples.items():
        try:
            data = _encoded(ext, img)
        except cv2.error:  # not in this OpenCV build
            continue
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        header = read_header(data)
        assert (header.height, header.width) == decoded.shape[:2], ext
        assert header.floating == (decoded.dtype == np.float32), ext


def test_every_decoder_of_this_opencv_build_has_a_header_reader():
    """OpenCV's Media I/O list (build information) against the signatures read_header knows."""
    import re

    from miqa.utils.image_header import SIGNATURES

    info = cv2.getBuildInformation()
    media = info[info.index('Media I/O'):info.index('Video I/O')]
    enabled = {name.upper() for name, value in re.findall(r'^ {4}(\w[\w ]*?):\s+(.+)$', media, re.M)
               if not value.startswith('NO')} - {'ZLIB'}  # codecs at 4 spaces; their details at 6
    known = {name for name, _, _ in SIGNATURES} | {'JPEG 2000', 'PXM'}
    aliases = {'JPEG 2000': 'JPEG2000', 'OPENEXR': 'EXR'}
    assert {aliases.get(name, name) for name in enabled} <= known, enabled


def test_truncated_and_foreign_files_say_what_they_are(tmp_path, rgb):
    big = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    data = _encoded('.jpg', big)
    (tmp_path / 'cut.jpg').write_bytes(data[:len(data) // 3])
    with pytest.raises(OSError, match=r'cut\.jpg: the JPEG data is truncated .*JPEG 400x300'):
        read_rgb(str(tmp_path / 'cut.jpg'))
    (tmp_path / 'model.jpg').write_bytes(b'PK\x03\x04 a zip file, not a photo')
    with pytest.raises(OSError, match=r'model\.jpg: not an image'):
        read_rgb(str(tmp_path / 'model.jpg'))
    png = _encoded('.png', rgb)
    (tmp_path / 'cut.png').write_bytes(png[:len(png) // 2])
    with pytest.raises(OSError, match=r'cut\.png: the PNG data is truncated'):
        read_rgb(str(tmp_path / 'cut.png'))


@pytest.mark.parametrize('shape', [(256, 341), (341, 256), (200, 200), (375, 500)])
def test_resize_keep_ratio_is_torchvisions_short_side_resize(shape):
    """Resize(int, keep_ratio=True): the short side becomes the size, the long side follows
    torchvision's ``Resize(int)`` rounding; pixels as PIL's bilinear warp to that size (1/255)."""
    import torchvision.transforms.functional as TF
    from PIL import Image

    from miqa.datasets.transforms import Resize

    img = (np.random.default_rng(sum(shape)).random((*shape, 3)) * 255).astype(np.uint8)
    out = Resize(224, keep_ratio=True)({'img': img})['img']
    expected = np.asarray(TF.resize(Image.fromarray(img), 224, interpolation=TF.InterpolationMode.BILINEAR))
    assert out.shape == expected.shape
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    with pytest.raises(ValueError, match='int size'):
        Resize((224, 224), keep_ratio=True)
