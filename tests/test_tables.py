"""miqa.evaluation.tables: the one markdown renderer of results tables."""
import numpy as np
import pytest

from miqa.evaluation.tables import CENTER, LEFT, PLAIN, cell, markdown_table, metric_cells


def test_default_rules_left_then_centred():
    table = markdown_table(['Method', 'SRCC'], [['A', 0.5], ['B', 'n/a']])
    assert table.splitlines() == ['| Method | SRCC |', '|:--|:-:|', '| A | 0.5 |', '| B | n/a |']
    assert markdown_table(['g', 'n'], [], [PLAIN, PLAIN]).splitlines()[1] == '|---|---|'
    assert markdown_table(['a', 'b', 'c'], [], [LEFT, CENTER, '--:']).splitlines()[1] == '|:--|:-:|--:|'
    with pytest.raises(ValueError, match='2 rules for 3 columns'):
        markdown_table(['a', 'b', 'c'], [], [LEFT, LEFT])


def test_cells():
    assert [cell(None), cell(3), cell(0.123456), cell(np.float64(0.5), 2)] == ['n/a', '3', '0.1235', '0.50']
    values = dict(SRCC=0.5, PLCC=None, KRCC=0.25, RMSE=1.0)
    assert metric_cells(values) == ['0.5000', 'n/a', '0.2500', '1.0000']
    assert metric_cells(None, ('SRCC', 'PLCC')) == ['skipped', 'skipped']
