"""Per-image prediction CSVs: the files every analysis tool reads.

``tools/test.py`` writes ``<stem>_predictions.csv`` (the records of
:attr:`miqa.evaluation.IQAMetric.last_predictions`) and ``tools/benchmark_hvs.py`` writes the same
columns for a human-vision scorer (``pred_score`` quality-oriented: a distance is sign-flipped).
Columns: ``pred_score`` and ``gt_score`` (required), ``sample_idx``, ``valid``, ``img_path``,
``src_id``, ``distortion``, ``region`` (``UD``/``ROI``/``BG``), ``fg_level``, ``bg_level``
(optional; empty cells count as missing). Missing naming fields are read from the official
file name in ``img_path`` (:func:`miqa.datasets.naming.parse_name`).
"""
import csv
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

from miqa.datasets.naming import parse_name
from miqa.evaluation.iqa_metric import OPTIONAL_FIELDS, REQUIRED_FIELDS

NAME_FIELDS = ('src_id', 'distortion', 'region', 'fg_level', 'bg_level')
_TRUE, _FALSE = {'true', '1', 'yes'}, {'false', '0', 'no'}


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value not in _TRUE | _FALSE:
        raise ValueError(f'not a boolean: {text!r}')
    return value in _TRUE


#: column -> converter from CSV text (the metric's converters; booleans parsed from text)
CONVERTERS = {**REQUIRED_FIELDS, **OPTIONAL_FIELDS, 'valid': _bool,
              'fg_level': lambda t: int(float(t)), 'bg_level': lambda t: int(float(t)),
              'sample_idx': lambda t: int(float(t))}


def read_predictions(path: os.PathLike) -> List[Dict[str, Any]]:
    """The records of a prediction CSV, typed like ``IQAMetric`` records, in file order.

    ``sample_idx`` defaults to the row number; a ``pred_score``/``gt_score`` cell that is empty,
    ``nan`` or ``inf`` gives a non-finite float, which :func:`miqa.evaluation.iqa_metric.is_usable`
    leaves out. Raises ``ValueError`` naming the file, line and column for a malformed cell.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'prediction CSV not found: {path} (tools/test.py writes '
                                '<results>_predictions.csv, tools/benchmark_hvs.py its per-image CSV)')
    with open(path, newline='', encoding='utf-8-sig') as file:
        reader = csv.DictReader(file)
        missing = [k for k in ('pred_score', 'gt_score') if k not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f'{path}: missing column(s) {missing}; a prediction CSV needs pred_score and '
                             f'gt_score (found: {", ".join(reader.fieldnames or []) or "no header"})')
        records = []
        for row_number, row in enumerate(reader):
            record: Dict[str, Any] = {}
            for key, text in row.items():
                if key not in CONVERTERS or text is None or not text.strip():
                    continue
                try:
                    record[key] = CONVERTERS[key](text.strip())
                except ValueError as err:
                    raise ValueError(f'{path}, line {reader.line_num}, column {key}: {err}') from None
            for key in ('pred_score', 'gt_score'):
                record.setdefault(key, math.nan)
            record.setdefault('sample_idx', row_number)
            _fill_from_name(record)
            records.append(record)
    return records


def _fill_from_name(record: Dict[str, Any]) -> None:
    """Naming fields not in the CSV, from the official file name in ``img_path`` (if it is one)."""
    if 'img_path' not in record or all(k in record for k in NAME_FIELDS):
        return
    try:
        info = parse_name(os.path.basename(record['img_path']))
    except ValueError:
        return
    for key in NAME_FIELDS:
        record.setdefault(key, getattr(info, key))


def parse_named(spec: str) -> Tuple[str, str]:
    """``'NAME=path.csv'`` -> ``(NAME, path)``; a bare path is named by its file stem (without a
    trailing ``_predictions``)."""
    name, sep, path = spec.partition('=')
    if not sep:
        path = spec
        name = Path(spec).stem
        name = name[:-len('_predictions')] if name.endswith('_predictions') else name
    if not name or not path:
        raise ValueError(f'expected NAME=path.csv, got {spec!r}')
    return name, path


def read_named(specs: List[str]) -> Dict[str, List[Dict[str, Any]]]:
    """``{name: records}`` of ``NAME=path.csv`` specs (names must be unique)."""
    out: Dict[str, List[Dict[str, Any]]] = {}
    for spec in specs:
        name, path = parse_named(spec)
        if name in out:
            raise ValueError(f'prediction name {name!r} given twice; name them NAME=path.csv')
        out[name] = read_predictions(path)
    return out


def image_key(record: Mapping[str, Any]) -> str:
    """The key of a record's image across files: the file name of ``img_path`` (official MIQD
    names are unique within a task: they start with the source id)."""
    if 'img_path' not in record:
        raise KeyError('the record has no img_path')
    return os.path.basename(str(record['img_path']))


__all__ = ['read_predictions', 'read_named', 'parse_named', 'image_key', 'NAME_FIELDS']
