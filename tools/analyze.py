"""Correlations per distortion type, region type (UD / ROI-DD / BG-DD) and level, for any set of
quality models and HVS scorers side by side:

    python tools/analyze.py --pred RA-MIQA=work_dirs/ra/test_best_cls_composite_predictions.csv \\
        --pred PSNR=work_dirs/hvs/psnr_cls.csv --out-dir work_dirs/analysis

Reads per-image prediction CSVs (``tools/test.py``'s ``*_predictions.csv``,
``tools/benchmark_hvs.py``'s), computes SRCC / KRCC (raw predictions) and PLCC / RMSE (after
``--fit``, linear by default as in ``tools/test.py``) for the whole set and every group (each
group its own fit; fewer than 3 images: ``n/a``), and writes into ``--out-dir`` (a timestamp is
added to a taken name, nothing is overwritten):

* ``breakdown.md`` -- the overall table, then per breakdown a models x groups table per metric;
* ``breakdown.csv`` -- every value, long format (model, breakdown, group, n, SRCC, PLCC, KRCC, RMSE);
* ``heatmap_<metric>.png`` -- models x groups heat-map of each ``--heatmap`` metric;
* ``scatter_<model>.png`` -- predicted vs label, coloured by region type, with the fitted mapping.

The report is :func:`miqa.analysis.analyze.analyze`.
"""
import argparse
import sys

from miqa.analysis.analyze import analyze
from miqa.analysis.breakdown import DEFAULT_BREAKDOWNS
from miqa.evaluation.iqa_metric import GROUPINGS
from miqa.vocab import FIT_CHOICES


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Per-distortion / per-region / per-level correlations')
    parser.add_argument('--pred', action='append', required=True, metavar='NAME=CSV',
                        help='per-image prediction CSV (repeatable; a bare path is named by its file stem)')
    parser.add_argument('--by', nargs='+', default=list(DEFAULT_BREAKDOWNS), choices=list(GROUPINGS),
                        help='breakdowns (default: distortion region level; level = max(fg_level, bg_level))')
    parser.add_argument('--fit', choices=FIT_CHOICES, default='linear',
                        help='mapping before PLCC/RMSE (default linear, as tools/test.py)')
    parser.add_argument('--heatmap', nargs='+', default=['SRCC', 'PLCC'], choices=['SRCC', 'PLCC', 'KRCC'],
                        help='metrics drawn as heat-maps')
    parser.add_argument('--table-metrics', nargs='+', default=['SRCC', 'PLCC'],
                        choices=['SRCC', 'PLCC', 'KRCC', 'RMSE'], help='metrics of the per-group tables')
    parser.add_argument('--no-scatter', action='store_true', help='skip the scatter plots')
    parser.add_argument('--out-dir', default='work_dirs/analysis', help='results folder')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return analyze(args.pred, args.by, args.fit, heatmaps=args.heatmap, table_metrics=args.table_metrics,
                   scatter_plots=not args.no_scatter, out_dir=args.out_dir)


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
