"""The one markdown renderer of the project's results tables: method rows of SRCC / PLCC / KRCC /
RMSE (``tools/test.py``, ``tools/benchmark_hvs.py``, ``tools/report.py``, the multi-split benchmark,
bootstrap intervals), per-group breakdowns, the filtering summary and the README's model table.
Standard library and :mod:`miqa.vocab` only."""
from typing import Any, Iterable, Optional, Sequence

from miqa.vocab import METRIC_COLUMNS

#: column rules: left-aligned, centred, plain
LEFT, CENTER, PLAIN = ':--', ':-:', '---'


def cell(value: Any, digits: int = 4) -> str:
    """A table cell: ``n/a`` for ``None``, integers as they are, floats with ``digits``."""
    if value is None:
        return 'n/a'
    return str(value) if isinstance(value, int) else f'{value:.{digits}f}'


def table_row(cells: Iterable[Any]) -> str:
    return '| ' + ' | '.join(str(c) for c in cells) + ' |'


def markdown_table(header: Sequence[Any], rows: Iterable[Sequence[Any]],
                   rules: Optional[Sequence[str]] = None) -> str:
    """``header``, the rule line and one line per row. ``rules``: one per column (default: the first
    column left-aligned, the others centred)."""
    rules = list(rules) if rules is not None else [LEFT] + [CENTER] * (len(header) - 1)
    if len(rules) != len(header):
        raise ValueError(f'{len(rules)} rules for {len(header)} columns')
    return '\n'.join([table_row(header), '|' + '|'.join(rules) + '|', *(table_row(r) for r in rows)])


def metric_cells(values: Optional[dict], columns: Sequence[str] = METRIC_COLUMNS,
                 digits: int = 4) -> list:
    """The cells of one results row; ``values`` ``None`` marks a skipped method."""
    if values is None:
        return ['skipped'] * len(columns)
    return ['n/a' if values.get(c) is None else f'{values[c]:.{digits}f}' for c in columns]
