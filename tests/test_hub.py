"""The weight hub (miqa/hub): one table names every weight file the code asks for; one lookup order."""
import inspect

import pytest

from miqa import hub
from miqa.hub.table import KINDS


def test_every_weight_file_the_code_names_is_in_the_table():
    from miqa.apis.zoo import zoo_entries
    from miqa.database.human_models import FOLDER, HUMAN_MODELS
    from miqa.database.machines import LITE_VARIANTS
    from miqa.hvs import SCORERS
    from miqa.models.backbones import BACKBONES
    from miqa.models.region_encoder import TimmViTRegionEncoder

    SCORERS.import_from_location()
    named = {e.weights for e in zoo_entries()} | {v.weights for v in LITE_VARIANTS.values()}
    named |= {b.weights for b in BACKBONES.values() if b.weights} | set(HUMAN_MODELS)
    named.add(inspect.signature(TimmViTRegionEncoder).parameters['weights'].default)
    named |= {k for cls in SCORERS.module_dict.values() for k in getattr(cls, 'weight_files', ())}
    assert named <= set(hub.WEIGHTS), sorted(named - set(hub.WEIGHTS))
    assert {w.kind for w in hub.WEIGHTS.values()} == set(KINDS)
    assert all(hub.WEIGHTS[name].file == f'{FOLDER}/{name}.json' for name in HUMAN_MODELS)
    files = [w.file for w in hub.WEIGHTS.values()]
    assert len(files) == len(set(files))  # one row per file: the checksum store is keyed by file


def test_torchvision_rows_are_torchvisions_urls():
    from torchvision import models as tvm

    for key, enum in (('resnet18', tvm.ResNet18_Weights), ('resnet50', tvm.ResNet50_Weights),
                      ('efficientnet_b1', tvm.EfficientNet_B1_Weights),
                      ('efficientnet_b5', tvm.EfficientNet_B5_Weights), ('vgg16', tvm.VGG16_Weights)):
        url = enum.IMAGENET1K_V1.url
        assert (hub.WEIGHTS[key].url, hub.WEIGHTS[key].file) == (url, url.rsplit('/', 1)[-1]), key


def test_lookup_order_path_then_home_then_package(tmp_path, monkeypatch):
    monkeypatch.setenv('MIQA_HOME', str(tmp_path))
    packaged = hub.find_weights('efficientnet_lite0')  # the pip package's copy (nothing in $MIQA_HOME)
    assert packaged.name == hub.WEIGHTS['efficientnet_lite0'].file and tmp_path not in packaged.parents
    local = tmp_path / 'weights' / packaged.name
    local.parent.mkdir()
    local.write_bytes(b'x')
    assert hub.find_weights('efficientnet_lite0') == local  # $MIQA_HOME/weights before the package
    (tmp_path / 'weights' / 'mine.pth').write_bytes(b'y')
    assert hub.find_weights('efficientnet_lite0', 'mine.pth') == tmp_path / 'weights' / 'mine.pth'
    assert hub.resolve_weights(False, 'efficientnet_lite0') is None
    with pytest.raises(KeyError, match='Did you mean: resnet18'):
        hub.weight_entry('resnet19')


def test_documented_names_stay_importable():
    from miqa.models.weights import load_model_weights, load_training_checkpoint, training_checkpoint_globals
    from miqa.utils import load_training_checkpoint as runtime_loader

    assert load_training_checkpoint is runtime_loader is hub.load_training_checkpoint
    assert training_checkpoint_globals is hub.training_checkpoint_globals and callable(load_model_weights)
