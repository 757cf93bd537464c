"""Time ``miqa.evaluation.correlations`` on a full-size evaluation set.

Usage (repository root, package installed or ``PYTHONPATH=.``):
``python benchmarks/bench_metrics.py [--n 250000] [--repeats 3] [--seed 0]``

Labels in [0, 1] and predictions that follow them through a noisy monotone (logistic)
relation, as a trained model's would. Each fit is timed as the median of ``--repeats``
runs; the ratio is to the raw (``fit=None``) baseline measured in the same run.
Targets (2-core CPU): < 2 s without a logistic fit, < 10 s with one.
"""
import argparse
import statistics
import time
from typing import Optional

import numpy as np

from miqa.evaluation import correlations
from miqa.evaluation.functional import FITS as FIT_FUNCTIONS

FITS = tuple(FIT_FUNCTIONS)
TARGET_S = {None: 2.0, 'linear': 2.0, 'logistic4': 10.0, 'logistic5': 10.0}


def make_data(n: int, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    target = rng.beta(4, 1.5, size=n)
    pred = np.log(target / (1 - target + 1e-3) + 1e-3) + rng.normal(scale=0.8, size=n)
    return pred, target


def time_fit(pred: np.ndarray, target: np.ndarray, fit: Optional[str], repeats: int) -> tuple:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = correlations(pred, target, fit=fit)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n', type=int, default=250_000)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    pred, target = make_data(args.n, args.seed)
    rows = [(fit, *time_fit(pred, target, fit, args.repeats)) for fit in FITS]
    baseline = rows[0][1]
    print(f'correlations() on n={args.n:,}, median of {args.repeats} runs')
    print('| fit | seconds | x raw | target | ok | SRCC | PLCC | RMSE |')
    print('|---|---|---|---|---|---|---|---|')
    for fit, seconds, out in rows:
        ok = 'yes' if seconds < TARGET_S[fit] else 'NO'
        print(f'| {fit} | {seconds:.3f} | {seconds / baseline:.2f} | < {TARGET_S[fit]:g} s | {ok} '
              f"| {out['SRCC']:.4f} | {out['PLCC']:.4f} | {out['RMSE']:.4f} |")


if __name__ == '__main__':
    main()
