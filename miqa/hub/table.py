"""The table of every weight file miqa knows (``weights.csv``), and where local copies live.

One row per file: ``key`` (what code and configs name), ``kind`` (``backbone``,
``region_encoder``, ``machine``, ``hvs``, ``detector``, ``zoo``), ``file`` (its name under
``$MIQA_HOME/weights/``), ``url`` (where it is published), ``sha256`` (the published digest or a
prefix; empty when none is published), ``package`` (a pip requirement whose package ships the
file, importable under the requirement's name with ``_`` for ``-``) and ``note`` (how to obtain
it). Standard library only: reading the table costs no torch.
"""
import csv
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Union

from miqa.utils.paths import miqa_home

TABLE_FILE = Path(__file__).with_name('weights.csv')
KINDS = ('backbone', 'region_encoder', 'machine', 'hvs', 'detector', 'zoo')


@dataclass(frozen=True)
class WeightFile:
    """A published weight file (a row of ``weights.csv``)."""

    key: str
    file: str
    url: str
    sha256: str = ''
    package: str = ''
    note: str = ''
    kind: str = ''


def _read_table(path: Path) -> Dict[str, WeightFile]:
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    table: Dict[str, WeightFile] = {}
    for line, row in enumerate(rows, start=2):
        if row['kind'] not in KINDS or row['key'] in table:
            raise ValueError(f'{path}:{line}: kind must be one of {KINDS} and keys unique, got '
                             f'{row["kind"]!r} / {row["key"]!r}')
        table[row['key']] = WeightFile(**row)
    return table


#: key -> :class:`WeightFile`, every weight file of the project.
WEIGHTS: Dict[str, WeightFile] = _read_table(TABLE_FILE)


def weights_dir() -> Path:
    """``$MIQA_HOME/weights`` (read at call time)."""
    return miqa_home() / 'weights'


def weight_entry(key: Union[str, WeightFile]) -> WeightFile:
    """The row of ``key`` (a :class:`WeightFile` passes through); ``KeyError`` with the closest keys."""
    if isinstance(key, WeightFile):
        return key
    if key in WEIGHTS:
        return WEIGHTS[key]
    close = difflib.get_close_matches(str(key), list(WEIGHTS), n=3, cutoff=0.5)
    hint = f' Did you mean: {", ".join(close)}?' if close else ''
    raise KeyError(f'unknown weight file key {key!r}.{hint} The keys are the first column of {TABLE_FILE}.')


__all__ = ['KINDS', 'TABLE_FILE', 'WEIGHTS', 'WeightFile', 'weight_entry', 'weights_dir']
