"""Per-group correlation report for any set of quality models and HVS scorers side by side
(``tools/analyze.py`` is its command line): :func:`analyze` reads per-image prediction CSVs
(``tools/test.py``'s ``*_predictions.csv``, ``tools/benchmark_hvs.py``'s), computes SRCC / KRCC
(raw predictions) and PLCC / RMSE (after ``fit``, linear by default as in ``tools/test.py``) for
the whole set and every group (each group its own fit; fewer than 3 images: ``n/a``), and writes
into ``out_dir`` (a timestamp is added to a taken name, nothing is overwritten):

* ``breakdown.md`` -- the overall table, then per breakdown a models x groups table per metric;
* ``breakdown.csv`` -- every value, long format (model, breakdown, group, n, SRCC, PLCC, KRCC, RMSE);
* ``heatmap_<metric>.png`` -- models x groups heat-map of each ``heatmaps`` metric;
* ``scatter_<model>.png`` -- predicted vs label, coloured by region type, with the fitted mapping.
"""
import re
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from miqa.analysis.breakdown import DEFAULT_BREAKDOWNS, columns, compare, markdown, matrix, to_csv
from miqa.analysis.plots import heatmap, scatter
from miqa.analysis.predictions import read_named
from miqa.utils.io import atomic_write_text, unique_path


def safe_name(name: str) -> str:
    return re.sub(r'[^\w.-]+', '_', name).strip('_') or 'model'


def analyze(preds: Sequence[str], by: Sequence[str] = DEFAULT_BREAKDOWNS, fit: Optional[str] = 'linear',
            heatmaps: Sequence[str] = ('SRCC', 'PLCC'), table_metrics: Sequence[str] = ('SRCC', 'PLCC'),
            scatter_plots: bool = True, out_dir: str = 'work_dirs/analysis') -> List[Dict]:
    """Write the report (module docstring) of the ``'NAME=CSV'`` / ``'CSV'`` prediction files;
    ``fit`` ``None`` or ``'none'``: PLCC/RMSE on raw predictions. Returns the rows of
    :func:`~miqa.analysis.breakdown.compare`."""
    start = time.perf_counter()
    fit = None if fit in (None, 'none') else fit
    models = read_named(preds)
    rows = compare(models, list(by), fit)
    out = Path(out_dir)
    written = []

    def write_text(name: str, text: str) -> None:
        path = unique_path(str(out / name))
        atomic_write_text(path, text)
        written.append(path)

    header = (f'Correlations of {len(models)} model(s) with their labels; SRCC/KRCC on raw predictions, '
              f'PLCC/RMSE after a {fit or "no"} fit per group; groups with < 3 images: n/a.\n\n')
    table = markdown(rows, list(table_metrics))
    write_text('breakdown.md', header + table)
    write_text('breakdown.csv', to_csv(rows))
    cols = columns(rows)
    first = next(iter(models))
    counts = {(r['breakdown'], r['group']): r['n'] for r in rows if r['model'] == first}
    same_counts = all(counts.get((r['breakdown'], r['group'])) == r['n'] for r in rows)
    for metric in heatmaps:
        path = unique_path(str(out / f'heatmap_{metric}.png'))
        how = f'after a {fit or "no"} fit' if metric == 'PLCC' else 'raw predictions'
        written.append(heatmap(matrix(rows, metric), cols, path, metric, counts if same_counts else None,
                               title=f'{metric} per group ({how})'))
    if scatter_plots:
        overall = {r['model']: r for r in rows if r['breakdown'] == 'overall'}
        for name, records in models.items():
            path = unique_path(str(out / f'scatter_{safe_name(name)}.png'))
            stats = {k: overall[name][k] for k in ('SRCC', 'PLCC')}
            written.append(scatter(records, path, title=name, fit=fit, stats=stats))
    print(header + table)
    print(f'{len(models)} model(s), {time.perf_counter() - start:.1f} s; written: {", ".join(written)}')
    return rows
