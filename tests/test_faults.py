"""Fault injection: a crafted checkpoint or cache never runs code, and a SIGKILL at a chosen moment
(inside a checkpoint write, a best-checkpoint replacement, a database build, an HVS benchmark)
leaves no torn file that anything picks up; the rerun gives the uninterrupted run's result.

Every case is a small real run of the tools as subprocesses on generated fixtures. Kills land
where they should through the test hook of :mod:`miqa.utils.io` (``MIQA_FAULT_PAUSE_IN_WRITE``:
the N-th write of a matching file pauses halfway, after printing a marker, and the test sends
SIGKILL then).
"""
import io
import os
import pickle
import shlex
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pytest
import torch
from test_tools import tiny_config

from miqa.hub import UnsafeCheckpointError, load_training_checkpoint, training_checkpoint_globals
from miqa.utils.io import FAULT_ENV, TEMP_SUFFIX

ROOT = Path(__file__).resolve().parents[1]
MARK = 'miqa-fault: pausing in write of '


# ------------------------------------------------------------------------------------ helpers
def forged_pickle(command: str) -> bytes:
    """``{'meta': getattr(torch.serialization.os, 'system')(command)}``: every global passes the
    old prefix test (``builtins.getattr``, ``torch.``), and ``torch.serialization.os`` is ``os``."""
    def text(s: str) -> bytes:
        data = s.encode()
        return pickle.BINUNICODE + len(data).to_bytes(4, 'little') + data

    return b''.join([pickle.PROTO, bytes([2]), pickle.EMPTY_DICT, text('meta'),
                     pickle.GLOBAL, b'builtins\ngetattr\n', pickle.GLOBAL, b'torch.serialization\nos\n',
                     text('system'), pickle.TUPLE2, pickle.REDUCE,  # getattr(os, 'system')
                     text(command), pickle.TUPLE1, pickle.REDUCE,   # (command)
                     pickle.SETITEM, pickle.STOP])


def forge_checkpoint(path: Path, marker: Path) -> Path:
    """A zip-format torch checkpoint (torch's own layout) whose ``data.pkl`` creates ``marker``."""
    buffer = io.BytesIO()
    torch.save({'state_dict': {}}, buffer)
    genuine = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as out:
        for info in genuine.infolist():
            data = genuine.read(info.filename)
            if info.filename.endswith('/data.pkl'):
                data = forged_pickle(f'touch {shlex.quote(str(marker))}')
            out.writestr(info.filename, data)
    return path


def tool_env(**extra: str) -> Dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE='1', WANDB_MODE='offline', OMP_NUM_THREADS='1',
                PYTHONUNBUFFERED='1', MPLBACKEND='Agg', **extra)


def run_tool(args: List[str], cwd: Path, timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable] + args, cwd=cwd, env=tool_env(**env), capture_output=True,
                          text=True, timeout=timeout)


def descendants(pid: int) -> List[int]:
    """Live descendants of ``pid`` (from /proc; zombies excluded)."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                fields = Path(f'/proc/{entry}/stat').read_text().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if fields[0] != 'Z':
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def kill_when(args: List[str], cwd: Path, ready, timeout: float = 300, **env: str) -> dict:
    """Start ``python args``, SIGKILL it as soon as ``ready(output_so_far)`` is true; returns the
    output, the pids of its descendants at the kill and the kill time. Fails if it ends first."""
    proc = subprocess.Popen([sys.executable] + args, cwd=cwd, env=tool_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: List[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, '')), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while not ready(''.join(lines)):
            assert proc.poll() is None, 'the run ended before the kill:\n' + ''.join(lines)[-4000:]
            assert time.monotonic() < deadline, 'no kill point within the timeout:\n' + ''.join(lines)[-4000:]
            time.sleep(0.01)
        family = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    return dict(output=''.join(lines), family=family, killed_at=killed_at)


def temporaries(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob(f'.*{TEMP_SUFFIX}') if p.is_file())


def files(folder: Path, skip_temporaries: bool = True) -> Dict[str, bytes]:
    tmp = set(temporaries(folder)) if skip_temporaries else set()
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*'))
            if p.is_file() and p not in tmp}


# ------------------------------------------------------------------------- crafted checkpoints
def test_forged_checkpoint_runs_code_when_unpickled_in_full(tmp_path):
    """The forged file is a real exploit (what the old prefix fallback let through)."""
    marker = tmp_path / 'pwned'
    path = forge_checkpoint(tmp_path / 'evil.pth', marker)
    assert sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path))) == [
        'builtins.getattr', 'torch.serialization.os']
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_forged_checkpoint_is_refused_naming_global_and_file(tmp_path):
    marker = tmp_path / 'pwned'
    path = forge_checkpoint(tmp_path / 'evil.pth', marker)
    with pytest.raises(UnsafeCheckpointError, match=r'evil\.pth.*torch\.serialization\.os'):
        load_training_checkpoint(path)
    assert not marker.exists()


@pytest.fixture(scope='module')
def reference(tmp_path_factory, miqd_root):
    """One uninterrupted 2-epoch run of the tiny RA-MIQA config: (tmp dir, config, work dir)."""
    tmp = tmp_path_factory.mktemp('faults')
    cfg = tiny_config(tmp / 'tiny.py', str(miqd_root['root']))
    proc = run_tool([str(ROOT / 'tools/train.py'), str(cfg), '--work-dir', str(tmp / 'reference')], cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return tmp, cfg, tmp / 'reference'


def test_real_training_checkpoints_need_exactly_the_allow_list(reference):
    """Saved through the Runner: every global the checkpoints reference is allowed by name, and they
    load with weights_only=True (no fallback exists)."""
    _, _, work = reference
    allowed = {item[1] if isinstance(item, tuple) else f'{item.__module__}.{item.__qualname__}'
               for item in training_checkpoint_globals()}
    checkpoints = sorted(work.glob('*.pth'))
    assert {p.name for p in checkpoints} == {'epoch_1.pth', 'epoch_2.pth', 'best_SRCC_iter_6.pth'}
    for path in checkpoints:
        names = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
        assert names <= allowed and 'builtins.getattr' in names, (path.name, names - allowed)
        ckpt = load_training_checkpoint(path)
        assert ckpt['message_hub']['log_scalars']['train/loss'].mean() > 0


DOORS = {
    'test': lambda cfg, evil, work: ['tools/test.py', cfg, evil, '--work-dir', work],
    'resume_path': lambda cfg, evil, work: ['tools/train.py', cfg, '--resume', evil, '--work-dir', work],
    'resume_auto': lambda cfg, evil, work: ['tools/train.py', cfg, '--resume', 'auto', '--work-dir', work],
    'load_from': lambda cfg, evil, work: ['tools/train.py', cfg, '--work-dir', work,
                                          '--cfg-options', f'load_from={evil}'],
}


@pytest.mark.parametrize('door', list(DOORS))
def test_forged_checkpoint_never_runs_through_the_tools(door, reference, tmp_path):
    _, cfg, _ = reference
    work = tmp_path / 'work'
    work.mkdir()
    marker = tmp_path / 'pwned'
    if door == 'resume_auto':  # planted in the work dir, named by last_checkpoint
        evil = forge_checkpoint(work / 'epoch_1.pth', marker)
        (work / 'last_checkpoint').write_text(str(evil))
    else:
        evil = forge_checkpoint(tmp_path / 'evil.pth', marker)
    args = DOORS[door](str(cfg), str(evil), str(work))
    proc = run_tool([str(ROOT / args[0])] + args[1:], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert not marker.exists(), f'{door}: the forged checkpoint ran its command'
    assert 'UnsafeCheckpointError' in out and 'torch.serialization.os' in out, out[-3000:]
    assert f'{evil.name} is not an mmengine training checkpoint' in out, out[-3000:]
    assert not list(work.glob('test_*.json')) and not (work / 'epoch_2.pth').exists()  # nothing ran


def test_forged_checkpoint_over_http_is_refused(tmp_path, monkeypatch):
    """``load_from=https://...`` (also behind torchvision:// and open-mmlab://) downloads with torch.hub,
    which unpickles in full; the tools route it through the restricted loader. The download is a
    local copy here (tests never touch the network)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    from miqa.utils.setup_env import patch_checkpoint_io

    marker = tmp_path / 'pwned'
    evil = forge_checkpoint(tmp_path / 'evil.pth', marker)
    monkeypatch.setattr(torch.hub, 'download_url_to_file',
                        lambda url, dst, *args, **kwargs: Path(dst).write_bytes(evil.read_bytes()))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    patch_checkpoint_io()
    with pytest.raises(UnsafeCheckpointError, match=r'evil\.pth.*torch\.serialization\.os'):
        CheckpointLoader.load_checkpoint('https://example.invalid/models/evil.pth')
    assert not marker.exists()


@pytest.mark.parametrize('planted', ['old_pickle', 'npz_object_array', 'npz_wrong_columns'])
def test_planted_index_cache_never_runs_code(planted, make_tree, tmp_path, monkeypatch):
    from miqa.datasets import MIQDDataset
    from miqa.datasets.index import load_index

    monkeypatch.setenv('MIQA_HOME', str(tmp_path / 'home'))
    tree = make_tree(tasks=('cls',), n_src=2, distortions=('fog',))
    load_index(tree['root'], 'cls')  # writes the cache: its name is the one a planted file takes
    (cached,) = (tmp_path / 'home' / 'cache' / 'index').glob('cls-*.npz')
    marker = tmp_path / 'pwned'

    class Evil:
        def __reduce__(self):
            return os.system, (f'touch {shlex.quote(str(marker))}',)

    if planted == 'old_pickle':  # the cache format before: a pickle at <name>.pkl, read first
        cached.with_suffix('.pkl').write_bytes(pickle.dumps({'version': 2, 'columns': Evil()}))
        cached.write_bytes(pickle.dumps(Evil()))
    elif planted == 'npz_object_array':  # numpy pickles object arrays inside .npz files
        with open(cached, 'wb') as f:
            np.savez(f, meta=np.frombuffer(b'{}', np.uint8), src=np.array([Evil()], dtype=object))
    else:  # a well-formed file whose columns do not match: validated, not trusted
        with np.load(cached) as data:
            arrays = dict(data)
        arrays['variant'] = arrays['variant'] + 10_000
        with open(cached, 'wb') as f:
            np.savez(f, **arrays)
    dataset = MIQDDataset(tree['root'], task='cls', split='train')
    assert not marker.exists()
    assert len(dataset) == len(MIQDDataset(tree['root'], task='cls', split='train', cache_dir=False)) > 0
    with np.load(cached, allow_pickle=False) as data:  # rebuilt and re-cached
        assert data['variant'].max() < 10_000 and data['src'].dtype == np.int32


# ------------------------------------------------------------------------ killed training runs
def _every_checkpoint_loads(work: Path) -> None:
    for path in work.glob('*.pth'):
        load_training_checkpoint(path)  # raises on a torn (truncated) file
    pointer = work / 'last_checkpoint'
    if pointer.exists():
        load_training_checkpoint(pointer.read_text().strip())


def _same_result(reference: Path, rerun: Path) -> None:
    assert sorted(p.name for p in rerun.glob('*.pth')) == sorted(p.name for p in reference.glob('*.pth'))
    for path in reference.glob('*.pth'):
        a, b = load_training_checkpoint(path), load_training_checkpoint(rerun / path.name)
        assert a['meta']['epoch'] == b['meta']['epoch'] and a['meta']['iter'] == b['meta']['iter']
        assert a['state_dict'].keys() == b['state_dict'].keys()
        for key in a['state_dict']:
            assert torch.equal(a['state_dict'][key], b['state_dict'][key]), (path.name, key)
        hub_a, hub_b = a['message_hub']['runtime_info'], b['message_hub']['runtime_info']
        assert hub_a.get('best_score') == hub_b.get('best_score'), path.name
        assert Path(hub_a['best_ckpt']).name == Path(hub_b['best_ckpt']).name, path.name
    assert not temporaries(rerun)


def test_checkpoint_writes_and_deletions_come_in_a_safe_order(miqd_root, tmp_path, monkeypatch):
    """In one real (in-process) training run: every checkpoint goes through a temporary file, a previous
    best is deleted only after the new best is written, and an epoch checkpoint followed by a validation
    is written after that validation's best (so it records it). The kill tests below check the same
    under SIGKILL (slow)."""
    from mmengine.config import Config
    from mmengine.fileio.backends import LocalBackend
    from mmengine.runner import Runner

    from miqa.utils import setup_runtime
    from miqa.utils.config import apply_overrides

    cfg = Config.fromfile(str(tiny_config(tmp_path / 'tiny.py', str(miqd_root['root']))))
    cfg = setup_runtime(apply_overrides(cfg, work_dir=str(tmp_path / 'work')))  # as tools/train.py does
    log: List[tuple] = []
    put, remove, replace = LocalBackend.put, LocalBackend.remove, os.replace
    monkeypatch.setattr(LocalBackend, 'put', lambda self, obj, path: (put(self, obj, path),
                                                                       log.append(('put', Path(path).name))))
    monkeypatch.setattr(LocalBackend, 'remove', lambda self, path: (log.append(('remove', Path(path).name)),
                                                                     remove(self, path)))
    monkeypatch.setattr(os, 'replace', lambda src, dst: (log.append(('replace', Path(src).name)),
                                                         replace(src, dst)))
    Runner.from_cfg(cfg).train()
    written = [name for op, name in log if op == 'put']
    assert written[:3] == ['best_SRCC_iter_2.pth', 'best_SRCC_epoch_1.pth', 'epoch_1.pth'], written
    for i, (op, name) in enumerate(log):
        if op == 'put':  # through a temporary sibling renamed into place
            assert log[i - 1][0] == 'replace' and log[i - 1][1].startswith(f'.{name}.'), log[i - 1:i + 1]
        if op == 'remove' and name.startswith('best_'):
            newer = [n for o, n in log[:i] if o == 'put' and n.startswith('best_') and n != name]
            assert newer and log.index(('put', newer[-1])) < i, (name, log)
    assert sorted(p.name for p in (tmp_path / 'work').glob('*.pth')) == [
        'best_SRCC_iter_6.pth', 'epoch_1.pth', 'epoch_2.pth']
    assert not temporaries(tmp_path / 'work')


@pytest.mark.slow
@pytest.mark.parametrize('target', ['epoch_1.pth:120:1', 'best_*:120:2'],
                         ids=['epoch_checkpoint', 'best_replacement'])
def test_kill_inside_a_checkpoint_write_then_resume(target, reference, tmp_path):
    """SIGKILL halfway through writing epoch_1.pth, or through writing the second best while the first
    is still on disk: no torn checkpoint is ever visible, and ``--resume auto`` ends with the files of
    the uninterrupted run."""
    tmp, cfg, ref_work = reference
    work = tmp_path / 'work'
    train = [str(ROOT / 'tools/train.py'), str(cfg), '--work-dir', str(work)]
    killed = kill_when(train, tmp_path, lambda out: MARK in out, **{FAULT_ENV: target})
    written = killed['output'].split(MARK, 1)[1].split('\n', 1)[0]
    assert (work / Path(written).name).exists() is False  # the destination is not touched mid-write
    partial = temporaries(work)
    assert [p.name.startswith(f'.{Path(written).name}.') for p in partial] == [True]
    _every_checkpoint_loads(work)
    if target.startswith('best'):
        (old_best,) = work.glob('best_*.pth')  # the previous best is kept until the new one is whole
        load_training_checkpoint(old_best)
    proc = run_tool(train + ['--resume', 'auto'], cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert 'partial checkpoint(s) of an interrupted run' in proc.stdout + proc.stderr
    _same_result(ref_work, work)


# --------------------------------------------------------------------------- database build
@pytest.fixture(scope='module')
def build_setup(tmp_path_factory):
    """4 small real photos and a build config labelled by EfficientNet-Lite0 (pip weights)."""
    from skimage import data

    root = tmp_path_factory.mktemp('fault_build')
    photos = root / 'photos'
    photos.mkdir()
    for name, image in (('astro', data.astronaut()), ('cat', data.chelsea()), ('coffee', data.coffee()),
                        ('rocket', data.rocket())):
        h, w = image.shape[:2]
        scale = 80 / min(h, w)
        small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(photos / f'{name}.jpg'), small[:, :, ::-1])
    cfg = root / 'build_cfg.py'
    cfg.write_text(f"""task = 'cls'
sources = dict(type='folder', root='{photos}')
distortions = ['gaussian_noise']
max_short_side = 48
seed = 1
labeller = dict(type='MachineLabeller', task='cls', missing_annotation='nan',
                machines=[dict(type='EfficientNetLite', variant='lite0', batch_size=25, num_threads=1)])
workers = 2
""")
    ref = run_tool([str(ROOT / 'tools/build_miqd.py'), str(cfg), '--out', str(root / 'reference'),
                    '--no-progress'], cwd=root, timeout=600)
    assert ref.returncode == 0, ref.stderr[-4000:]
    return root, cfg


@pytest.mark.slow
def test_kill_during_a_database_build_then_rerun(build_setup, tmp_path):
    """SIGKILL the build tool while a worker is writing the second label CSV: its workers stop at once
    (no file changes afterwards), nothing torn is visible, and the rerun gives the same bytes."""
    from miqa.datasets.index import load_index

    root, cfg = build_setup
    out = tmp_path / 'db'
    build = [str(ROOT / 'tools/build_miqd.py'), str(cfg), '--out', str(out), '--no-progress']
    killed = kill_when(build, tmp_path, lambda text: MARK in text, timeout=600,
                       **{FAULT_ENV: '*_mmos.csv:120:2'})
    assert killed['family'], 'the build had no worker processes'
    time.sleep(3)
    assert not [pid for pid in killed['family'] if alive(pid)], 'build workers outlived the killed tool'
    before = {p: p.stat().st_mtime_ns for p in out.rglob('*') if p.is_file()}
    time.sleep(3)
    assert {p: p.stat().st_mtime_ns for p in out.rglob('*') if p.is_file()} == before  # nobody writes
    labels = out / 'miqa_cls' / 'labels'
    assert 1 <= len(list(labels.glob('*_mmos.csv'))) < 4
    assert [p.parent for p in temporaries(out)] and all(p.parent == labels or 'images' in p.parts
                                                        for p in temporaries(out))
    index = load_index(out, 'cls', cache_dir=False)  # the finished sources read back whole
    assert len(index) == 25 * len(list(labels.glob('*_mmos.csv'))) and index.exists.all()
    for png in (out / 'miqa_cls' / 'images').rglob('*.png'):
        assert cv2.imread(str(png)) is not None, png

    proc = run_tool(build, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    reference, rerun = files(root / 'reference'), files(out)
    assert sorted(rerun) == sorted(reference)
    assert [k for k in reference if reference[k] != rerun[k]] == []


# ---------------------------------------------------------------------------- HVS benchmark
@pytest.mark.slow
def test_kill_during_an_hvs_benchmark_then_rerun(make_tree, tmp_path):
    """SIGKILL while scoring (the per-image caches partly written) and again while the results are
    written: the reruns finish with the bytes of an uninterrupted run."""
    tree = make_tree(tasks=('cls',), n_src=4)
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(f"_base_ = ['{ROOT / 'configs' / 'ra_miqa_cls.py'}']\ndata_root = '{tree['root']}'\n")

    def bench(out: Path) -> List[str]:
        return [str(ROOT / 'tools/benchmark_hvs.py'), str(cfg), '--metrics', 'PSNR', 'SSIM',
                '--split', 'train', '--size', '192', '--batch-size', '2', '--workers', '2', '--no-progress',
                '--out-dir', str(out), '--cache-dir', str(out / 'cache')]

    proc = run_tool(bench(tmp_path / 'reference'), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    total = 150  # 3 train sources x 2 distortions x 25 variants

    out = tmp_path / 'killed'
    cache = out / 'cache' / 'SSIM.csv'
    kill_when(bench(out), tmp_path, lambda _: cache.exists() and cache.read_text().count('\n') >= 20)
    scored = cache.read_text().count('\n')
    assert scored < total, 'the benchmark finished before the kill'
    assert not (out / 'hvs_results.json').exists()
    killed = kill_when(bench(out), tmp_path, lambda text: MARK in text, **{FAULT_ENV: 'hvs_results.json'})
    assert 'hvs_results.json' in killed['output'] and not (out / 'hvs_results.json').exists()
    proc = run_tool(bench(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    reference = {k: v for k, v in files(tmp_path / 'reference').items() if not k.startswith('cache')}
    rerun = {k: v for k, v in files(out).items() if not k.startswith('cache')}
    assert sorted(rerun) == sorted(reference) and [k for k in reference if reference[k] != rerun[k]] == []

    def cached(path: Path) -> Dict[str, float]:
        rows = [line.split(',') for line in path.read_text().splitlines()]
        return {row[0]: float(row[1]) for row in rows if len(row) == 2}

    for metric in ('PSNR', 'SSIM'):
        reference_scores = cached(tmp_path / 'reference' / 'cache' / f'{metric}.csv')
        assert cached(out / 'cache' / f'{metric}.csv') == reference_scores


# ------------------------------------------------------------------------------ torchrun agent
@pytest.mark.slow
def test_killing_the_torchrun_agent_stops_the_ranks(reference, tmp_path):
    _, cfg, _ = reference
    work = tmp_path / 'ddp'
    port = str(29600 + os.getpid() % 300)
    args = ['-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_port', port,
            str(ROOT / 'tools/train.py'), str(cfg), '--work-dir', str(work), '--launcher', 'pytorch',
            '--epochs', '30', '--cfg-options', 'train_cfg.val_per_epoch=1']
    killed = kill_when(args, tmp_path, lambda text: 'Epoch(train)' in text)
    ranks = killed['family']
    assert len(ranks) >= 2, killed['output'][-3000:]
    deadline = killed['killed_at'] + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in ranks):
        time.sleep(0.2)
    survivors = [pid for pid in ranks if alive(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors, 'torchrun ranks kept training after their agent was killed'
