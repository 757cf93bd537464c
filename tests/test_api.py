"""MIQAModel and batch_assess (miqa/apis/inference.py, batch.py) on small random-weight models.

The RA-MIQA model is the real ``configs/ra_miqa_cls.py`` with 1-block ViTs and random weights
(saved to a checkpoint and loaded back, weights_only); the checks compare against independent
computations: the dataset's own pipeline from a file, PIL/OpenCV conversions, the model's
forward on the collated batch.
"""
import os
import pickle
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from PIL import Image

from machine_iqa import MIQAModel, RealTimeIQA, VideoMIQA, batch_assess
from miqa.apis.inference import ImagePreprocessor, collate, load_image
from miqa.hub import load_checkpoint_state_dict
from miqa.models.converters import TIMM_VIT_TO_MMSEG, rename_keys
from miqa.registry import TRANSFORMS
from miqa.testing.tiny_models import random_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def resnet18_config(path: Path) -> Path:
    path.write_text(f"""
_base_ = ['{ROOT / 'configs' / 'resnet18' / 'resnet18_cls.py'}']
model = dict(pretrained=False)
""")
    return path


@pytest.fixture(scope='module')
def files(tmp_path_factory, tiny_ra_miqa):
    return dict(tmp=tmp_path_factory.mktemp('api'), **tiny_ra_miqa)


@pytest.fixture(scope='module')
def model(files):
    return MIQAModel(config=files['cfg'], checkpoint=files['ckpt'], device='cpu')


def photo(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    """A smooth RGB test image with structure (gradients + a disc) and a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx / w, yy / h, ((xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (min(h, w) / 3) ** 2)], -1)
    img = img * 200 + rng.normal(0, 10, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- inputs
def test_same_score_for_every_input_kind(model, tmp_path):
    rgb = photo()
    path = tmp_path / 'img.png'
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    chw = torch.from_numpy(rgb).permute(2, 0, 1)
    ref = model.assess(rgb[:, :, ::-1].copy())  # BGR, as cv2.imread gives
    same = [model.assess(cv2.imread(str(path))), model.assess(Image.fromarray(rgb)), model.assess(str(path)),
            model.assess(path), model.assess(chw), model.assess(chw[None]),
            model.assess(chw.float() / 255), model.assess(rgb, channel_order='rgb')]
    assert all(s == ref for s in same), (ref, same)
    assert isinstance(ref, float) and np.isfinite(ref)
    # the channel order matters: an RGB array read as BGR is another image
    assert model.assess(rgb) != ref


def test_preprocess_is_the_datasets_test_pipeline(model, files, tmp_path):
    """Same tensors as the config's own test pipeline (LoadImage from a file), and as an
    independent PIL warp + centre crop (spec §6: 288 warp, 224 crop; region view = the warp)."""
    rgb = photo(97, 211, seed=3)
    path = tmp_path / 'p.png'
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    cfg = Config.fromfile(str(files['cfg']))
    pipeline = Compose([TRANSFORMS.build(t) for t in cfg.test_dataloader.dataset.pipeline])
    ref = pipeline(dict(img_path=str(path)))
    got = model.preprocess(rgb[:, :, ::-1])
    assert got['inputs'].dtype == torch.uint8 and got['inputs'].shape == (3, 224, 224)
    assert torch.equal(got['inputs'], ref['inputs'])
    assert torch.equal(got['region_inputs'], ref['region_inputs'])
    warp = np.array(Image.fromarray(rgb).resize((288, 288), Image.BILINEAR))
    warp = torch.from_numpy(warp).permute(2, 0, 1)
    # the pipeline's warp is PIL's bilinear filter computed by torch: within 1/255 of PIL itself
    assert (got['region_inputs'].int() - warp.int()).abs().max() <= 1
    assert (got['inputs'].int() - warp[:, 32:256, 32:256].int()).abs().max() <= 1


def test_predict_batch_is_the_models_forward(model):
    items = [model.preprocess(photo(seed=s), 'rgb') for s in range(3)]
    batch = collate(items)
    got = model.predict_batch(batch)
    assert got.dtype == np.float64 and got.shape == (3,)
    mean = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1)
    imnet_mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    imnet_std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (batch['inputs'].float() / 255 - mean) / 0.5
    r = (batch['region_inputs'].float() / 255 - imnet_mean) / imnet_std
    with torch.no_grad():
        ref = model.model.predict_scores(x, region_inputs=r).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    singles = [model.assess(photo(seed=s), channel_order='rgb') for s in range(3)]
    np.testing.assert_allclose(got, singles, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.assess_many([photo(seed=s) for s in range(3)], batch_size=2,
                                                 channel_order='rgb'), singles, rtol=1e-5, atol=1e-6)


def test_checkpoint_round_trip_and_random_init_differs(files, model):
    img = photo(seed=5)
    other_ckpt = random_checkpoint(files['cfg'], files['tmp'] / 'b.pth', seed=1)
    other = MIQAModel(config=files['cfg'], checkpoint=other_ckpt, device='cpu')
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        seed0 = MIQAModel(config=files['cfg'], checkpoint=False, device='cpu')
    assert model.assess(img) == seed0.assess(img)  # the saved weights are the ones loaded
    assert model.assess(img) != other.assess(img)


def test_return_dict_and_bands(model):
    out = model.assess(photo(), return_dict=True)
    assert out['score'] == model.assess(photo())
    assert out['band'] == model.band(out['score'])
    assert out['model'] == 'RA-MIQA' and out['task'] == 'cls' and out['label'] == 'composite'
    assert out['checkpoint'].endswith('tiny.pth') and out['device'] == 'cpu'
    assert [model.band(s) for s in (0.95, 0.7, 0.6999, 0.4, 0.3999, -2.0, float('nan'))] == [
        'High', 'High', 'Medium', 'Medium', 'Low', 'Low', 'Unknown']
    assert MIQAModel.BANDS[0] == ('High', 0.7) and MIQAModel.BANDS[1] == ('Medium', 0.4)


def test_custom_bands(files):
    m = MIQAModel(config=files['cfg'], checkpoint=files['ckpt'], device='cpu',
                  bands=(('good', 0.5), ('bad', float('-inf'))))
    assert [m.band(0.5), m.band(0.49)] == ['good', 'bad']


def test_baseline_without_region_view_and_authors_layout(tmp_path):
    """IQARegressor (no region inputs); a checkpoint in the authors' baseline layout (torchvision
    names, no ``backbone.`` prefix, spec §5) loads through the converter to the same scores."""
    cfg = resnet18_config(tmp_path / 'r18.py')
    ours = random_checkpoint(cfg, tmp_path / 'r18.pth')
    sd = torch.load(ours, weights_only=True)['state_dict']
    authors = {'module.' + k[len('backbone.'):]: v for k, v in sd.items()}
    torch.save({'state_dict': authors}, tmp_path / 'authors.pth')
    a = MIQAModel(config=cfg, checkpoint=ours, device='cpu')
    b = MIQAModel(config=cfg, checkpoint=tmp_path / 'authors.pth', device='cpu')
    assert a.preprocess(photo())['region_inputs'] is None
    assert a.assess(photo()) == b.assess(photo())


def test_ra_miqa_authors_layout_loads(files, model, tmp_path):
    """The released RA-MIQA key layout (spec §4: base_model, mmseg-named mask_encoder, ...)."""
    sd = torch.load(files['ckpt'], weights_only=True)['state_dict']
    inverse = ((r'backbone\.(.+)', r'base_model.\1'), (r'region_projector\.(.+)', r'mask_projector.\1'),
               (r'head\.(.+)', r'quality_regressor.\1'), (r'pos_embed', 'pos_embed'))
    enc = {k[len('region_encoder.model.'):]: v for k, v in sd.items() if k.startswith('region_encoder.')}
    released = rename_keys({k: v for k, v in sd.items() if not k.startswith('region_encoder.')}, inverse)
    released.update({'mask_encoder.' + k: v for k, v in rename_keys(enc, TIMM_VIT_TO_MMSEG).items()})
    torch.save(released, tmp_path / 'released.pth')
    other = MIQAModel(config=files['cfg'], checkpoint=tmp_path / 'released.pth', device='cpu')
    assert other.assess(photo()) == model.assess(photo())


def test_checkpoint_errors(files, tmp_path):
    with pytest.raises(ValueError, match='config= needs checkpoint='):
        MIQAModel(config=files['cfg'])
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        MIQAModel(config=files['cfg'], checkpoint=tmp_path / 'nope.pth')
    r18 = random_checkpoint(resnet18_config(tmp_path / 'r18.py'), tmp_path / 'r18.pth')
    with pytest.raises(ValueError, match='r18.pth does not fit'):
        MIQAModel(config=files['cfg'], checkpoint=r18)


class _Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_checkpoint_loading_is_weights_only(files, tmp_path):
    """mmengine training checkpoints (message hub with HistoryBuffer, numpy) load with
    weights_only=True; a pickle that would run code is refused."""
    from mmengine.logging.history_buffer import HistoryBuffer
    sd = torch.load(files['ckpt'], weights_only=True)['state_dict']
    buffer = HistoryBuffer()
    buffer.update(np.float64(0.5))
    hub = dict(log_scalars={'train/loss': buffer}, runtime_info={'iter': np.int64(60)})
    torch.save(dict(meta=dict(seed=np.int64(1), arr=np.arange(3)), state_dict=sd, message_hub=hub),
               tmp_path / 'mmengine.pth')
    loaded = load_checkpoint_state_dict(tmp_path / 'mmengine.pth')
    assert set(loaded) == set(sd) and all(torch.equal(loaded[k], sd[k]) for k in sd)
    torch.save(dict(state_dict=sd, evil=_Evil()), tmp_path / 'evil.pth')
    with pytest.raises(RuntimeError, match='weights_only'):
        load_checkpoint_state_dict(tmp_path / 'evil.pth')
    with pytest.raises(pickle.UnpicklingError):  # the raw load is what refuses it
        torch.load(tmp_path / 'evil.pth', weights_only=True)


# ---------------------------------------------------------------------------- bad inputs
def test_bad_files_raise_clear_errors(model, tmp_path):
    (tmp_path / 'notes.jpg').write_text('not an image at all')
    (tmp_path / 'empty.png').write_bytes(b'')
    with pytest.raises(OSError, match=r'notes\.jpg.*not an image'):
        model.assess(tmp_path / 'notes.jpg')
    with pytest.raises(OSError, match=r'empty\.png.*empty file'):
        model.assess(tmp_path / 'empty.png')
    with pytest.raises(FileNotFoundError, match='missing.png'):
        model.assess(tmp_path / 'missing.png')
    with pytest.raises(OSError, match='cannot read image'):
        model.assess(tmp_path)  # a folder


@pytest.mark.parametrize('bad, error, match', [
    (np.zeros((0, 5, 3), np.uint8), ValueError, 'empty'),
    (np.full((8, 8, 3), 255.0), ValueError, r'\[0, 1\]'),
    (np.full((8, 8, 3), np.nan, np.float32), ValueError, 'NaN'),
    (np.zeros((3, 32, 32), np.uint8), ValueError, 'channel-first'),
    (np.zeros((8, 8, 2), np.uint8), ValueError, 'HxWx3'),
    (np.zeros((8, 8, 3), np.int32), ValueError, 'int32'),
    (torch.zeros(2, 3, 8, 8), ValueError, '3xHxW'),
    ([[0, 1], [2, 3]], TypeError, 'list'),
])
def test_bad_arrays_raise_clear_errors(model, bad, error, match):
    with pytest.raises(error, match=match):
        model.assess(bad)


def test_odd_images_are_handled(model, tmp_path):
    rgb = photo(seed=7)
    gray = rgb[:, :, 1].copy()
    gray3 = np.repeat(gray[:, :, None], 3, axis=2)
    # grayscale: 2-D arrays, HxWx1, a gray PNG, a PIL 'L' image = the 3-channel replica
    cv2.imwrite(str(tmp_path / 'gray.png'), gray)
    ref = model.assess(gray3)
    assert [model.assess(gray), model.assess(gray[:, :, None]), model.assess(tmp_path / 'gray.png'),
            model.assess(Image.fromarray(gray))] == [ref] * 4
    # RGBA / BGRA: alpha dropped
    bgra = np.concatenate([rgb[:, :, ::-1], np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    cv2.imwrite(str(tmp_path / 'rgba.png'), bgra)
    ref = model.assess(rgb, channel_order='rgb')
    assert [model.assess(bgra), model.assess(tmp_path / 'rgba.png'),
            model.assess(Image.fromarray(bgra[:, :, [2, 1, 0, 3]], 'RGBA'))] == [ref] * 3
    # 16-bit: v * 257 maps back to v exactly
    cv2.imwrite(str(tmp_path / 'deep.png'), rgb[:, :, ::-1].astype(np.uint16) * 257)
    assert model.assess(tmp_path / 'deep.png') == ref
    assert model.assess(rgb.astype(np.uint16) * 257, channel_order='rgb') == ref
    # 1x1 pixel: warped up like any other image
    assert np.isfinite(model.assess(np.array([[[10, 200, 30]]], np.uint8)))


def test_huge_images_are_downscaled_first(model, monkeypatch, tmp_path):
    huge = np.zeros((3000, 5000, 3), np.uint8)
    huge[1000:2000, 1000:4000] = (30, 120, 250)
    small = load_image(huge)
    assert small.shape == (2458, 4096, 3)  # 3000 * 4096 / 5000 = 2457.6
    ref = cv2.resize(huge, (4096, 2458), interpolation=cv2.INTER_AREA)[:, :, ::-1]
    np.testing.assert_array_equal(small, ref)
    assert np.isfinite(model.assess(huge))
    assert load_image(huge, max_side=None).shape == huge.shape
    # files above PIL's decompression-bomb limit are refused before decoding (read_rgb's header check)
    cv2.imwrite(str(tmp_path / 'bomb.png'), photo(100, 100))
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1000)
    with pytest.raises(OSError, match=r'bomb\.png.*downscale'):
        model.assess(tmp_path / 'bomb.png')


def test_preprocessor_needs_load_image():
    with pytest.raises(ValueError, match='no LoadImage'):
        ImagePreprocessor([dict(type='Resize', size=8), dict(type='PackMIQAInputs')])


# ---------------------------------------------------------------------------- batch_assess
@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('batch')
    paths = []
    for i in range(7):
        p = tmp / f'img{i}.{"jpg" if i % 2 else "png"}'
        cv2.imwrite(str(p), photo(60 + 10 * i, 90, seed=i))
        paths.append(str(p))
    (tmp / 'broken.jpg').write_bytes(b'\xff\xd8garbage')
    return paths, str(tmp / 'broken.jpg')


def test_batch_assess_equals_assess_in_input_order(model, folder):
    paths, _ = folder
    order = paths[::-1] + paths[:2]  # order preserved, duplicates fine
    scores = batch_assess(order, model=model, batch_size=2, num_workers=2, progress=False)
    singles = np.array([model.assess(p) for p in order])
    np.testing.assert_allclose(scores, singles, rtol=1e-5, atol=1e-6)
    assert len(set(np.round(singles, 6))) == len(paths)  # distinct images, so order is really tested


def test_batch_assess_unreadable_file(model, folder):
    paths, broken = folder
    with pytest.warns(UserWarning, match=r'1 of 4 images could not be read.*broken\.jpg') as rec:
        scores = batch_assess([paths[0], broken, paths[1], paths[2]], model=model, batch_size=3,
                              num_workers=0, progress=False)
    assert len([w for w in rec if 'could not be read' in str(w.message)]) == 1
    assert np.isnan(scores[1]) and np.isfinite(scores[[0, 2, 3]]).all()
    np.testing.assert_allclose(scores[[0, 2, 3]], [model.assess(p) for p in paths[:3]], rtol=1e-5, atol=1e-6)
    with pytest.raises(OSError, match=r'cannot assess .*broken\.jpg'):
        batch_assess([paths[0], broken], model=model, strict=True, num_workers=0, progress=False)


def test_batch_assess_builds_its_model(files, folder, model):
    paths, _ = folder
    scores = batch_assess(paths[:2], config=files['cfg'], checkpoint=files['ckpt'], device='cpu',
                          num_workers=0, progress=False)
    np.testing.assert_allclose(scores, [model.assess(p) for p in paths[:2]], rtol=1e-5, atol=1e-6)
    assert batch_assess([], model=model).shape == (0,)


def test_one_set_of_model_options(files, model):
    """batch_assess, VideoMIQA and RealTimeIQA take MIQAModel's options (name=, ..., max_side=) and
    keep the model as ``.model``; batch_assess(model_name=) is the deprecated spelling of name=."""
    with pytest.warns(DeprecationWarning, match='use name='):
        assert batch_assess([], model=model, model_name='ra-miqa').shape == (0,)
    with pytest.raises(TypeError, match='not both'):
        batch_assess([], model=model, name='resnet18', model_name='ra-miqa')
    with pytest.raises(TypeError, match='not both'):  # the default name given explicitly is still two names
        batch_assess([], model=model, name='ra-miqa', model_name='resnet18')
    options = dict(config=files['cfg'], checkpoint=files['ckpt'], device='cpu', max_side=64,
                   bands=(('Good', 0.5), ('Bad', -1.0)))
    for api in (VideoMIQA(**options), RealTimeIQA(**options)):
        assert isinstance(api.model, MIQAModel) and api.model.preprocessor.max_side == 64
        assert api.model.band(0.6) == 'Good'
    assert RealTimeIQA(model=model).model is model and VideoMIQA(model=model).model is model


def test_package_exports():
    import machine_iqa
    import miqa
    from miqa.apis.inference import MIQAModel as Direct
    assert miqa.MIQAModel is machine_iqa.MIQAModel is Direct
    assert miqa.batch_assess is batch_assess and callable(miqa.list_models)
    with pytest.raises(AttributeError):
        miqa.NoSuchThing  # noqa: B018


# ---------------------------------------------------------------------------- trained model
@pytest.mark.slow
def test_trained_model_scores_distorted_photos_lower():
    """A model trained on MIQD-mini ranks heavily distorted photos below the originals (on average)."""
    found = sorted((ROOT / 'work_dirs' / 'ra_miqa_mini').glob('best_SRCC_*.pth'))
    ckpt = os.environ.get('MIQA_TRAINED_CKPT') or (found[-1] if found else None)
    config = os.environ.get('MIQA_TRAINED_CONFIG') or ROOT / 'configs' / 'demo' / 'ra_miqa_mini.py'
    if ckpt is None or not Path(ckpt).is_file():
        pytest.skip('no trained checkpoint: run `python tools/train.py configs/demo/ra_miqa_mini.py` (about '
                    '10 minutes on 2 cores; writes work_dirs/ra_miqa_mini/best_SRCC_*.pth) or set '
                    'MIQA_TRAINED_CKPT (and MIQA_TRAINED_CONFIG)')
    from skimage import data

    from miqa.distortions import apply_distortion

    model = MIQAModel(config=config, checkpoint=ckpt, device='cpu')
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    kinds = ['contrast', 'gaussian_noise', 'jpeg_compression', 'motion_blur', 'pixelate', 'snow']
    original = model.assess_many(photos, channel_order='rgb')
    distorted = np.array([model.assess_many([apply_distortion(p, k, 5) for p in photos], channel_order='rgb')
                          for k in kinds])  # (kinds, photos)
    assert distorted.mean() < original.mean(), (original, distorted)
    assert (distorted < original[None]).mean() > 0.5, (original, distorted)


@pytest.mark.slow
def test_readme_quick_start_as_written(tmp_path, monkeypatch):
    """The seed README's single-image and batch examples, verbatim, against a released-layout
    RA-MIQA checkpoint (random weights, full size) placed in $MIQA_HOME/weights."""
    from miqa.apis.zoo import get_model_entry
    from miqa.models.converters import CONVERSIONS
    from miqa.registry import MODELS

    monkeypatch.setenv('MIQA_HOME', str(tmp_path / 'home'))
    monkeypatch.setenv('MIQA_OFFLINE', '1')
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    sd = MODELS.build(CONVERSIONS['ra_miqa'][1]).state_dict()
    inverse = ((r'backbone\.(.+)', r'base_model.\1'), (r'region_projector\.(.+)', r'mask_projector.\1'),
               (r'head\.(.+)', r'quality_regressor.\1'), (r'pos_embed', 'pos_embed'))
    enc = {k[len('region_encoder.model.'):]: v for k, v in sd.items() if k.startswith('region_encoder.')}
    released = rename_keys({k: v for k, v in sd.items() if not k.startswith('region_encoder.')}, inverse)
    released.update({'mask_encoder.' + k: v for k, v in rename_keys(enc, TIMM_VIT_TO_MMSEG).items()})
    dst = get_model_entry('ra-miqa').weight_path()
    dst.parent.mkdir(parents=True)
    torch.save({'state_dict': released}, dst)
    Path('path/to').mkdir(parents=True)
    Path('dataset').mkdir()
    cv2.imwrite('path/to/image.jpg', photo(seed=1))
    for i in range(3):
        cv2.imwrite(f'dataset/{i}.jpg', photo(seed=10 + i))

    # --- README: Single Image Assessment
    from machine_iqa import MIQAModel
    model = MIQAModel('ra-miqa')
    image = cv2.imread('path/to/image.jpg')
    quality_score = model.assess(image)
    print(f"Quality Score: {quality_score:.3f}")
    # --- README: Batch Processing
    import glob

    from machine_iqa import batch_assess
    image_paths = glob.glob('dataset/*.jpg')
    scores = batch_assess(image_paths, model_name='ra-miqa')
    for path, score in zip(image_paths, scores):
        print(f"{path}: {score:.3f}")
    # ---
    assert np.isfinite(quality_score)
    np.testing.assert_allclose(scores, [model.assess(p) for p in image_paths], rtol=1e-5, atol=1e-6)


def test_inference_builds_no_feature_cache():
    """The demo trains with persistent token caches; an assessed image must never be cached."""
    from mmengine.config import Config

    from miqa.apis.inference import _inference_model_cfg
    from miqa.registry import MODELS

    demo = Config.fromfile(str(Path(__file__).resolve().parents[1] / 'configs' / 'demo' / 'ra_miqa_mini.py'))
    assert demo.model.region_cache and demo.model.backbone.stem_cache        # training caches
    model = MODELS.build(_inference_model_cfg(demo.model.to_dict()))
    assert model.region_cache is None and model._stem is not None and model._stem.cache is None
