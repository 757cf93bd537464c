"""Correlations per distortion type, region type and level, for any set of models side by side.

Groups come from :mod:`miqa.evaluation.iqa_metric` (:data:`~miqa.evaluation.iqa_metric.GROUPINGS`,
the grouping ``IQAMetric(breakdown=True)`` and ``tools/test.py`` use): ``distortion`` (the 10
types), ``region`` (UD / ROI-DD / BG-DD), ``level`` (the strongest level in the image,
``max(fg_level, bg_level)``), ``fg_level``, ``bg_level``. Every group is evaluated as a set of
its own with :func:`~miqa.evaluation.iqa_metric.group_metrics` (SRCC, KRCC on raw predictions;
PLCC, RMSE after the group's own ``fit``, linear by default as in ``tools/test.py``); a group
with fewer than 3 usable images reports ``None``, printed ``n/a``.
"""
import csv
import io
from typing import Any, Dict, List, Mapping, Optional, Sequence

from miqa.evaluation.iqa_metric import GROUPINGS, group_metrics, group_samples, is_usable
from miqa.evaluation.tables import cell, markdown_table
from miqa.vocab import METRIC_COLUMNS

DEFAULT_BREAKDOWNS = ('distortion', 'region', 'level')
CSV_COLUMNS = ('model', 'breakdown', 'group', 'n') + METRIC_COLUMNS


def breakdown(records: Sequence[Mapping[str, Any]], by: Sequence[str] = DEFAULT_BREAKDOWNS,
              fit: Optional[str] = 'linear', keys: Sequence[str] = METRIC_COLUMNS) -> List[Dict[str, Any]]:
    """Rows ``dict(breakdown, group, n, SRCC, PLCC, KRCC, RMSE)``: the whole set first
    (``breakdown='overall'``, ``group='all'``), then every group of every breakdown in report
    order. Unusable records (``valid=False``, non-finite values) are left out of every row."""
    unknown = [b for b in by if b not in GROUPINGS]
    if unknown:
        raise KeyError(f'unknown breakdown(s) {unknown}; choose from {list(GROUPINGS)}')
    usable = [r for r in records if is_usable(r)]
    rows = [dict(breakdown='overall', group='all', n=len(usable), **group_metrics(usable, keys, fit))]
    for name in by:
        for group, members in group_samples(usable, name).items():
            rows.append(dict(breakdown=name, group=group, n=len(members),
                             **group_metrics(members, keys, fit)))
    return rows


def compare(models: Mapping[str, Sequence[Mapping[str, Any]]], by: Sequence[str] = DEFAULT_BREAKDOWNS,
            fit: Optional[str] = 'linear') -> List[Dict[str, Any]]:
    """:func:`breakdown` rows of every model, each with its ``model`` name, in input order."""
    return [dict(model=name, **row) for name, records in models.items()
            for row in breakdown(records, by, fit)]


def columns(rows: Sequence[Mapping[str, Any]]) -> List[tuple]:
    """The ``(breakdown, group)`` columns of ``rows`` in first-seen order (overall first)."""
    return list(dict.fromkeys((r['breakdown'], r['group']) for r in rows))


def matrix(rows: Sequence[Mapping[str, Any]], metric: str = 'SRCC'
           ) -> Dict[str, Dict[tuple, Optional[float]]]:
    """``{model: {(breakdown, group): value or None}}`` of :func:`compare` rows."""
    out: Dict[str, Dict[tuple, Optional[float]]] = {}
    for r in rows:
        out.setdefault(r['model'], {})[(r['breakdown'], r['group'])] = r[metric]
    return out


def markdown(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] = ('SRCC', 'PLCC'),
             digits: int = 4) -> str:
    """The overall table (models x n, SRCC, PLCC, KRCC, RMSE), then per breakdown and metric a
    table with models as rows and groups as columns, followed by the image count of every group
    (one count row per model when the models' counts differ)."""
    models = list(dict.fromkeys(r['model'] for r in rows))
    cols = columns(rows)
    counts = {(r['model'], r['breakdown'], r['group']): r['n'] for r in rows}
    overall = {r['model']: r for r in rows if r['breakdown'] == 'overall'}
    table = markdown_table(['model', 'n', *METRIC_COLUMNS],
                           [[m, overall[m]['n'], *(cell(overall[m].get(k), digits) for k in METRIC_COLUMNS)]
                            for m in models if m in overall])
    parts = [f'**overall**\n\n{table}']
    for name in dict.fromkeys(b for b, _ in cols if b != 'overall'):
        groups = [g for b, g in cols if b == name]
        for metric in metrics:
            values = matrix(rows, metric)
            body = [[m, *(cell(values[m].get((name, g)), digits) for g in groups)] for m in models]
            n_rows = {m: tuple(counts.get((m, name, g), 0) for g in groups) for m in models}
            if len(set(n_rows.values())) == 1:
                body.append(['n', *n_rows[models[0]]])
            else:
                body += [[f'n ({m})', *n_rows[m]] for m in models]
            parts.append(f'**{metric} per {name}**\n\n' + markdown_table(['model', *groups], body))
    return '\n\n'.join(parts) + '\n'


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Long-format CSV of :func:`compare` rows (``n/a`` for ``None``, full precision)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([r.get(c) if r.get(c) is not None else 'n/a' for c in CSV_COLUMNS])
    return buffer.getvalue()


__all__ = ['DEFAULT_BREAKDOWNS', 'breakdown', 'cell', 'columns', 'compare', 'markdown', 'matrix', 'to_csv']
