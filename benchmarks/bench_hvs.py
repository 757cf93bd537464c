"""Throughput of the full-reference HVS scorers (``miqa.hvs``) on CPU.

Usage (repository root, package installed or ``PYTHONPATH=.``):
``python benchmarks/bench_hvs.py [--threads 2] [--size 224] [--batch 16] [--batches 3] [--n 250000]``

Each scorer scores ``--batches`` batches of ``--batch`` noisy/reference pairs of ``--size``^2
RGB images (after one warm-up batch); images/second is the median batch. LPIPS and DISTS run
with RANDOM weights (``pretrained=False``): their cost does not depend on the weight values, so
the timing holds for the real files while no file is needed. The last column is the estimated
time to score ``--n`` images (the MIQD-2.5M val sets hold about 250,000) at that rate, decoding
excluded. ``images/CPU-s`` (per CPU second of this process) is less sensitive to other jobs on
shared cores: with ``T`` idle cores the wall rate is at most ``T`` times it.
"""
import argparse
import statistics
import time

import torch

from miqa.hvs import build_scorer

SCORERS = (('PSNR', {}), ('SSIM', {}), ('VSI', {}),
           ('LPIPS', dict(pretrained=False)), ('DISTS', dict(pretrained=False)))


def time_scorer(name: str, kwargs: dict, ref: torch.Tensor, dist: torch.Tensor, batches: int) -> tuple:
    """(images per wall second, images per CPU second of this process), median batch."""
    scorer = build_scorer(name, **kwargs)
    scorer.score(dist, ref)  # warm-up
    wall, cpu = [], []
    for _ in range(batches):
        start, start_cpu = time.perf_counter(), time.process_time()
        scorer.score(dist, ref)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return ref.shape[0] / statistics.median(wall), ref.shape[0] / statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--batches', type=int, default=3)
    parser.add_argument('--n', type=int, default=250_000)
    parser.add_argument('--only', nargs='*', default=None, help='scorer names (default: all)')
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(args.batch, 3, args.size, args.size, generator=gen)
    dist = (ref + 0.05 * torch.randn(ref.shape, generator=gen)).clamp(0, 1)
    print(f'{args.batch} x 3 x {args.size} x {args.size}, {args.threads} CPU threads, median of '
          f'{args.batches} batches; estimate for {args.n:,} images')
    print('| scorer | weights | images/s | images/CPU-s | est. hours |')
    print('|---|---|---|---|---|')
    for name, kwargs in SCORERS:
        if args.only and name not in args.only:
            continue
        rate, cpu_rate = time_scorer(name, kwargs, ref, dist, args.batches)
        weights = 'random (timing only)' if kwargs.get('pretrained') is False else 'none needed'
        hours = args.n / rate / 3600
        print(f'| {name} | {weights} | {rate:.2f} | {cpu_rate:.2f} | {hours:.1f} |', flush=True)


if __name__ == '__main__':
    main()
