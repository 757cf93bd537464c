"""Train-step throughput: ViT-S baseline vs RA-MIQA without and with the region-token cache.

All models are measured in one run, on the same batch, through mmengine's ``train_step`` (data
preprocessor, forward, MSE loss, backward, AdamW step) with the project's optimizer wrapper
(``configs/_base_/schedules/miqa_5e.py``: frozen parameters are not optimised). The steps are
interleaved -- one step of each model per round, the order rotated -- so a changing machine load
touches every model alike; a model's ratio is the median over rounds of its step time against
the ViT-S step of the same round. The cached models are warmed once, so every timed step is a
cache hit (what epochs 2..5 see):

- ``RA-MIQA, cache``: the batch still carries the region views (a pipeline without
  ``RegionView`` keys, or the first epoch's batches);
- ``RA-MIQA, cache, views skipped``: the batch as the loader sends it after the first epoch
  (``RegionView`` skipped every view; keys only, ``miqa_collate``).

Target: a cached RA-MIQA step <= 1.05x the ViT-S step.

    python benchmarks/bench_train_step.py                      # CPU, batch 4
    python benchmarks/bench_train_step.py --device cuda --batch-size 128 --amp --out step.json
"""
import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from miqa.datasets import transforms as tf
from miqa.datasets.collate import miqa_collate
from miqa.registry import MODELS
from miqa.utils import register_all_modules

ROOT = Path(__file__).resolve().parents[1]
VIT_NORM = dict(type='MIQADataPreprocessor', mean=(0.5,) * 3, std=(0.5,) * 3)
#: row name -> (model cfg, whether its batch has the region views)
MODELS_CFG = {
    'ViT-S baseline': (dict(type='IQARegressor', backbone=dict(name='vit_small_patch16_224'),
                            data_preprocessor=VIT_NORM), True),
    'RA-MIQA, no cache': (dict(type='RAMIQA', region_cache=False, data_preprocessor=VIT_NORM), True),
    'RA-MIQA, cache': (dict(type='RAMIQA', region_cache=True, data_preprocessor=VIT_NORM), True),
    'RA-MIQA, cache, views skipped': (dict(type='RAMIQA', region_cache=True, data_preprocessor=VIT_NORM),
                                      False),
}
TARGET = 1.05


def make_batch(batch_size: int, folder: Path) -> dict:
    """A collated batch as the reference pipeline makes it (LoadImage -> Resize 288 -> RegionView
    -> CenterCrop 224 -> Pack, ``miqa_collate``): uint8 crops, region views, keys and paths."""
    rng = np.random.default_rng(0)
    steps = [tf.LoadImage(), tf.Resize(288), tf.RegionView(288, skip_cached=False), tf.CenterCrop(224),
             tf.PackMIQAInputs()]
    items = []
    for i in range(batch_size):
        path = folder / f'img{i}.png'
        cv2.imwrite(str(path), rng.integers(0, 256, (375, 500, 3), dtype=np.uint8))
        results = dict(img_path=str(path), gt_score=float(rng.random()), sample_idx=i)
        for step in steps:
            results = step(results)
        items.append(results)
    return miqa_collate(items)


def without_views(batch: dict) -> dict:
    """The batch after the first epoch: every view skipped by the loader."""
    samples = dict(batch['data_samples'], has_region_view=[False] * len(batch['inputs']))
    return dict(inputs=batch['inputs'], data_samples=samples)


def build(cfg: dict, device: str, amp: bool):
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg, pretrained=False)).to(device)
    model.train()
    optim_cfg = Config.fromfile(str(ROOT / 'configs/_base_/schedules/miqa_5e.py')).optim_wrapper.to_dict()
    if amp:
        optim_cfg.update(type='AmpOptimWrapper', dtype='bfloat16')
    with DefaultScope.overwrite_default_scope('miqa'):
        optim = build_optim_wrapper(model, optim_cfg)
    return model, optim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--steps', type=int, default=7, help='timed rounds (one step of each model)')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast (GPU)')
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    parser.add_argument('--only', nargs='*', help='rows to run (default: all)')
    parser.add_argument('--out', help='write the results as JSON here (for bench_dataloader.py --step-json)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    register_all_modules(init_default_scope=False)
    MMLogger.get_instance('bench', log_level='WARNING')  # the results only, not the build logs
    rows = {k: v for k, v in MODELS_CFG.items() if not args.only or k in args.only or k == 'ViT-S baseline'}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        full = make_batch(args.batch_size, Path(tmp))
        runs = {}
        for name, (cfg, views) in rows.items():
            model, optim = build(cfg, args.device, args.amp)
            batch = full if views else without_views(full)
            model.train_step(full, optim)  # warm-up; fills the region cache
            model.train_step(batch, optim)
            runs[name] = (model, optim, batch)
        wall = {name: [] for name in runs}
        cpu = {name: [] for name in runs}
        order = list(runs)
        for r in range(args.steps):
            for name in order[r % len(order):] + order[:r % len(order)]:
                model, optim, batch = runs[name]
                if args.device == 'cuda':
                    torch.cuda.synchronize()
                start, start_cpu = time.perf_counter(), time.process_time()
                model.train_step(batch, optim)
                if args.device == 'cuda':
                    torch.cuda.synchronize()
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    load_after = os.getloadavg()
    # on a CPU shared with other jobs, the process's own CPU time is what the step costs (the
    # wall time also counts the time other processes held the cores); on a GPU, the wall time
    times = cpu if args.device == 'cpu' else wall
    clock = 'process CPU time' if args.device == 'cpu' else 'wall time'
    base = times['ViT-S baseline']
    device = torch.cuda.get_device_name() if args.device == 'cuda' else f'CPU, {args.threads} threads'
    print(f'train step, batch {args.batch_size}, {device}{", bf16" if args.amp else ""}, median of '
          f'{args.steps} interleaved rounds ({clock}); load average {load_before[0]:.1f} -> '
          f'{load_after[0]:.1f} (1 min)')
    print('| model | s/step | images/s | x ViT-S step (median of per-round ratios) | wall s/step |')
    print('|:--|--:|--:|--:|--:|')
    result = dict(device=device, batch_size=args.batch_size, amp=args.amp, load=[load_before, load_after],
                  clock=clock, ms={}, ratio={}, wall_s=wall, cpu_s=cpu)
    for name, ts in times.items():
        sec = statistics.median(ts)
        ratio = statistics.median(t / b for t, b in zip(ts, base))
        result['ms'][name], result['ratio'][name] = sec * 1e3, ratio
        print(f'| {name} | {sec:.4f} | {args.batch_size / sec:.1f} | {ratio:.3f} | '
              f'{statistics.median(wall[name]):.4f} |')
    for name in ('RA-MIQA, cache', 'RA-MIQA, cache, views skipped'):
        if name in result['ratio']:
            ratio = result['ratio'][name]
            verdict = 'met' if ratio <= TARGET else 'NOT met'
            print(f'target: {name} <= {TARGET}x ViT-S -> {ratio:.3f}x ({verdict})')
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
