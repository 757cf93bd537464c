"""Score an MIQD split with human-vision quality metrics and correlate them with the machine labels.

``python tools/benchmark_hvs.py CONFIG [--metrics PSNR SSIM ...] [--paper]``

The split, task and label type come from the config's test dataset (override with ``--task``,
``--label``, ``--split``, ``--split-dir``, ``--data-root``), so HVS rows and the model rows of
``tools/test.py CONFIG CKPT`` describe the same images. Per-image scores are cached (append-only:
an interrupted run resumes, a rerun only correlates); distances (LPIPS, DISTS) are negated; a
metric whose weight files are missing is reported as skipped. The benchmark is
:func:`miqa.hvs.benchmark.benchmark_hvs`, which describes what it writes.
"""
import argparse

from miqa.hvs.benchmark import PAPER_METRICS, benchmark_hvs
from miqa.vocab import FIT_CHOICES, LABEL_TYPES, SPLITS, TASKS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='HVS metrics against machine-quality labels')
    parser.add_argument('config', help='a training/test config (file or packaged name): its test dataset is '
                                       'scored')
    parser.add_argument('--metrics', nargs='+', default=list(PAPER_METRICS),
                        help=f'registered HVS scorers (default: {" ".join(PAPER_METRICS)})')
    parser.add_argument('--task', choices=TASKS)
    parser.add_argument('--label', choices=LABEL_TYPES)
    parser.add_argument('--split', choices=SPLITS)
    parser.add_argument('--split-dir', help='folder of the split CSVs (official names)')
    parser.add_argument('--data-root', help='folder holding miqa_cls/, miqa_det/, miqa_ins/')
    parser.add_argument('--size', type=int,
                        help='warp images and references to SIZE x SIZE (default: native size)')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--workers', type=int, default=2, help='decoding processes')
    parser.add_argument('--fit', choices=FIT_CHOICES,
                        help='mapping before PLCC/RMSE (default: the config\'s, linear)')
    parser.add_argument('--device', default='cpu', help="torch device of the learned metrics ('cuda')")
    parser.add_argument('--paper', action='store_true', help="print the paper's row beside each result")
    parser.add_argument('--out-dir', help='results')
    parser.add_argument('--cache-dir', help='per-image score cache (default $MIQA_HOME/cache/scores/<db>: '
                                            'shared by every split and the reference hook of training runs)')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return benchmark_hvs(args.config, args.metrics, task=args.task, label=args.label, split=args.split,
                         split_dir=args.split_dir, data_root=args.data_root, size=args.size,
                         batch_size=args.batch_size, workers=args.workers, fit=args.fit, device=args.device,
                         paper=args.paper, out_dir=args.out_dir, cache_dir=args.cache_dir,
                         progress=not args.no_progress)


if __name__ == '__main__':
    main()
