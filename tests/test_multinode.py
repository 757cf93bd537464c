"""Multi-node launch scripts: two torchrun "nodes" on one machine train and evaluate exactly like
one node with the same global batch (tools/dist_train.sh, gloo on CPU); tools/slurm_train.sh
hands tools/train.py only options it defines."""
import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_tools import ROOT, state_dict, tiny_config


def _port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    path = f'{Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}'  # `python` of this venv
    return dict(os.environ, PATH=path, HF_HUB_OFFLINE='1', WANDB_MODE='offline', OMP_NUM_THREADS='1',
                PYTHONUNBUFFERED='1', MASTER_ADDR='127.0.0.1', **{k: str(v) for k, v in extra.items()})


def _check(procs) -> None:
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-6000:]


def _launch(nodes: int, args, script=None, timeout=600):
    """``tools/dist_train.sh`` (or torchrun with ``script``) as ``nodes`` agents of 2 // nodes ranks."""
    port = _port()
    procs = []
    for rank in range(nodes):
        env = _env(NNODES=nodes, NODE_RANK=rank, MASTER_PORT=port)
        if script is None:
            cmd = ['bash', str(ROOT / 'tools/dist_train.sh'), args[0], str(2 // nodes), *args[1:]]
        else:
            cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nnodes={nodes}', f'--node_rank={rank}',
                   '--master_addr=127.0.0.1', f'--master_port={port}', f'--nproc_per_node={2 // nodes}',
                   str(ROOT / script), *args, '--launcher', 'pytorch']
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    _check(procs)


def _val_metrics(work: Path) -> list:
    lines = [json.loads(line) for line in next(work.glob('*/vis_data/scalars.json')).read_text().splitlines()]
    return [rec for rec in lines if 'SRCC' in rec]


@pytest.mark.slow  # three tiny trainings and two evaluations through torchrun: about 3 min on 2 cores
def test_two_nodes_train_and_evaluate_like_one_node(tmp_path, miqd_root):
    cfg = str(tiny_config(tmp_path / 'tiny.py', str(miqd_root['root'])))
    runs = {}
    for nodes in (1, 2):  # 1 node x 2 ranks vs 2 nodes x 1 rank: the same global batch of 8
        work = tmp_path / f'nodes{nodes}'
        _launch(nodes, [cfg, '--work-dir', str(work)])
        runs[nodes] = work
    one, two = _val_metrics(runs[1]), _val_metrics(runs[2])
    assert len(one) == len(two) == 4  # validated twice per epoch, 2 epochs
    for a, b in zip(one, two):
        assert a['step'] == b['step']
        for key in ('SRCC', 'PLCC', 'KRCC', 'RMSE'):
            assert b[key] == pytest.approx(a[key], abs=1e-6), key
    a, b = state_dict(runs[1] / 'epoch_2.pth'), state_dict(runs[2] / 'epoch_2.pth')
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)

    for nodes in (1, 2):  # evaluation of the two-node checkpoint on one and on two nodes
        _launch(nodes, [cfg, str(runs[2] / 'epoch_2.pth'), '--work-dir', str(tmp_path / f'test{nodes}')],
                script='tools/test.py')
    preds = [next((tmp_path / f'test{n}').glob('*_predictions.csv')).read_text() for n in (1, 2)]
    assert preds[0] == preds[1] and len(preds[0].splitlines()) == 51  # 50 val images, same order
    metrics = [json.loads(next((tmp_path / f'test{n}').glob('test_epoch_2_*.json')).read_text())['metrics']
               for n in (1, 2)]
    for key, value in metrics[0].items():
        if isinstance(value, float):
            assert metrics[1][key] == pytest.approx(value, abs=1e-6), key


def test_slurm_script_passes_only_defined_options(tmp_path):
    """A stand-in ``srun`` records what tools/slurm_train.sh asks of Slurm; the python command it
    runs must parse with tools/train.py's own parser (the reference's scripts passed flags their
    parser did not define, spec §9)."""
    fake = tmp_path / 'bin'
    fake.mkdir()
    record = tmp_path / 'srun_args.json'
    (fake / 'srun').write_text(f'#!{sys.executable}\nimport json, sys\n'
                               f'json.dump(sys.argv[1:], open({str(record)!r}, "w"))\n')
    (fake / 'srun').chmod(0o755)
    env = dict(os.environ, PATH=f'{fake}{os.pathsep}{os.environ["PATH"]}', GPUS='16', GPUS_PER_NODE='8',
               SRUN_ARGS='--quotatype=auto --exclusive')
    subprocess.run(['bash', str(ROOT / 'tools/slurm_train.sh'), 'gpu', 'job', 'configs/ra_miqa_cls.py',
                    'work_dirs/x', '--amp', '--cfg-options', 'train_dataloader.num_workers=4'],
                   env=env, check=True, timeout=60)
    args = json.loads(record.read_text())
    assert args[:2] == ['-p', 'gpu'] and '--ntasks=16' in args and '--ntasks-per-node=8' in args
    assert '--gres=gpu:8' in args and '--quotatype=auto' in args and '--exclusive' in args
    cmd = args[args.index('python'):]
    assert cmd[:3] == ['python', '-u', 'tools/train.py']
    code = ('from miqa.engine.train import parse_args; '
            f'a = parse_args({cmd[3:]!r}); print(a.launcher, a.work_dir, a.amp)')
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-3:] == ['slurm', 'work_dirs/x', 'True'], shlex.join(cmd)
    usage = subprocess.run(['bash', str(ROOT / 'tools/slurm_train.sh'), 'gpu'], env=env, capture_output=True,
                           text=True)
    assert usage.returncode == 2 and 'usage' in usage.stderr


def test_slurm_array_build_script_submits_shards_then_finalize(tmp_path):
    """A stand-in ``sbatch`` records the two submissions of tools/slurm_build_miqd.sh: an array of
    one task per shard and a finalize job that waits for all of them; every wrapped command parses
    with tools/build_miqd.py's own parser, one shard index per task."""
    fake = tmp_path / 'bin'
    fake.mkdir()
    log = tmp_path / 'sbatch.jsonl'
    (fake / 'sbatch').write_text(f'#!{sys.executable}\nimport json, sys\n'
                                 f'open({str(log)!r}, "a").write(json.dumps(sys.argv[1:]) + "\\n")\n'
                                 'print("4242;cluster" if any(a.startswith("--array") for a in sys.argv) '
                                 'else "4243")\n')
    (fake / 'sbatch').chmod(0o755)
    env = dict(os.environ, PATH=f'{fake}{os.pathsep}{os.environ["PATH"]}', CPUS_PER_TASK='8')
    out = subprocess.run(['bash', str(ROOT / 'tools/slurm_build_miqd.sh'), 'configs/build/miqd_mini.py',
                          str(tmp_path / 'db'), '4', 'cpu'], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    array, final = [json.loads(line) for line in log.read_text().splitlines()]
    assert '--array=0-3' in array and '--partition=cpu' in array and '--cpus-per-task=8' in array
    assert '--dependency=afterok:4242' in final
    wraps = [next(a for a in job if a.startswith('--wrap='))[len('--wrap='):] for job in (array, final)]
    shard_cmd = wraps[0].replace('$SLURM_CPUS_PER_TASK', '8')
    cmds = [shlex.split(shard_cmd.replace('$SLURM_ARRAY_TASK_ID', str(task))) for task in range(4)]
    assert all(cmd[:2] == ['python', 'tools/build_miqd.py'] for cmd in cmds)
    code = ('import json; from miqa.database.cli import parse_args; '  # the parser of tools/build_miqd.py
            f'print(json.dumps([vars(parse_args(a)) for a in {[c[2:] for c in cmds]!r}]))')
    parsed = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert parsed.returncode == 0, parsed.stderr[-3000:]
    shards = json.loads(parsed.stdout.splitlines()[-1])
    assert [a['shard_index'] for a in shards] == [0, 1, 2, 3]
    assert all(a['num_shards'] == 4 and a['workers'] == 8 for a in shards)
    assert all(a['out'] == str(tmp_path / 'db') for a in shards)
    final_cmd = shlex.split(wraps[1])
    assert final_cmd[2:] == ['configs/build/miqd_mini.py', '--out', str(tmp_path / 'db'), '--finalize']
