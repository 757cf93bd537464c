"""The ``miqa`` command (miqa/cli.py), run in-process on a 1-block RA-MIQA with random weights."""
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
import pytest

from miqa.apis.inference import MIQAModel
from miqa.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def tiny(tmp_path_factory, tiny_ra_miqa):
    tmp = tmp_path_factory.mktemp('cli')
    cfg, ckpt = tiny_ra_miqa['cfg'], tiny_ra_miqa['ckpt']
    model = MIQAModel(config=cfg, checkpoint=ckpt, device='cpu')
    rng = np.random.default_rng(0)
    images = []
    for i in range(2):
        images.append(tmp / 'imgs' / f'{i}.png')
        images[-1].parent.mkdir(exist_ok=True)
        cv2.imwrite(str(images[-1]), rng.integers(0, 256, (40 + 20 * i, 50, 3), dtype=np.uint8))
    return dict(tmp=tmp, cfg=str(cfg), ckpt=str(ckpt), model=model,
                images=[str(p) for p in images])


def model_args(tiny):
    return ['--config', tiny['cfg'], '--checkpoint', tiny['ckpt'], '--device', 'cpu']


def test_help(capsys):
    with pytest.raises(SystemExit) as code:
        main(['--help'])
    assert code.value.code == 0
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in ('assess', 'video', 'models')) and 'Examples' in out
    for cmd, words in (('assess', ('--model', '--task', '--label', '--config', '--checkpoint', '--json')),
                       ('video', ('--every-n', '--max-frames', '--save-dir', '--annotate')),
                       ('models', ('--markdown', '--json'))):
        with pytest.raises(SystemExit):
            main([cmd, '--help'])
        out = capsys.readouterr().out
        assert all(w in out for w in words), (cmd, out)


def test_module_and_console_script_entry():
    proc = subprocess.run([sys.executable, '-m', 'miqa.cli', '--version'], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.startswith('miqa ')
    assert "'miqa=miqa.cli:main'" in (ROOT / 'setup.py').read_text()
    scripts = {e.name: e.value for e in metadata.entry_points(group='console_scripts')}
    if 'miqa' in scripts:  # installed (pip install -e .) after the entry point was added
        assert scripts['miqa'] == 'miqa.cli:main'



def test_python_dash_m_miqa():
    """``python -m miqa`` is the ``miqa`` command (miqa/__main__.py): same parser, same exit codes."""
    def run(*args):
        return subprocess.run([sys.executable, '-m', 'miqa', *args], capture_output=True, text=True)

    assert run('--version').stdout.startswith('miqa ')
    assert any(row['name'] == 'ra-miqa' for row in json.loads(run('models', '--json').stdout))
    proc = run('no-such-command')
    assert proc.returncode == 2 and proc.stderr.startswith('usage: miqa '), proc.stderr[-2000:]


def test_assess_two_images_json(tiny, capsys):
    assert main(['assess', *tiny['images'], *model_args(tiny), '--json', '--num-workers', '0']) == 0
    doc = json.loads(capsys.readouterr().out)  # stdout holds only the JSON document
    assert [r['path'] for r in doc['results']] == tiny['images']
    for r in doc['results']:
        score = tiny['model'].assess(r['path'])
        assert r['score'] == pytest.approx(score, rel=1e-5, abs=1e-6)
        assert r['band'] == tiny['model'].band(score)
    assert doc['model']['model'] == 'RA-MIQA' and doc['model']['checkpoint'] == tiny['ckpt']


def test_assess_folder_text_and_unreadable(tiny, capsys):
    broken = Path(tiny['tmp']) / 'broken.jpg'
    broken.write_bytes(b'nope')
    folder = str(Path(tiny['images'][0]).parent)
    with pytest.warns(UserWarning, match='broken.jpg'):
        code = main(['assess', folder, str(broken), *model_args(tiny), '--num-workers', '0'])
    assert code == 1  # some file could not be scored
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split('\t')[2] for line in lines] == tiny['images'] + [str(broken)]
    assert lines[-1].startswith('nan\tUnknown\t')
    assert float(lines[0].split('\t')[0]) == pytest.approx(tiny['model'].assess(tiny['images'][0]), abs=1e-4)


def test_errors_are_one_line(tiny, capsys, monkeypatch):
    assert main(['assess', tiny['images'][0], '--config', tiny['cfg']]) == 2
    err = capsys.readouterr().err
    assert 'miqa assess: error: config= needs checkpoint=' in err and 'Traceback' not in err
    monkeypatch.setenv('MIQA_OFFLINE', '1')
    assert main(['assess', tiny['images'][0], '--model', 'resnet50', '--task', 'det']) == 2
    err = capsys.readouterr().err
    assert 'resnet50_det_composite.pth' in err and 'drive.google.com' in err
    assert main(['assess', tiny['images'][0], '--model', 'resnet-5O']) == 2
    assert 'unknown model' in capsys.readouterr().err


def test_models(capsys):
    assert main(['models']) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 + 43 + 1
    assert out[1].split()[:5] == ['ra-miqa', 'cls', 'composite', '0.7003', '0.6989']
    assert main(['models', '--task', 'ins', '--label', 'accuracy', '--json']) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r['name'] for r in rows} == {'ra-miqa', 'resnet50', 'efficientnet-b5', 'vit-small'}
    assert all(r['cached'] is False for r in rows)
    assert main(['models', '--markdown', '--label', 'composite']) == 0
    assert '| RA-MIQA | `ra-miqa` |' in capsys.readouterr().out


def test_video(tiny, capsys, tmp_path):
    path = tmp_path / 'clip.mp4'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 10.0, (64, 48))
    rng = np.random.default_rng(1)
    for _ in range(12):
        writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    writer.release()
    assert main(['video', str(path), *model_args(tiny), '--every-n', '2', '--save-dir', str(tmp_path / 'out'),
                 '--json']) == 0
    report = json.loads(capsys.readouterr().out)
    assert report['num_frames'] == 6 and report['frame_indices'] == [0, 2, 4, 6, 8, 10]
    assert Path(report['outputs']['json']).is_file() and Path(report['outputs']['plot']).is_file()
    assert main(['video', str(tmp_path / 'missing.mp4'), *model_args(tiny)]) == 2
    assert 'missing.mp4' in capsys.readouterr().err


def test_video_pins_the_sha256(tmp_path, monkeypatch, capsys):
    """`miqa video --sha256` reaches the weight check (the model loads before the video opens)."""
    weights = tmp_path / 'home' / 'weights'
    weights.mkdir(parents=True)
    (weights / 'resnet50_det_composite.pth').write_bytes(b'not the published file')
    monkeypatch.setenv('MIQA_HOME', str(tmp_path / 'home'))
    monkeypatch.setenv('MIQA_OFFLINE', '1')
    pin = '0' * 64
    args = ['--model', 'resnet50', '--task', 'det', '--sha256', pin]
    assert main(['video', str(tmp_path / 'clip.mp4'), *args]) == 2
    err = capsys.readouterr().err
    assert 'does not match the pinned' in err and pin in err


def test_video_refuses_a_still_image_and_nan_threshold(tiny, capsys, tmp_path):
    assert main(['video', tiny['images'][0], *model_args(tiny)]) == 2
    assert 'is a still image' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # refused by the argument parser, before the model loads
        main(['video', str(tmp_path / 'clip.mp4'), '--threshold', 'nan', *model_args(tiny)])
    assert exit_info.value.code == 2 and "'nan' is not a finite number" in capsys.readouterr().err
