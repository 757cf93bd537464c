"""Train and test several configs, score reference metrics, compare with intervals over photos.

``python tools/benchmark_models.py CONFIG [CONFIG ...] [--splits official 1 2] [--hvs PSNR SSIM VSI Lite0-MSP]
[--compare "RA-MIQA (Lite0)=PSNR,SSIM,VSI" ...]``

Per split: each config trained (``tools/train.py --resume auto``) and tested with its last checkpoint
(``tools/test.py``), the reference scorers scored (``tools/benchmark_hvs.py``), then a table of 95 %
bootstrap intervals over val photos and the SRCC differences of ``--compare`` (``A=B`` or
``A=B,C,D``: A minus the best of B, C, D in every resample). Over several splits also mean ± std.
Finished runs with the same settings are reused; see :mod:`miqa.analysis.benchmark`.
"""
import argparse
from typing import List, Sequence, Tuple, Union

from miqa.analysis.benchmark import run_benchmark
from miqa.vocab import FIT_CHOICES


def parse_compare(texts: Sequence[str]) -> List[Tuple[str, Union[str, Tuple[str, ...]]]]:
    pairs = []
    for text in texts:
        a, sep, b = text.partition('=')
        if not sep or not a.strip() or not b.strip():
            raise SystemExit(f'--compare {text!r}: expected "METHOD=OTHER" or "METHOD=A,B,C"')
        others = tuple(x.strip() for x in b.split(','))
        pairs.append((a.strip(), others[0] if len(others) == 1 else others))
    return pairs


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Models and reference scorers, intervals over photos')
    parser.add_argument('configs', nargs='+', help='training configs (one row each)')
    parser.add_argument('--splits', nargs='+', default=['official'],
                        help="split seeds (<data_root>/splits/seed<k>/), other split folders under "
                             "<data_root>/splits/ (e.g. train-seed1) or 'official' (default)")
    parser.add_argument('--hvs', nargs='*', default=[], metavar='SCORER',
                        help='reference scorers (miqa.hvs: PSNR SSIM VSI Lite0-MSP ...) on the same splits')
    parser.add_argument('--compare', nargs='*', default=[], metavar='A=B[,C]',
                        help='SRCC differences with intervals, e.g. "RA-MIQA (Lite0)=PSNR,SSIM,VSI"')
    parser.add_argument('--work-dir', help='default: work_dirs/benchmark_<database folder name>')
    parser.add_argument('--fit', default='linear', choices=FIT_CHOICES,
                        help='mapping before PLCC/RMSE (default linear, as the paper)')
    parser.add_argument('--resamples', type=int, default=2000, help='bootstrap resamples (default 2000)')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='passed to train.py and test.py')
    parser.add_argument('--dry-run', action='store_true', help='print the commands, run nothing')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return run_benchmark(args.configs, args.splits, args.hvs, args.work_dir, args.fit, args.cfg_options,
                         parse_compare(args.compare), args.resamples, args.dry_run)


if __name__ == '__main__':
    main()
