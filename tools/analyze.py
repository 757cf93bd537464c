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
"""
import argparse
import re
import sys
import time
from pathlib import Path

from miqa.analysis.breakdown import DEFAULT_BREAKDOWNS, columns, compare, markdown, matrix, to_csv
from miqa.analysis.plots import heatmap, scatter
from miqa.analysis.predictions import read_named
from miqa.evaluation.iqa_metric import GROUPINGS
from miqa.utils.io import atomic_write_text, unique_path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Per-distortion / per-region / per-level correlations')
    parser.add_argument('--pred', action='append', required=True, metavar='NAME=CSV',
                        help='per-image prediction CSV (repeatable; a bare path is named by its file stem)')
    parser.add_argument('--by', nargs='+', default=list(DEFAULT_BREAKDOWNS), choices=list(GROUPINGS),
                        help='breakdowns (default: distortion region level; level = max(fg_level, bg_level))')
    parser.add_argument('--fit', choices=['none', 'linear', 'logistic4', 'logistic5'], default='linear',
                        help='mapping before PLCC/RMSE (default linear, as tools/test.py)')
    parser.add_argument('--heatmap', nargs='+', default=['SRCC', 'PLCC'], choices=['SRCC', 'PLCC', 'KRCC'],
                        help='metrics drawn as heat-maps')
    parser.add_argument('--table-metrics', nargs='+', default=['SRCC', 'PLCC'],
                        choices=['SRCC', 'PLCC', 'KRCC', 'RMSE'], help='metrics of the per-group tables')
    parser.add_argument('--no-scatter', action='store_true', help='skip the scatter plots')
    parser.add_argument('--out-dir', default='work_dirs/analysis', help='results folder')
    return parser.parse_args(argv)


def safe_name(name: str) -> str:
    return re.sub(r'[^\w.-]+', '_', name).strip('_') or 'model'


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    fit = None if args.fit == 'none' else args.fit
    models = read_named(args.pred)
    rows = compare(models, args.by, fit)
    out = Path(args.out_dir)
    written = []

    def write_text(name: str, text: str) -> None:
        path = unique_path(str(out / name))
        atomic_write_text(path, text)
        written.append(path)

    header = (f'Correlations of {len(models)} model(s) with their labels; SRCC/KRCC on raw predictions, '
              f'PLCC/RMSE after a {fit or "no"} fit per group; groups with < 3 images: n/a.\n\n')
    table = markdown(rows, args.table_metrics)
    write_text('breakdown.md', header + table)
    write_text('breakdown.csv', to_csv(rows))
    cols = columns(rows)
    first = next(iter(models))
    counts = {(r['breakdown'], r['group']): r['n'] for r in rows if r['model'] == first}
    same_counts = all(counts.get((r['breakdown'], r['group'])) == r['n'] for r in rows)
    for metric in args.heatmap:
        path = unique_path(str(out / f'heatmap_{metric}.png'))
        how = f'after a {fit or "no"} fit' if metric == 'PLCC' else 'raw predictions'
        written.append(heatmap(matrix(rows, metric), cols, path, metric, counts if same_counts else None,
                               title=f'{metric} per group ({how})'))
    if not args.no_scatter:
        overall = {r['model']: r for r in rows if r['breakdown'] == 'overall'}
        for name, records in models.items():
            path = unique_path(str(out / f'scatter_{safe_name(name)}.png'))
            stats = {k: overall[name][k] for k in ('SRCC', 'PLCC')}
            written.append(scatter(records, path, title=name, fit=fit, stats=stats))
    print(header + table)
    print(f'{len(models)} model(s), {time.perf_counter() - start:.1f} s; written: {", ".join(written)}')
    return rows


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
