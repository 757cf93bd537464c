"""Inference speed of the assessment API on CPU (or a GPU with --device cuda).

    python benchmarks/bench_inference.py [--threads 2] [--batch-size 16] [--num-images 64]
                                         [--models resnet18 vit-small ra-miqa] [--device cpu]

Per model (the reference configs, RANDOM weights: speed does not depend on the values):

- single image: ``MIQAModel.assess`` on a 640x480 BGR array (preprocessing included), and the
  raw forward at batch 1 on the already preprocessed tensors; median of ``--repeats`` runs;
- batch throughput: ``predict_batch`` on pre-collated batches of ``--batch-size`` (images/s);
- ``batch_assess`` end to end on ``--num-images`` 640x480 JPEG files (decode + pipeline in
  ``--workers`` DataLoader workers, same batch size) against that raw forward throughput,
  measured in the same run; the target is a ratio >= 0.8.
"""
import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List

import cv2
import numpy as np
import torch

from miqa.apis.batch import batch_assess
from miqa.apis.inference import MIQAModel, collate

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {'resnet18': 'configs/resnet18/resnet18_cls.py', 'vit-small': 'configs/vit_small/vit_small_cls.py',
           'ra-miqa': 'configs/ra_miqa_cls.py'}


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_images(folder: Path, n: int) -> List[str]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640]
    paths = []
    for i in range(n):
        img = np.stack([xx * 0.4, yy * 0.5, (xx + yy) * 0.2], -1) + rng.normal(0, 20, (480, 640, 3))
        path = folder / f'img{i:04d}.jpg'
        cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(str(path))
    return paths


def bench_model(name: str, paths: List[str], args: argparse.Namespace) -> Dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = MIQAModel(config=ROOT / CONFIGS[name], checkpoint=False, device=args.device)
    frame = cv2.imread(paths[0])
    single = median_time(lambda: model.assess(frame), args.repeats)
    one = collate([model.preprocess(frame)])
    forward1 = median_time(lambda: model.predict_batch(one), args.repeats)

    items = [model.preprocess(p) for p in paths]
    batches = [collate(items[i:i + args.batch_size]) for i in range(0, len(items), args.batch_size)]
    model.predict_batch(batches[0])  # warm-up
    t0 = time.perf_counter()
    for b in batches:
        model.predict_batch(b)
    raw = len(paths) / (time.perf_counter() - t0)

    batch_assess(paths[:args.batch_size], model=model, batch_size=args.batch_size, num_workers=args.workers,
                 progress=False)  # warm-up (worker start-up is part of the timed run below)
    t0 = time.perf_counter()
    scores = batch_assess(paths, model=model, batch_size=args.batch_size, num_workers=args.workers,
                          progress=False)
    e2e = len(paths) / (time.perf_counter() - t0)
    assert np.isfinite(scores).all()
    return dict(single_ms=single * 1e3, forward1_ms=forward1 * 1e3, raw_ips=raw, e2e_ips=e2e, ratio=e2e / raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument('--threads', type=int, default=2, help='torch intra-op threads (default: 2)')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--num-images', type=int, default=64)
    parser.add_argument('--workers', type=int, default=2, help='batch_assess DataLoader workers')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    on_gpu = args.device.startswith('cuda')
    device = torch.cuda.get_device_name() if on_gpu else f'CPU, {args.threads} threads'
    print(f'# bench_inference: {device}, batch {args.batch_size}, {args.num_images} JPEGs 640x480, '
          f'{args.workers} workers; random weights (timing only)')
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_images(Path(tmp), args.num_images)
        print(f'{"model":<10} {"assess 1 img":>13} {"forward b=1":>12} {"forward img/s":>14} '
              f'{"batch_assess img/s":>19} {"e2e/raw":>8}')
        for name in args.models:
            r = bench_model(name, paths, args)
            print(f'{name:<10} {r["single_ms"]:>10.1f} ms {r["forward1_ms"]:>9.1f} ms {r["raw_ips"]:>14.1f} '
                  f'{r["e2e_ips"]:>19.1f} {r["ratio"]:>8.2f}', flush=True)
    print('assess 1 img: MIQAModel.assess on a 640x480 BGR array (preprocessing included), median; '
          'forward b=1: predict_batch on the preprocessed tensors; e2e/raw: batch_assess (decode included) '
          'over the raw forward throughput at the same batch size (target >= 0.8).')


if __name__ == '__main__':
    main()
