"""End-to-end training throughput (loader workers + train step) against the train step alone.

For ViT-S and RA-MIQA (region-token cache on): the step alone (one batch repeated, no loader) and
the whole loop -- a DataLoader with N fork-started workers running the config's train pipeline
(``configs/ra_miqa_cls.py`` / ``configs/vit_small/vit_small_cls.py``, ``miqa_collate``, pinned
memory) on real 500x375 PNGs (``bench_dataloader.make_tree``; drawn with replacement, so an epoch
is long enough to be throughput-bound; the files sit in the page cache: disk reads are not
measured), then the model's ``train_step`` with the project's optimizer wrapper. The first epoch
fills RA-MIQA's cache (reported apart); the later epochs are the steady state (every region view
skipped). On a GPU the
utilisation is sampled from ``nvidia-smi`` every 0.2 s while the loop runs.

Target (issue 15): end-to-end >= 0.9x the step alone with the workers of a 16-core node.

    python benchmarks/bench_train_e2e.py --device cuda --batch-size 128 --amp --workers 8 14
    python benchmarks/bench_train_e2e.py --tiny --batch-size 8 --workers 2 --sources 2   # CPU smoke
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from torch.utils.data import DataLoader, RandomSampler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dataloader import ROOT, dataset, make_tree  # noqa: E402
from bench_train_step import build  # noqa: E402

from miqa.datasets.collate import miqa_collate  # noqa: E402
from miqa.utils import register_all_modules  # noqa: E402

ROWS = {'ViT-S': 'configs/vit_small/vit_small_cls.py', 'RA-MIQA': 'configs/ra_miqa_cls.py'}


class GpuSampler:
    """Mean GPU utilisation (%) reported by ``nvidia-smi`` while the ``with`` block runs."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.samples, self._stop = enabled, [], threading.Event()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            gpu = os.environ.get('CUDA_VISIBLE_DEVICES', '0').split(',')[0]
            query = ['nvidia-smi', '--query-gpu=utilization.gpu', '--format=csv,noheader,nounits', '-i', gpu]
            out = subprocess.run(query, capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip():
                self.samples.append(float(out.stdout.split()[0]))

    def __enter__(self) -> 'GpuSampler':
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join()

    @property
    def mean(self) -> Optional[float]:
        return statistics.mean(self.samples) if self.samples else None


def model_cfg(path: str, tiny: bool) -> dict:
    cfg = Config.fromfile(str(ROOT / path)).model.to_dict()
    if tiny:
        cfg['backbone'] = dict(cfg['backbone'], depth=1)
        if 'region_encoder' in cfg:
            cfg['region_encoder'] = dict(cfg['region_encoder'], depth=1)
    return cfg


def sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def step_alone(model, optim, batch: dict, steps: int, device: str) -> float:
    """Images/s of ``train_step`` on one batch, repeated."""
    model.train_step(batch, optim)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_step(batch, optim)
    sync(device)
    return steps * len(batch['inputs']) / (time.perf_counter() - start)


def epochs(model, optim, loader: DataLoader, n: int, device: str) -> List[float]:
    """Images/s of each of ``n`` epochs of the whole loop."""
    rates = []
    for _ in range(n):
        sync(device)
        start, seen = time.perf_counter(), 0
        for batch in loader:
            model.train_step(batch, optim)
            seen += len(batch['inputs'])
        sync(device)
        rates.append(seen / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--amp', action='store_true', help='bf16 autocast (GPU)')
    parser.add_argument('--workers', type=int, nargs='+', default=[8, 14])
    parser.add_argument('--sources', type=int, default=40, help='MIQD sources x 25 images (real photos)')
    parser.add_argument('--epochs', type=int, default=3, help='steady-state epochs after the first')
    parser.add_argument('--epoch-batches', type=int, default=100,
                        help='batches per epoch, drawn with replacement from the tree: an epoch must be much '
                             'longer than workers x batch, or the workers\' start-up latency is measured')
    parser.add_argument('--steps', type=int, default=20, help='steps of the step-alone measurement')
    parser.add_argument('--tiny', action='store_true', help='1-block ViTs (a CPU smoke run)')
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args()
    register_all_modules(init_default_scope=False)
    MMLogger.get_instance('bench', log_level='WARNING')
    results: Dict[str, dict] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tree = make_tree(Path(tmp) / 'miqd', args.sources)
        for name, path in ROWS.items():
            cfg = Config.fromfile(str(ROOT / path))
            ds = dataset(tree['root'], [dict(s) for s in cfg.train_dataloader.dataset.pipeline])
            model, optim = build(model_cfg(path, args.tiny), args.device, args.amp)
            row = results[name] = dict(images=len(ds), workers={})
            first = miqa_collate([ds[i] for i in range(args.batch_size)])
            row['step_alone'] = step_alone(model, optim, first, args.steps, args.device)
            for workers in args.workers:
                with DefaultScope.overwrite_default_scope('miqa'):
                    sampler = RandomSampler(ds, replacement=True, generator=torch.Generator().manual_seed(0),
                                            num_samples=args.epoch_batches * args.batch_size)
                    loader = DataLoader(ds, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                                        num_workers=workers, persistent_workers=True, prefetch_factor=4,
                                        pin_memory=args.device == 'cuda', collate_fn=miqa_collate,
                                        multiprocessing_context='fork')
                cold = epochs(model, optim, loader, 1, args.device)[0]
                with GpuSampler(args.device == 'cuda') as gpu:
                    warm = epochs(model, optim, loader, args.epochs, args.device)
                rate = statistics.median(warm)
                row['workers'][workers] = dict(first_epoch=cold, steady=rate, ratio=rate / row['step_alone'],
                                               gpu_util=gpu.mean)
                del loader
            stats = getattr(model, 'region_cache', None)
            row['region_cache'] = stats.stats() if stats is not None else None
            del model, optim
            if args.device == 'cuda':
                torch.cuda.empty_cache()
    load_after = os.getloadavg()
    device = torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'
    print(f'end-to-end training, {device}{", bf16" if args.amp else ""}, batch {args.batch_size}, '
          f'{os.cpu_count()} cores; load average {load_before[0]:.1f} -> {load_after[0]:.1f}')
    print('| model | step alone (images/s) | workers | first epoch | later epochs (images/s) | x step alone '
          '| GPU util. |')
    print('|:--|--:|--:|--:|--:|--:|--:|')
    for name, row in results.items():
        for workers, r in row['workers'].items():
            util = f'{r["gpu_util"]:.0f} %' if r['gpu_util'] is not None else '-'
            print(f'| {name} | {row["step_alone"]:.0f} | {workers} | {r["first_epoch"]:.0f} | '
                  f'{r["steady"]:.0f} | {r["ratio"]:.2f} | {util} |')
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(dict(device=device, batch_size=args.batch_size, amp=args.amp,
                                                  load=[load_before, load_after], rows=results), indent=1))


if __name__ == '__main__':
    main()
