"""The filtering experiment (MIQA spec §8): does dropping the images a quality model rates
lowest raise a downstream machine's performance on what is kept?

    python tools/filter_eval.py --pred RA-MIQA=work_dirs/ra/test_best_cls_composite_predictions.csv \\
        --pred PSNR=work_dirs/hvs/psnr_cls.csv \\
        --machine EfficientNetLite:lite0 --machine EfficientNetLite:lite1 --machine EfficientNetLite:lite2

The experiment is :func:`miqa.analysis.filter_eval.filter_eval` (inputs, rankings, metrics and the
files written are described there): ``<out-dir>/filter_<task>.{json,csv,md}`` and one PNG per
plotted metric, never overwriting an earlier run.
"""
import argparse
import sys

from miqa.analysis.filter_eval import filter_eval
from miqa.analysis.filtering import DEFAULT_FRACTIONS
from miqa.vocab import TASKS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Filtering experiment: drop the lowest-rated images, '
                                                 're-measure downstream machines on the rest')
    parser.add_argument('--pred', action='append', required=True, metavar='NAME=CSV',
                        help='per-image prediction CSV of a quality model or HVS scorer (repeatable)')
    parser.add_argument('--machine', action='append', default=[], metavar='SPEC',
                        help='downstream machine: a registered name with a short config, e.g. '
                             'EfficientNetLite:lite0 or "DetectorAdapter:fn=pkg.mod:make,task=det" '
                             '(repeatable)')
    parser.add_argument('--machine-config',
                        help='a Python config file with `machines = [dict(type=...), ...]`')
    parser.add_argument('--task', choices=TASKS, help='checked against the machines\' task')
    parser.add_argument('--data-root', help='database root (default: from the images\' paths)')
    parser.add_argument('--annotations', help='cls: JSON {src_id: [classes]} / CSV src_id,labels; det/ins: '
                                              'COCO json (default: manifest / split files / instances json '
                                              'of the database)')
    parser.add_argument('--annotated-only', action='store_true',
                        help='only images whose source has an annotated object (det/ins: e.g. the '
                             'sources with a pseudo ground truth in MIQD-mini-det) or ImageNet classes (cls: '
                             'MIQD-mini photos without a fitting class have consistency-only labels)')
    parser.add_argument('--fractions', type=float, nargs='+', default=list(DEFAULT_FRACTIONS),
                        help='fractions filtered out (default 0 0.1 ... 0.7)')
    parser.add_argument('--random-repeats', type=int, default=50, help='random rankings averaged (0: none)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random rankings')
    parser.add_argument('--no-oracle', action='store_true', help='leave out the oracle (label) ranking')
    parser.add_argument('--plot-metric', nargs='+',
                        help='metrics plotted (default: cls top1; det/ins AP75 AP)')
    parser.add_argument('--out-dir', default='work_dirs/filter_eval', help='results folder')
    parser.add_argument('--cache-dir', help='machine output cache (default: <out-dir>/machine_cache)')
    parser.add_argument('--batch-size', type=int, help='machine batch size (unless its config sets one)')
    parser.add_argument('--device', help="machine device (default 'auto': CUDA when available)")
    parser.add_argument('--num-threads', type=int, help='torch CPU threads of a machine call')
    parser.add_argument('--chunk-size', type=int, default=64, help='images per cache part file')
    parser.add_argument('--max-dets', type=int, default=100, help='det/ins: detections kept per image')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return filter_eval(
        args.pred, args.machine, machine_config=args.machine_config, task=args.task,
        data_root=args.data_root, annotations=args.annotations, annotated_only=args.annotated_only,
        fractions=args.fractions, random_repeats=args.random_repeats, seed=args.seed,
        oracle=not args.no_oracle, plot_metrics=args.plot_metric, out_dir=args.out_dir,
        cache_dir=args.cache_dir, batch_size=args.batch_size, device=args.device,
        num_threads=args.num_threads, chunk_size=args.chunk_size, max_dets=args.max_dets,
        progress=not args.no_progress)


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
