"""The model zoo (miqa/apis/zoo.py, model_zoo.csv): rows, references, weight resolution, checksums.

No test touches the network: http(s) transports are replaced by a function that fails the test,
"downloads" come from local ``file://`` URLs or an injected transport.
"""
import csv
import hashlib
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from miqa import hub
from miqa.apis import zoo
from miqa.apis.inference import MIQAModel
from miqa.evaluation.reference import paper_row
from miqa.models.converters import CONVERSIONS

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL = ROOT.parent / 'shared' / 'spec' / 'official_checkpoints.csv'


def _no_network(url, fileobj, progress):
    pytest.fail(f'a test tried to download {url}')


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """A fresh MIQA_HOME per test, online mode, and no real network transport."""
    monkeypatch.setenv('MIQA_HOME', str(tmp_path / 'home'))
    monkeypatch.delenv('MIQA_OFFLINE', raising=False)
    monkeypatch.setitem(hub.TRANSPORTS, 'http', _no_network)
    monkeypatch.setitem(hub.TRANSPORTS, 'https', _no_network)


def test_zoo_has_every_official_checkpoint():
    if not OFFICIAL.is_file():
        pytest.skip(f'{OFFICIAL} not present')
    with open(OFFICIAL, newline='') as f:
        official = {(r['model'], r['task'], r['label']): r['url'] for r in csv.DictReader(f)}
    zoo_rows = {(e.arch, e.task, e.label): e.url for e in zoo.list_models()}
    assert zoo_rows == official
    assert len({e.file for e in zoo.list_models()}) == len(official)  # one local file per model


def test_reference_numbers_are_the_papers():
    for e in zoo.list_models():
        ref = paper_row(e.method, e.task, e.label)
        if ref is None:
            assert e.srcc is None and e.plcc is None, e
        else:
            assert (e.srcc, e.plcc) == (ref['SRCC'], ref['PLCC']), e
    ra = zoo.get_model_entry('ra-miqa', 'cls', 'composite')
    assert (ra.srcc, ra.plcc) == (0.7003, 0.6989)  # Table 1 of the paper
    assert zoo.get_model_entry('resnet18', 'cls', 'consistency').srcc is None  # not in the paper


def test_configs_exist_and_build_the_right_architecture():
    for e in zoo.list_models():
        cfg = Config.fromfile(str(e.config_path()))
        target_type = CONVERSIONS[e.arch][1]['type']
        assert cfg.model.type == target_type, e
        if target_type == 'IQARegressor':
            assert cfg.model.backbone.name == e.arch, e
        dataset = cfg.test_dataloader.dataset
        assert dataset.task == e.task, e
        # one row (ResNet-18 cls consistency) has no label-specific config: the composite one has the
        # same model and test pipeline, which is all inference reads
        label_config = ROOT / Path(e.config).with_name(f'{Path(e.config).stem}_{e.label}.py')
        assert dataset.label_type == e.label or (e.label != 'composite' and not label_config.exists()), e


def test_names_and_aliases():
    assert zoo.resolve_name('RA-MIQA') == zoo.resolve_name('ra_miqa') == 'ra-miqa'
    assert zoo.resolve_name('vit_small_patch16_224') == zoo.resolve_name('ViT-small') == 'vit-small'
    assert zoo.resolve_name('EfficientNet-b5') == 'efficientnet-b5'
    with pytest.raises(KeyError, match='Did you mean: ra-miqa'):
        zoo.resolve_name('ra-mqa')
    with pytest.raises(KeyError, match=r'resnet18 exists for .*cls/composite'):
        zoo.get_model_entry('resnet18', 'det', 'accuracy')
    assert len(zoo.list_models()) == 43
    assert {e.name for e in zoo.list_models(task='det', label='accuracy')} == {
        'ra-miqa', 'resnet50', 'efficientnet-b5', 'vit-small'}
    assert all(e.name == 'ra-miqa' for e in zoo.list_models('RA_MIQA'))


def test_offline_error_names_file_url_and_destination(monkeypatch, tmp_path):
    monkeypatch.setenv('MIQA_OFFLINE', '1')
    entry = zoo.get_model_entry('ra-miqa', 'det', 'composite')
    dest = tmp_path / 'home' / 'weights' / 'ra_miqa_det_composite.pth'
    for call in (lambda: zoo.fetch_weights(entry), lambda: MIQAModel('ra-miqa', task='det')):
        with pytest.raises(FileNotFoundError) as err:
            call()
        msg = str(err.value)
        assert 'ra_miqa_det_composite.pth' in msg and entry.url in msg and str(dest) in msg
        assert 'MIQA_OFFLINE=1' in msg


def test_failed_download_names_file_url_and_destination(tmp_path):
    def unreachable(url, fileobj, progress):
        raise urllib.error.URLError('Temporary failure in name resolution')

    entry = zoo.get_model_entry('resnet50', 'ins', 'accuracy')
    with pytest.raises(FileNotFoundError, match='download failed') as err:
        zoo.fetch_weights(entry, transport=unreachable)
    assert entry.url in str(err.value) and str(entry.weight_path()) in str(err.value)
    assert not entry.weight_path().exists() and not list(entry.weight_path().parent.glob('.*part'))


def test_download_records_and_then_enforces_the_checksum(tmp_path):
    src = tmp_path / 'published.pth'
    src.write_bytes(b'weights v1' * 1000)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    entry = zoo.with_url(zoo.get_model_entry('ra-miqa'), src.as_uri())

    with pytest.warns(UserWarning, match='trust on first use'):
        path = zoo.fetch_weights(entry, progress=False)
    assert path == tmp_path / 'home' / 'weights' / entry.file and path.read_bytes() == src.read_bytes()
    record = hub.recorded_sha256()[entry.file]
    assert record['sha256'] == digest and record['source'] == 'trust-on-first-use'

    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a verified cached file warns no more
        assert zoo.fetch_weights(entry) == path

    path.write_bytes(b'tampered')
    with pytest.raises(hub.ChecksumError, match=digest):
        zoo.fetch_weights(entry)


def test_pinned_checksum(tmp_path):
    src = tmp_path / 'published.pth'
    src.write_bytes(b'\x00weights' * 100)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    entry = zoo.with_url(zoo.get_model_entry('resnet50', 'cls', 'accuracy'), src.as_uri())

    with pytest.raises(hub.ChecksumError, match='does not match'):
        zoo.fetch_weights(entry, sha256='0' * 64, progress=False)
    assert not entry.weight_path().exists()  # a refused download leaves nothing behind
    assert not list(entry.weight_path().parent.glob('.*part'))

    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a pinned download is not "trusted on first use"
        zoo.fetch_weights(entry, sha256=digest.upper(), progress=False)
    assert hub.recorded_sha256()[entry.file] | {'recorded': None} == dict(
        sha256=digest, source='pinned', url=src.as_uri(), recorded=None)
    hub.pin_sha256(entry.file, '1' * 64)
    with pytest.raises(hub.ChecksumError):
        zoo.fetch_weights(entry)
    with pytest.raises(ValueError, match='64 hex'):
        hub.pin_sha256(entry.file, 'abc')


def test_drive_links_use_the_direct_endpoint():
    direct = 'https://drive.usercontent.google.com/download?id=ABC_12-x&export=download&confirm=t'
    assert hub.drive_direct_url('https://drive.google.com/uc?id=ABC_12-x') == direct
    assert hub.drive_direct_url('https://drive.google.com/file/d/ABC_12-x/view?usp=sharing') == direct
    assert hub.drive_direct_url('https://example.org/w.pth') == 'https://example.org/w.pth'


def test_published_model_end_to_end_through_the_converter(tmp_path, monkeypatch):
    """MIQAModel('resnet18'): fetch (injected transport) -> TOFU record -> the authors' layout
    (torchvision names, spec §5) converted -> same scores as our own layout of the same weights."""
    cfg = tmp_path / 'r18.py'
    base = ROOT / 'configs/resnet18/resnet18_cls.py'
    cfg.write_text(f"_base_ = ['{base}']\nmodel = dict(pretrained=False)\n")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ours = MIQAModel(config=cfg, checkpoint=False, device='cpu')
    authors = {'module.' + k[len('backbone.'):]: v for k, v in ours.model.state_dict().items()}
    torch.save({'state_dict': authors}, tmp_path / 'authors.pth')
    fetched = []

    def fake_drive(url, fileobj, progress):
        fetched.append(url)
        fileobj.write((tmp_path / 'authors.pth').read_bytes())

    monkeypatch.setitem(hub.TRANSPORTS, 'https', fake_drive)
    with pytest.warns(UserWarning, match='trust on first use'):
        published = MIQAModel('ResNet-18', device='cpu')
    assert fetched == [zoo.get_model_entry('resnet18').url]
    img = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    assert published.assess(img) == ours.assess(img)
    info = published.assess(img, return_dict=True)
    assert info['model'] == 'resnet18' and info['reference_srcc'] == 0.5131
    MIQAModel('resnet18', device='cpu', download=False)  # cached and verified now


def test_markdown_table_and_readme_update(tmp_path):
    table = zoo.markdown_table('composite')
    lines = table.splitlines()
    assert len(lines) == 2 + 6  # header, rule, one row per method
    assert '| RA-MIQA | `ra-miqa` | `0.7003 / 0.6989` | `0.8125 / 0.8264` | `0.8188 / 0.8340` |' in table
    assert 'not reported' in zoo.markdown_table('consistency')  # ResNet-18 cls consistency
    readme = tmp_path / 'README.md'
    readme.write_text('intro\n<!-- model-table:begin -->\nold\n<!-- model-table:end -->\nrest\n')
    assert zoo.update_readme(readme, zoo.readme_tables(['composite']))
    text = readme.read_text()
    assert text.startswith('intro\n<!-- model-table:begin -->\n')
    assert text.endswith('<!-- model-table:end -->\nrest\n')
    assert table in text and 'old' not in text


def test_a_file_placed_by_hand_is_recorded_on_first_use_then_enforced(tmp_path, caplog):
    """No download, no record: the first use records its sha256 (trust on first use, with a warning), so
    a later swap of the file is caught like a tampered download."""
    entry = zoo.get_model_entry('resnet18')
    path = entry.weight_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b'weights copied by hand' * 100)
    assert entry.file not in hub.recorded_sha256()
    assert zoo.fetch_weights(entry, download=False) == path
    record = hub.recorded_sha256()[entry.file]
    assert record['sha256'] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record['source'] == 'trust-on-first-use'
    assert zoo.fetch_weights(entry, download=False) == path  # the same file passes
    path.write_bytes(b'another file, same name' * 100)
    with pytest.raises(hub.ChecksumError, match=record['sha256']):
        zoo.fetch_weights(entry, download=False)
