"""``miqa export`` (miqa.apis.export; tools/export.py wraps it): the TorchScript (and, when
installed, ONNX) artefact scores a real photo as MIQAModel does, takes the documented inputs, has a
dynamic batch axis; a wrong normalisation fails the parity check and writes nothing; an existing
output is never replaced silently."""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skdata

from miqa.apis import export, exporters
from miqa.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def tiny(tiny_ra_miqa):
    """(config, checkpoint, MIQAModel) of a 1-block RA-MIQA with random weights saved to a file."""
    from miqa.apis.inference import MIQAModel
    cfg, ckpt = tiny_ra_miqa['cfg'], tiny_ra_miqa['ckpt']
    return cfg, ckpt, MIQAModel(config=str(cfg), checkpoint=str(ckpt), device='cpu')


@pytest.fixture(scope='module')
def photos(tiny):
    """Two real photos (BGR), their MIQAModel scores and their preprocessed uint8 inputs."""
    iqa = tiny[2]
    bgr = [skdata.astronaut()[:, :, ::-1], cv2.resize(skdata.coffee(), (500, 333))[:, :, ::-1]]
    items = [iqa.preprocess(b) for b in bgr]
    batch = {k: torch.stack([it[k] for it in items]) for k in ('inputs', 'region_inputs')}
    return np.array([iqa.assess(b) for b in bgr]), batch


def test_torchscript_artefact_scores_like_the_model(tiny, photos, tmp_path, capsys):
    cfg, ckpt, _ = tiny
    out = tmp_path / 'tiny.pt'
    assert cli(['export', str(cfg), str(ckpt), '--format', 'torchscript', '--out', str(out)]) == 0
    assert 'tolerance' in capsys.readouterr().out
    extra = {'miqa.json': ''}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # torch.jit is deprecated, still loadable
        module = torch.jit.load(str(out), _extra_files=extra)
    meta = json.loads(extra['miqa.json'])
    assert meta['inputs']['inputs'] == dict(shape=['N', 3, 224, 224], dtype='uint8', range='0..255',
                                            channels='RGB')
    assert meta['inputs']['region_inputs']['shape'] == ['N', 3, 288, 288]
    expected, batch = photos
    got = module(batch['inputs'], batch['region_inputs'])
    assert not got.requires_grad
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)
    three = module(batch['inputs'][[0, 1, 0]], batch['region_inputs'][[0, 1, 0]]).numpy()
    np.testing.assert_allclose(three, expected[[0, 1, 0]], atol=1e-4)


def test_existing_output_is_never_replaced_silently(tiny, tmp_path, capsys):
    cfg, ckpt, _ = tiny
    out = tmp_path / 'taken.pt'
    out.write_bytes(b'precious')
    assert cli(['export', str(cfg), str(ckpt), '--out', str(out)]) == 2
    assert 'exists' in capsys.readouterr().err
    assert out.read_bytes() == b'precious'
    # the default output is the checkpoint path with the format's suffix
    default = ckpt.with_suffix('.pt')
    if not default.exists():
        assert cli(['export', str(cfg), str(ckpt)]) == 0
    with pytest.raises(FileExistsError):
        export.export_model(str(cfg), str(ckpt))
    assert cli(['export', str(cfg), str(ckpt), '--out', str(out), '--overwrite']) == 0
    assert out.read_bytes()[:2] == b'PK'  # a TorchScript zip archive


def test_tool_refuses_a_taken_output_before_loading_anything(tmp_path):
    """tools/export.py takes the options of ``miqa export``; a taken --out is a usage error."""
    out = tmp_path / 'taken.pt'
    out.write_bytes(b'precious')
    proc = subprocess.run([sys.executable, str(ROOT / 'tools' / 'export.py'), 'cfg.py', 'ckpt.pth',
                           '--out', str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and 'exists' in proc.stderr and '--overwrite' in proc.stderr
    assert out.read_bytes() == b'precious'


def test_wrong_normalisation_fails_parity_and_writes_nothing(tiny, tmp_path, monkeypatch):
    cfg, ckpt, _ = tiny
    monkeypatch.setitem(export.INPUT_SCALE, 'uint8', 256.0)  # a plausible bug: x / 256 instead of / 255
    out = tmp_path / 'bad.pt'
    assert export.export_model(str(cfg), str(ckpt), out=str(out)) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_parity_measures_the_difference(tiny):
    iqa = tiny[2]
    shapes = exporters.input_shapes(iqa)
    assert shapes == dict(inputs=(3, 224, 224), region_inputs=(3, 288, 288))

    def off_by_a_bit(x):
        return iqa.predict_batch(dict(x)) + 0.01
    assert exporters.parity(off_by_a_bit, iqa, shapes, 'uint8') == pytest.approx(0.01, abs=1e-6)


@pytest.mark.slow  # torch.export-based ONNX export: ~10 s on an idle core, 35 s on busy shared ones
def test_onnx_artefact_scores_like_the_model(tiny, photos, tmp_path):
    ort = pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxscript')
    cfg, ckpt, _ = tiny
    out = tmp_path / 'tiny.onnx'
    args = ['export', str(cfg), str(ckpt), '--format', 'onnx', '--input-range', 'unit', '--out', str(out)]
    assert cli(args) == 0
    session = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    assert [i.name for i in session.get_inputs()] == ['inputs', 'region_inputs']
    meta = json.loads(session.get_modelmeta().custom_metadata_map['miqa'])
    assert meta['inputs']['inputs']['range'] == '[0, 1]'
    expected, batch = photos
    feed = {k: (v.float() / 255).numpy() for k, v in batch.items()}
    np.testing.assert_allclose(session.run(['scores'], feed)[0], expected, atol=1e-4)
    feed3 = {k: np.concatenate([v, v[:1]]) for k, v in feed.items()}  # dynamic batch axis
    np.testing.assert_allclose(session.run(['scores'], feed3)[0], expected[[0, 1, 0]], atol=1e-4)
