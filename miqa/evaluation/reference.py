"""The paper's published benchmark numbers (MIQD-2.5M val), for side-by-side reports."""
import csv
from functools import cache
from pathlib import Path
from typing import Dict, Optional

from miqa.vocab import METRIC_COLUMNS

PAPER_DIR = Path(__file__).parent / 'paper'
TABLES = {'composite': 'table1_composite.csv', 'accuracy': 'table2_accuracy_consistency.csv',
          'consistency': 'table2_accuracy_consistency.csv'}


@cache
def _rows(table: str) -> Dict[str, Dict[str, str]]:
    with open(PAPER_DIR / table, newline='') as f:
        return {row['method']: row for row in csv.DictReader(f)}


def paper_methods(label: str = 'composite') -> list:
    """Method names as the paper prints them (e.g. ``'RA-MIQA'``, ``'ResNet-50'``, ``'PSNR'``)."""
    return list(_rows(TABLES[label]))


def paper_row(method: str, task: str, label: str = 'composite') -> Optional[Dict[str, float]]:
    """``{'SRCC': .., 'PLCC': .., ...}`` published for ``method`` on ``task`` (None if not reported).

    Table 1 (composite) has all four metrics; the accuracy/consistency table has no KRCC.
    """
    row = _rows(TABLES[label]).get(method)
    if row is None:
        return None
    prefix = f'{task}_' if label == 'composite' else f'{task}_{label}_'
    values = {m: float(row[prefix + m.lower()]) for m in METRIC_COLUMNS if row.get(prefix + m.lower())}
    return values or None
