"""Train-step throughput: ViT-S baseline vs RA-MIQA without and with the region-token cache.

All three are measured in one run, on the same batch, through mmengine's ``train_step`` (data
preprocessor, forward, MSE loss, backward, AdamW step). The cached model is warmed once so
every timed step is a cache hit (what epochs 2..5 see). Target: cached RA-MIQA <= 1.15x the
ViT-S step time.

    python benchmarks/bench_train_step.py                      # CPU, batch 4
    python benchmarks/bench_train_step.py --device cuda --batch-size 128 --amp
"""
import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from mmengine.optim import build_optim_wrapper

from miqa.registry import MODELS
from miqa.utils import register_all_modules

VIT_NORM = dict(type='MIQADataPreprocessor', mean=(0.5,) * 3, std=(0.5,) * 3)
MODELS_CFG = {
    'ViT-S baseline': dict(type='IQARegressor', backbone=dict(name='vit_small_patch16_224'),
                           data_preprocessor=VIT_NORM),
    'RA-MIQA, no cache': dict(type='RAMIQA', region_cache=False, data_preprocessor=VIT_NORM),
    'RA-MIQA, cache': dict(type='RAMIQA', region_cache=True, data_preprocessor=VIT_NORM),
}


def make_batch(batch_size: int, folder: Path) -> dict:
    """A collated batch as the reference pipeline makes it (uint8 crops + region views + paths)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(batch_size):
        path = folder / f'img{i}.png'
        cv2.imwrite(str(path), rng.integers(0, 256, (288, 288, 3), dtype=np.uint8))
        paths.append(str(path))
    views = torch.from_numpy(np.stack([cv2.imread(p)[:, :, ::-1].transpose(2, 0, 1) for p in paths]))
    samples = dict(gt_score=torch.rand(batch_size, dtype=torch.float64), img_path=paths,
                   sample_idx=torch.arange(batch_size), valid=torch.ones(batch_size, dtype=bool))
    return dict(inputs=views[:, :, 32:256, 32:256].contiguous(), region_inputs=views.contiguous(),
                data_samples=samples)


def time_steps(cfg: dict, batch: dict, steps: int, device: str, amp: bool) -> float:
    """Median seconds per train step."""
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg, pretrained=False)).to(device)
    model.train()
    wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16') if amp else dict(type='OptimWrapper')
    optim = build_optim_wrapper(model, dict(wrapper, optimizer=dict(type='AdamW', lr=1e-4)))
    model.train_step(batch, optim)  # warm-up (fills the region cache)
    times = []
    for _ in range(steps):
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.train_step(batch, optim)
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--amp', action='store_true', help='bf16 autocast (GPU)')
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    register_all_modules(init_default_scope=False)
    with tempfile.TemporaryDirectory() as tmp:
        batch = make_batch(args.batch_size, Path(tmp))
        results = {name: time_steps(cfg, batch, args.steps, args.device, args.amp)
                   for name, cfg in MODELS_CFG.items()}
    base = results['ViT-S baseline']
    device = torch.cuda.get_device_name() if args.device == 'cuda' else f'CPU, {args.threads} threads'
    print(f'train step, batch {args.batch_size}, {device}{", bf16" if args.amp else ""}, '
          f'median of {args.steps}')
    print('| model | s/step | images/s | x ViT-S step time |')
    print('|:--|--:|--:|--:|')
    for name, sec in results.items():
        print(f'| {name} | {sec:.4f} | {args.batch_size / sec:.1f} | {sec / base:.3f} |')
    ratio = results['RA-MIQA, cache'] / base
    print(f'target: cached RA-MIQA <= 1.15x ViT-S -> {ratio:.3f}x ({"met" if ratio <= 1.15 else "NOT met"})')


if __name__ == '__main__':
    main()
