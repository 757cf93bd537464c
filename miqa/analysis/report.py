"""One table of HVS metrics and trained models on the same split: the project's Table 1
(``tools/report.py`` is its command line).

A result file is what a tool wrote: ``tools/benchmark_hvs.py``'s ``hvs_results.json`` (one row per
metric, skipped ones marked), ``tools/test.py``'s ``test_*.json`` (one model row) or
``tools/benchmark_models.py``'s ``summary.json`` (mean ± std rows). :func:`combine` checks that
all results describe the same task, label type and split (where the files record them); with
``paper=True`` the paper's MIQD-2.5M value (spec tables) follows each of our values.
"""
import json
from typing import Any, Dict, List, Optional

from miqa.evaluation.reference import paper_row
from miqa.evaluation.tables import markdown_table, metric_cells
from miqa.vocab import METRIC_COLUMNS as COLUMNS


def read_rows(path: str) -> Dict[str, Any]:
    """Rows (``name, kind, values, std``) and the task/label/split a result file records."""
    data = json.loads(open(path).read())
    rows: List[Dict[str, Any]] = []
    if 'rows' in data:  # tools/benchmark_hvs.py
        for name, row in data['rows'].items():
            rows.append(dict(name=name, kind='hvs', status=row.get('status', 'ok'), reason=row.get('reason'),
                             values={c: row.get(c) for c in COLUMNS}, std={}))
        meta = dict(task=data.get('task'), label=data.get('label_type'), split=data.get('split_file'))
    elif 'summary' in data:  # tools/benchmark_models.py
        for name, entry in data['summary'].items():
            rows.append(dict(name=name, kind=entry.get('kind', 'model'), status='ok',
                             values={c: entry.get(c) for c in COLUMNS},
                             std={c: entry.get(f'{c}_std') for c in COLUMNS}))
        meta = dict(task=None, label=None, split=f'splits {", ".join(map(str, data.get("splits", [])))}')
    elif 'metrics' in data:  # tools/test.py
        rows.append(dict(name=data['method'], kind='model', status='ok',
                         values={c: data['metrics'].get(c) for c in COLUMNS}, std={}))
        meta = dict(task=data.get('task'), label=data.get('label_type'), split=None)
    else:
        raise ValueError(f'{path}: not a result of tools/benchmark_hvs.py, tools/test.py or '
                         'tools/benchmark_models.py (no "rows", "summary" or "metrics")')
    return dict(rows=rows, **meta)


def _cell(value: Optional[float], std: Optional[float] = None, paper: Optional[float] = None) -> str:
    if value is None:
        return 'n/a'
    text = f'{value:.4f}' + (f' ± {std:.4f}' if std is not None else '')
    return text + (f' ({paper:.4f})' if paper is not None else '')


def combine(results: List[Dict[str, Any]], paper: bool = False, task: Optional[str] = None,
            label: Optional[str] = None) -> str:
    """The markdown table: HVS rows first (as the paper), then models; skipped metrics marked."""
    def only(key: str) -> Optional[str]:
        values = {r[key] for r in results if r.get(key)}
        if len(values) > 1:
            raise ValueError(f'the results mix {key}s: {sorted(values)}; combine results of one split only')
        return values.pop() if values else None
    task = task or only('task') or 'cls'
    label = label or only('label') or 'composite'
    only('split')
    rows = [row for r in results for row in r['rows']]
    rows.sort(key=lambda row: row['kind'] != 'hvs')  # stable: HVS first, each in file order
    cells = []
    for row in rows:
        if row['status'] != 'ok':
            cells.append([row['name'], *metric_cells(None, COLUMNS)])
            continue
        reference = paper_row(row['name'], task, label) if paper else None
        cells.append([row['name'], *(_cell(row['values'][c], row['std'].get(c), (reference or {}).get(c))
                                     for c in COLUMNS)])
    lines = [markdown_table(['Method', *COLUMNS], cells)]
    if paper:
        lines += ['', f"(in brackets: the paper's MIQD-2.5M value, {task}, {label} labels)"]
    skipped = [f'- {row["name"]}: {row["reason"]}' for row in rows if row['status'] != 'ok']
    return '\n'.join(lines + ([''] + skipped if skipped else []))
