"""The README's Python examples (single image, batch, video) run as written: each is saved to a
file and run with ``python file.py`` in a subprocess, as a user would (a script's ``__main__`` is
what worker processes import again, so exec() in the test process would hide a missing guard).

They run in a scratch folder laid out like a checkout after the quick start: ``configs/`` (the
repository's), ``work_dirs/ra_miqa_mini/best_SRCC_iter_<max_iters>.pth`` (the demo model with random
weights: the examples test the API, not the model), real photos (``photo.jpg``,
``photos/*.jpg``) and a short MP4 (``clip.mp4``). The camera example is documented only.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from miqa.registry import MODELS
from miqa.utils import register_all_modules

ROOT = Path(__file__).resolve().parents[1]
SECTION = '## Assess images'
SKIP = ('cv2.VideoCapture(0)',)  # the camera loop: needs a camera


def readme_examples():
    text = (ROOT / 'README.md').read_text()
    start = text.index(SECTION)
    end = text.index('\n## ', start + len(SECTION))
    blocks = re.findall(r'```python\n(.*?)```', text[start:end], flags=re.S)
    return [b for b in blocks if not any(s in b for s in SKIP)]


@pytest.fixture(scope='module')
def checkout(tmp_path_factory):
    from skimage import data

    root = tmp_path_factory.mktemp('checkout')
    (root / 'configs').symlink_to(ROOT / 'configs')
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(str(ROOT / 'configs' / 'demo' / 'ra_miqa_mini.py'))
    cfg.merge_from_dict({'model.pretrained': False})
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = root / 'work_dirs' / 'ra_miqa_mini' / f'best_SRCC_iter_{cfg.max_iters}.pth'  # as training names it
    ckpt.parent.mkdir(parents=True)
    torch.save({'state_dict': model.state_dict()}, ckpt)
    photos = [data.astronaut(), data.chelsea(), data.coffee()]
    cv2.imwrite(str(root / 'photo.jpg'), cv2.cvtColor(photos[0], cv2.COLOR_RGB2BGR))
    (root / 'photos').mkdir()
    for i, img in enumerate(photos):
        cv2.imwrite(str(root / 'photos' / f'{i}.jpg'), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    frame = cv2.resize(cv2.cvtColor(photos[1], cv2.COLOR_RGB2BGR), (160, 120))
    writer = cv2.VideoWriter(str(root / 'clip.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), 10, (160, 120))
    for t in range(30):  # 3 s; blurred more and more in the second half
        k = 1 + 2 * max(0, t - 15)
        writer.write(cv2.GaussianBlur(frame, (k, k), 0) if k > 1 else frame)
    writer.release()
    return root


def test_readme_has_the_three_examples():
    blocks = readme_examples()
    assert [('MIQAModel(' in b, 'batch_assess(' in b, 'VideoMIQA(' in b) for b in blocks] == [
        (True, False, False), (False, True, False), (False, False, True)]


@pytest.mark.parametrize('index', range(3), ids=['single', 'batch', 'video'])
def test_readme_example_runs(index, checkout):
    script = checkout / f'readme_example_{index}.py'
    script.write_text(readme_examples()[index])
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1', MPLBACKEND='Agg')
    proc = subprocess.run([sys.executable, script.name], cwd=checkout, env=env, capture_output=True,
                          text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, (out + proc.stderr)[-6000:]
    if index == 0:
        assert re.search(r'Quality Score: -?\d+\.\d{3}', out) and re.search(r'^(High|Medium|Low) ', out, re.M)
    elif index == 1:
        lines = [line for line in out.splitlines() if line.startswith('photos/')]
        assert [line.split(':')[0] for line in lines] == [f'photos/{i}.jpg' for i in range(3)]
        assert all(np.isfinite(float(line.split(': ')[1])) for line in lines)
    else:
        assert re.search(r'mean -?\d+\.\d{3}, min -?\d+\.\d{3}', out)
        assert (checkout / 'video_report' / 'clip_miqa.json').stat().st_size > 0
        assert (checkout / 'video_report' / 'clip_miqa.png').read_bytes()[:4] == b'\x89PNG'
