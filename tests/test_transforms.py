"""miqa.datasets.transforms against docs/CONTRACTS.md and the reference torchvision pipeline."""
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
