"""tools/train.py and tools/test.py end to end on the fixture tree, single process and torchrun.

A small RA-MIQA variant (1-block ViTs, random weights) keeps every run to seconds; the tools,
configs, datasets, loops, hooks and metric are the real ones.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(path: Path, data_root: str, train_n: int = 16, val_n: int = 12) -> Path:
    """A leaf config inheriting the real ``configs/ra_miqa_cls.py`` with small sizes.

    The train pipeline uses CenterCrop and dropout is off, so two runs of the same length give
    the same weights (what the resume test compares).
    """
    path.write_text(f"""
_base_ = ['{ROOT / 'configs' / 'ra_miqa_cls.py'}']
data_root = '{data_root}'
model = dict(pretrained=False, head_dropout=0.0,
             backbone=dict(depth=1), region_encoder=dict(depth=1))
_train = [dict(type='LoadImage', on_error='skip'), dict(type='Resize', size=(288, 288)),
          dict(type='RegionView', size=288), dict(type='CenterCrop', size=224),
          dict(type='PackMIQAInputs')]
_loader = dict(batch_size=4, num_workers=0, persistent_workers=False, pin_memory=False)
train_dataloader = dict(_loader, dataset=dict(pipeline=_train, indices={train_n}))
val_dataloader = dict(_loader, dataset=dict(indices={val_n}))
test_dataloader = dict(_loader)
train_cfg = dict(max_epochs=2, val_per_epoch=2)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
                        convert_to_iter_based=True),
                   dict(type='CosineAnnealingLR', T_max=1, eta_min=1e-8, by_epoch=True, begin=1, end=2,
                        convert_to_iter_based=True)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(max_keep_ckpts=3))
env_cfg = dict(cudnn_benchmark=False)
""")
    return path


def run(args, cwd: Path, nproc: int = 1, timeout: int = 300) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE='1', WANDB_MODE='offline', OMP_NUM_THREADS='1',
               PYTHONUNBUFFERED='1')
    if nproc == 1:
        cmd = [sys.executable] + args
    else:
        cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
               '--master_port', str(29500 + os.getpid() % 1000)] + args + ['--launcher', 'pytorch']
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out


def state_dict(path: Path) -> dict:
    from miqa.utils import load_training_checkpoint
    return load_training_checkpoint(str(path))['state_dict']


@pytest.fixture(scope='module')
def trained(tmp_path_factory, miqd_root):
    """One uninterrupted 2-epoch run: (tmp dir, config, work dir)."""
    tmp = tmp_path_factory.mktemp('tools')
    cfg = tiny_config(tmp / 'tiny_ra_miqa.py', str(miqd_root['root']))
    work = tmp / 'full'
    out = run([str(ROOT / 'tools/train.py'), str(cfg), '--work-dir', str(work)], cwd=tmp)
    assert 'eta:' in out and 'SRCC' in out
    return tmp, cfg, work


def test_train_writes_checkpoints_best_and_logs(trained):
    _, _, work = trained
    assert (work / 'epoch_1.pth').is_file() and (work / 'epoch_2.pth').is_file()
    assert list(work.glob('best_SRCC_*.pth'))
    assert list(work.glob('*/vis_data/events.out.tfevents.*'))  # TensorBoard by default
    # validation ran twice per epoch: 4 evaluations logged
    scalars = list(work.glob('*/vis_data/scalars.json'))
    assert scalars
    lines = [json.loads(line) for line in scalars[0].read_text().splitlines()]
    assert sum('SRCC' in rec for rec in lines) == 4


def test_resume_auto_matches_uninterrupted_run(trained):
    tmp, cfg, work = trained
    resumed = tmp / 'resumed'
    resumed.mkdir()
    shutil.copy(work / 'epoch_1.pth', resumed / 'epoch_1.pth')
    (resumed / 'last_checkpoint').write_text(str(resumed / 'epoch_1.pth'))
    out = run([str(ROOT / 'tools/train.py'), str(cfg), '--work-dir', str(resumed), '--resume', 'auto'],
              cwd=tmp)
    assert 'resumed epoch: 1, iter: 4' in out
    a, b = state_dict(work / 'epoch_2.pth'), state_dict(resumed / 'epoch_2.pth')
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    # and the resumed run did train: epoch 2 differs from epoch 1
    first = state_dict(work / 'epoch_1.pth')
    assert any(not torch.equal(first[k], b[k]) for k in b if b[k].is_floating_point())


def _metrics_from(tmp: Path, pattern: str) -> dict:
    files = sorted(tmp.glob(pattern))
    assert files, pattern
    return json.loads(files[-1].read_text())['metrics']


def test_test_tool_prints_all_metrics_and_breakdowns(trained, miqd_root):
    tmp, cfg, work = trained
    out = run([str(ROOT / 'tools/test.py'), str(cfg), str(work / 'epoch_2.pth'), '--work-dir',
               str(tmp / 'eval1'), '--paper'], cwd=tmp)
    for word in ('SRCC', 'PLCC', 'KRCC', 'RMSE', 'linear fit', 'UD', 'ROI-DD', 'BG-DD', 'gaussian_noise',
                 'motion_blur', '(paper, MIQD-2.5M)', '0.7003'):
        assert word in out, word
    metrics = _metrics_from(tmp / 'eval1', 'test_epoch_2_cls_composite.json')
    assert metrics['num_samples'] == 50 and metrics['num_invalid'] == 0  # the val source's 2 x 25 images
    assert metrics['region/BG-DD/n'] == 20 and metrics['distortion/motion_blur/n'] == 25
    assert re.search(r'\| RA-MIQA \| -?\d\.\d{4} \|', out)
    # a second run never overwrites the first result
    run([str(ROOT / 'tools/test.py'), str(cfg), str(work / 'epoch_2.pth'), '--work-dir', str(tmp / 'eval1')],
        cwd=tmp)
    assert len(list((tmp / 'eval1').glob('test_epoch_2_cls_composite*.json'))) == 2


def test_cross_task_evaluation(trained):
    tmp, cfg, work = trained
    out = run([str(ROOT / 'tools/test.py'), str(cfg), str(work / 'epoch_2.pth'), '--task', 'det',
               '--label', 'accuracy', '--work-dir', str(tmp / 'cross')], cwd=tmp)
    assert 'MIQD det (accuracy labels' in out
    assert _metrics_from(tmp / 'cross', 'test_epoch_2_det_accuracy.json')['num_samples'] == 50


def test_torchrun_two_processes_train_and_evaluate_like_one(trained):
    tmp, cfg, work = trained
    ddp_work = tmp / 'ddp'
    run([str(ROOT / 'tools/train.py'), str(cfg), '--work-dir', str(ddp_work), '--epochs', '1',
         '--wandb', 'miqa-test', '--cfg-options', 'train_cfg.val_per_epoch=1'], cwd=tmp, nproc=2)
    assert (ddp_work / 'epoch_1.pth').is_file()
    assert list(ddp_work.glob('wandb/offline-run-*'))  # the --wandb switch, offline, no account

    # 13 val images on 2 ranks: the sampler pads one; every sample must count once. Batch size 1
    # so that each image meets the same float kernels in both runs (batch composition differs).
    args = [str(cfg), str(work / 'epoch_2.pth'), '--cfg-options', 'test_dataloader.dataset.indices=13',
            'test_dataloader.batch_size=1']
    run([str(ROOT / 'tools/test.py')] + args + ['--work-dir', str(tmp / 'one')], cwd=tmp)
    run([str(ROOT / 'tools/test.py')] + args + ['--work-dir', str(tmp / 'two')], cwd=tmp, nproc=2)
    one = _metrics_from(tmp / 'one', 'test_epoch_2_*.json')
    two = _metrics_from(tmp / 'two', 'test_epoch_2_*.json')
    assert one['num_samples'] == two['num_samples'] == 13
    for key, value in one.items():
        if isinstance(value, float):
            assert two[key] == pytest.approx(value, abs=1e-6), key
    preds_one = sorted((tmp / 'one').glob('*_predictions.csv'))[-1].read_text()
    preds_two = sorted((tmp / 'two').glob('*_predictions.csv'))[-1].read_text()
    assert preds_one == preds_two  # same images, same order, same scores
    assert len(preds_two.splitlines()) == 14


def _run_failing(args, cwd: Path) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE='1', WANDB_MODE='offline', OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def test_test_tool_refuses_a_checkpoint_that_does_not_fit_the_model(trained, tmp_path):
    """mmengine's load_from is strict=False: random weights would be scored. tools/test.py loads through
    the one strict loader of MIQAModel and lists the keys instead."""
    tmp, cfg, work = trained
    weights = state_dict(work / 'epoch_2.pth')
    partial = {k: v for k, v in weights.items() if not k.startswith('head.')}
    partial['stray.weight'] = torch.zeros(2)
    torch.save({'state_dict': partial}, tmp_path / 'partial.pth')
    out = _run_failing([str(ROOT / 'tools/test.py'), str(cfg), str(tmp_path / 'partial.pth'), '--work-dir',
                        str(tmp_path / 'eval')], cwd=tmp)
    assert re.search(r'partial\.pth does not fit the model \(RAMIQA\).*4 missing keys: head\.0\.bias', out)
    assert '1 unexpected keys: stray.weight' in out
    assert not list((tmp_path / 'eval').glob('test_*'))  # no result written


def test_hook_option_typos_fail_at_start_up_with_did_you_mean(trained):
    tmp, cfg, _ = trained
    out = _run_failing([str(ROOT / 'tools/train.py'), str(cfg), '--work-dir', str(tmp / 'typo'),
                        '--cfg-options', 'default_hooks.checkpoint.intervall=5'], cwd=tmp)
    assert "unknown option(s) 'intervall' (did you mean 'interval'?)" in out
    assert 'Epoch(train)' not in out and not list((tmp / 'typo').glob('*.pth'))  # before any training

    from miqa.registry import HOOKS
    from miqa.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with pytest.raises(TypeError, match=r"HVSReferenceHook: unknown option\(s\) 'fitt' \(did you mean 'fit'"):
        HOOKS.build(dict(type='miqa.HVSReferenceHook', fitt='linear'))
    hook = HOOKS.build(dict(type='miqa.MultiValCheckpointHook', interval=2, save_best='SRCC', rule='greater'))
    assert hook.interval == 2 and hook.rules == ['greater']


def test_mid_epoch_best_is_named_by_iteration(trained):
    _, _, work = trained
    bests = [p.name for p in work.glob('best_SRCC_*.pth')]
    assert bests and all(re.fullmatch(r'best_SRCC_(iter_6|epoch_[12])\.pth', name) for name in bests), bests
