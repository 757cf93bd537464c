"""Label index of one MIQD task: every label row, its parsed name and whether its image exists.

Layout and CSV columns are those of spec §2. The real cls set has 1.25 M label rows over
5,000 sources, so the index never stats images one by one: it lists each ``images/<src_id>/``
folder once and checks membership in a set. The parsed columns are cached outside
``data_root`` (``$MIQA_HOME/cache/index/``, ``MIQA_HOME`` defaulting to ``~/.cache/miqa``),
keyed by the absolute task root and task, and rebuilt when any label file changes (name,
size, mtime_ns) or any ``images/<src_id>`` folder changes (mtime_ns).
"""
import csv
import hashlib
import io
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.logging import print_log

from miqa.utils.io import atomic_write_bytes
from miqa.utils.paths import miqa_home
from miqa.utils.types import PathLike
from miqa.vocab import TASKS

from .naming import TAILS, VARIANT_TABLE, variant_codes

CLS_LABEL_SUFFIX = '_mmos.csv'
CLS_COLUMNS = ('dist_images', 'weighted_consistency', 'weighted_accuracy')
DET_LABEL_SUFFIXES = {'accuracy': '_accuracy.csv', 'consistency': '_consistency.csv'}
DET_COLUMNS = ('filename', 'AP_weighted_avg')


def label_suffixes(task: str) -> Dict[str, str]:
    """The label CSVs of a source of ``task``: kind -> file-name suffix, in writing order (the
    builder writes the last one last: it marks the source finished)."""
    return {'mmos': CLS_LABEL_SUFFIX} if task == 'cls' else dict(DET_LABEL_SUFFIXES)


CACHE_VERSION = 3  # 3: .npz + JSON (nothing in it can execute); 2 was a pickle



@dataclass(frozen=True)
class TaskLayout:
    """Folders of one task under ``data_root`` (spec §2; ins shares det's images)."""
    task: str
    root: Path        # <data_root>/miqa_<task>
    labels: Path      # root/labels
    images: Path      # <data_root>/miqa_<cls|det>/images/<src_id>/<file>.png
    src_images: Path  # <data_root>/miqa_<cls|det>/src_images/<src_id><src_ext>
    src_ext: str      # '.JPEG' (ImageNet) or '.jpg' (COCO)


def task_layout(data_root: PathLike, task: str) -> TaskLayout:
    """Absolute folders of ``task`` under ``data_root`` (the folder holding ``miqa_cls/`` ...)."""
    if task not in TASKS:
        raise ValueError(f'unknown task {task!r}; expected one of {TASKS}')
    data_root = Path(data_root).expanduser().absolute()
    image_root = data_root / ('miqa_cls' if task == 'cls' else 'miqa_det')
    root = data_root / f'miqa_{task}'
    return TaskLayout(task, root, root / 'labels', image_root / 'images', image_root / 'src_images',
                      '.JPEG' if task == 'cls' else '.jpg')


_VARIANT_COLUMNS = {name: np.array(column) for name, column in
                    zip(('distortion', 'region', 'fg_level', 'bg_level'), zip(*VARIANT_TABLE))}


def _variant_column(name: str) -> property:
    """A read-only column of every row derived from its variant code (``naming.VARIANT_TABLE``)."""
    return property(lambda index: _VARIANT_COLUMNS[name][index.variant], doc=f'``{name}`` of every row.')


@dataclass
class LabelIndex:
    """Columnar label rows of one task: sources sorted, rows in label-file order.

    Stored: ``src`` (codes into ``src_ids``), ``variant`` (codes into
    ``naming.VARIANT_TABLE``), the labels in the CSV's units and ``exists``; file name,
    distortion, region and levels are derived from the variant code.
    """
    src_ids: List[str]
    src: np.ndarray          # int32, row -> src_ids
    variant: np.ndarray      # int16, row -> VARIANT_TABLE / TAILS
    consistency: np.ndarray  # float64
    accuracy: np.ndarray     # float64
    exists: np.ndarray       # bool, the image file is on disk

    def __len__(self) -> int:
        return len(self.src)

    @property
    def src_id(self) -> List[str]:
        """Source id of every row."""
        return [self.src_ids[code] for code in self.src.tolist()]

    @property
    def filename(self) -> List[str]:
        """File name inside ``images/<src_id>/`` of every row."""
        return [f'{self.src_ids[s]}_{TAILS[v]}' for s, v in zip(self.src.tolist(), self.variant.tolist())]

    distortion = _variant_column('distortion')
    region = _variant_column('region')
    fg_level = _variant_column('fg_level')
    bg_level = _variant_column('bg_level')


def load_index(data_root: PathLike, task: str,
               cache_dir: Union[None, bool, PathLike] = None) -> LabelIndex:
    """The label index of ``task``, read from the cache when it is still valid.

    Args:
        data_root: the folder holding ``miqa_cls/``, ``miqa_det/``, ``miqa_ins/``.
        task: ``'cls'``, ``'det'`` or ``'ins'``.
        cache_dir: ``None`` -> ``$MIQA_HOME/cache/index``; ``False`` -> no cache.
    """
    layout = task_layout(data_root, task)
    if not layout.root.is_dir():
        raise FileNotFoundError(
            f'MIQD task folder not found: {layout.root}. Put MIQD-2.5M under data/miqd '
            '(miqa_cls/, miqa_det/, miqa_ins/, splits/) or pass data_root; see data/README.md.')
    if not layout.labels.is_dir():
        raise FileNotFoundError(f'MIQD label folder not found: {layout.labels} (spec layout: '
                                f'miqa_{task}/labels/); see data/README.md.')
    label_files, fingerprint = _scan(layout)
    cache_path = None
    if cache_dir is not False:
        cache_root = miqa_home() / 'cache' / 'index' if cache_dir in (None, True) else Path(cache_dir)
        key = hashlib.sha1(f'{layout.root}\0{task}'.encode()).hexdigest()[:16]
        cache_path = cache_root / f'{task}-{key}.npz'
        index = _read_cache(cache_path, str(layout.root), task, fingerprint)
        if index is not None:
            return index
    start = time.perf_counter()
    index = _build(layout, label_files)
    print_log(f'MIQD {task}: indexed {len(index):,} label rows of {len(index.src_ids):,} sources '
              f'in {time.perf_counter() - start:.1f} s', logger='current', level=logging.INFO)
    if cache_path is not None:
        _write_cache(cache_path, index, dict(version=CACHE_VERSION, root=str(layout.root), task=task,
                                             fingerprint=fingerprint))
    return index


def _scan(layout: TaskLayout) -> Tuple[Dict[str, Dict[str, Path]], str]:
    """Label files per source, and a fingerprint of every label file and image folder."""
    suffixes = label_suffixes(layout.task)
    files: Dict[str, Dict[str, Path]] = {}
    stamps = []
    with os.scandir(layout.labels) as entries:
        for entry in entries:
            for kind, suffix in suffixes.items():
                if entry.name.endswith(suffix) and entry.is_file():
                    files.setdefault(entry.name[:-len(suffix)], {})[kind] = Path(entry.path)
                    stat = entry.stat()
                    stamps.append(f'{entry.name}:{stat.st_size}:{stat.st_mtime_ns}')
    for src_id, kinds in files.items():
        if len(kinds) != len(suffixes):
            have = next(iter(kinds.values()))
            lacking = [layout.labels / f'{src_id}{s}' for k, s in suffixes.items() if k not in kinds]
            raise ValueError(f'{have} has no companion label file {lacking[0]}')
        try:
            stamps.append(f'{src_id}/:{os.stat(layout.images / src_id).st_mtime_ns}')
        except FileNotFoundError:
            stamps.append(f'{src_id}/:missing')
    stamps.sort()
    digest = hashlib.sha1(f'{CACHE_VERSION}\n{layout.images}\n'.encode())
    digest.update('\n'.join(stamps).encode())
    return files, digest.hexdigest()


def _build(layout: TaskLayout, label_files: Dict[str, Dict[str, Path]]) -> LabelIndex:
    """Read every label file once and list every image folder once."""
    src_ids = sorted(label_files)
    columns: Dict[str, list] = {name: [] for name in ('variant', 'consistency', 'accuracy', 'exists')}
    counts = []
    for src_id in src_ids:
        files = label_files[src_id]
        if layout.task == 'cls':
            rows = _read_cls_labels(files['mmos'], src_id)
        else:
            rows = _read_det_labels(files['accuracy'], files['consistency'])
        try:
            columns['variant'].append(variant_codes(rows.names, src_id))
        except ValueError:
            raise _name_error(rows, src_id) from None
        try:
            present = set(os.listdir(layout.images / src_id))
        except FileNotFoundError:
            present = set()
        n = len(rows.names)
        columns['exists'].append(np.ones(n, bool) if present.issuperset(rows.names)
                                 else np.fromiter((name in present for name in rows.names), bool, n))
        columns['consistency'].append(rows.consistency)
        columns['accuracy'].append(rows.accuracy)
        counts.append(n)
    dtypes = dict(variant=np.int16, consistency=np.float64, accuracy=np.float64, exists=bool)
    return LabelIndex(src_ids=src_ids, src=np.repeat(np.arange(len(src_ids), dtype=np.int32), counts),
                      **{k: np.concatenate(v) if v else np.empty(0, dtypes[k]) for k, v in columns.items()})


@dataclass
class _Rows:
    """Label rows of one source: file names (rows of ``path``) and both labels."""
    names: List[str]
    consistency: np.ndarray
    accuracy: np.ndarray
    path: Path


def _read_csv(path: Path, columns: Sequence[str]) -> List[tuple]:
    """The named columns of a label CSV (blank lines skipped), each a tuple of strings."""
    with open(path, newline='', encoding='utf-8-sig') as file:
        reader = csv.reader(file)
        header = [name.strip() for name in next(reader, [])]
        missing = [name for name in columns if name not in header]
        if missing:
            raise ValueError(f'{path}: missing column(s) {", ".join(missing)}; '
                             f'header is {",".join(header) or "(empty file)"}')
        rows = list(filter(None, reader))
    width = len(header)
    if set(map(len, rows)) - {width}:
        i = next(i for i, row in enumerate(rows) if len(row) != width)
        raise ValueError(f'{path}, line {_line_number(path, i)}: {len(rows[i])} fields, '
                         f'the header has {width}: {rows[i]!r}')
    table = list(zip(*rows)) if rows else [()] * width
    return [table[header.index(name)] for name in columns]


def _line_number(path: Path, row: int) -> int:
    """Line number in ``path`` of data row ``row`` (0-based, blank lines skipped): errors only."""
    with open(path, newline='', encoding='utf-8-sig') as file:
        reader = csv.reader(file)
        next(reader, None)
        for i, _ in enumerate(filter(None, reader)):
            if i == row:
                return reader.line_num
    return -1


def _numbers(path: Path, texts: Sequence[str], column: str, allow_nan: bool = False) -> np.ndarray:
    """``texts`` as float64; a non-numeric or non-finite label is an error naming file and line,
    except, with ``allow_nan``, a column that is ``nan`` in every row (the accuracy of a source
    without ground truth; a ``nan`` among numbers stays an error)."""
    try:
        values = np.array(texts, dtype=np.float64)
    except ValueError:
        values = np.array([_float_or_nan(text) for text in texts])
        written_nan = np.array([text.strip().lower() == 'nan' for text in texts])
        values[np.isnan(values) & ~written_nan] = np.inf  # text that is no number: always an error
    bad = np.flatnonzero(~np.isfinite(values) & ~(np.isnan(values) & allow_nan & np.isnan(values).all()))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f'{path}, line {_line_number(path, i)}: {column} = {texts[i]!r} '
                         'is not a finite number')
    return values


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float('nan')


def _read_cls_labels(path: Path, src_id: str) -> _Rows:
    """``<src_id>_mmos.csv``: ``dist_images`` is ``<src_id>/<file>.png`` (spec §2)."""
    paths, consistency, accuracy = _read_csv(path, CLS_COLUMNS)
    prefix = f'{src_id}/'
    names = [p[len(prefix):] if p.startswith(prefix) else p for p in paths]
    _check_unique(path, names)
    return _Rows(names, _numbers(path, consistency, CLS_COLUMNS[1]),
                 _numbers(path, accuracy, CLS_COLUMNS[2], allow_nan=True),
                 path)


def _read_det_labels(accuracy_path: Path, consistency_path: Path) -> _Rows:
    """``<src_id>_accuracy.csv`` and ``<src_id>_consistency.csv`` joined by ``filename``."""
    tables = []
    for path in (accuracy_path, consistency_path):
        names, values = _read_csv(path, DET_COLUMNS)
        _check_unique(path, names)
        tables.append((list(names), _numbers(path, values, DET_COLUMNS[1], allow_nan=path == accuracy_path)))
    (names, accuracy), (other_names, consistency) = tables
    if names == other_names:
        return _Rows(names, consistency, accuracy, accuracy_path)
    position = {name: i for i, name in enumerate(other_names)}
    for here, there, here_names, there_names in ((accuracy_path, consistency_path, names, position),
                                                 (consistency_path, accuracy_path, other_names, set(names))):
        lonely = next((i for i, name in enumerate(here_names) if name not in there_names), None)
        if lonely is not None:
            raise ValueError(f'{here}, line {_line_number(here, lonely)}: {here_names[lonely]!r} '
                             f'has no row in {there}')
    return _Rows(names, consistency[[position[name] for name in names]], accuracy, accuracy_path)


def _name_error(rows: _Rows, src_id: str) -> ValueError:
    """The error of the first name of ``rows`` that is not an official name of ``src_id``."""
    for i, name in enumerate(rows.names):
        try:
            variant_codes([name], src_id)
        except ValueError as err:
            return ValueError(f'{rows.path}, line {_line_number(rows.path, i)}: {err}')
    return ValueError(f'{rows.path}: bad file names')


def _check_unique(path: Path, names: Sequence[str]) -> None:
    if len(set(names)) == len(names):
        return
    first: Dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            raise ValueError(f'{path}, line {_line_number(path, i)}: {name!r} repeats line '
                             f'{_line_number(path, first[name])}')
        first[name] = i


#: Columns of the cache file: dtype of each (one row per label row).
_CACHE_COLUMNS = dict(src=np.int32, variant=np.int16, consistency=np.float64, accuracy=np.float64,
                      exists=np.bool_)


def _read_cache(path: Path, root: str, task: str, fingerprint: str) -> Optional[LabelIndex]:
    """The cached index, or None when there is none, it is stale, or it is not exactly what
    :func:`_write_cache` writes (checked before use: ``.npz`` read with ``allow_pickle=False``,
    the expected columns, dtypes, lengths and code ranges, a JSON header). Nothing in it runs."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        meta = json.loads(arrays.pop('meta').tobytes().decode())
        if not (meta.get('version') == CACHE_VERSION and meta.get('root') == root
                and meta.get('task') == task and meta.get('fingerprint') == fingerprint):
            return None
        return _validated(arrays, meta['src_ids'])
    except FileNotFoundError:
        return None
    except Exception as err:  # a truncated, foreign or planted file is rebuilt, never trusted
        print_log(f'ignoring unusable index cache {path}: {err!r}', logger='current', level=logging.WARNING)
        return None


def _validated(arrays: Dict[str, np.ndarray], src_ids: list) -> LabelIndex:
    if set(arrays) != set(_CACHE_COLUMNS):
        raise ValueError(f'columns {sorted(arrays)}, expected {sorted(_CACHE_COLUMNS)}')
    n = len(arrays['src'])
    for name, dtype in _CACHE_COLUMNS.items():
        if arrays[name].dtype != dtype or arrays[name].shape != (n,):
            raise ValueError(f'column {name}: {arrays[name].dtype} {arrays[name].shape}, '
                             f'expected {np.dtype(dtype)} ({n},)')
    if not (isinstance(src_ids, list) and all(isinstance(s, str) for s in src_ids)
            and src_ids == sorted(set(src_ids))):
        raise ValueError('src_ids must be sorted unique strings')
    if n and not (0 <= arrays['src'].min() and arrays['src'].max() < len(src_ids)
                  and 0 <= arrays['variant'].min() and arrays['variant'].max() < len(VARIANT_TABLE)):
        raise ValueError('source or variant codes out of range')
    return LabelIndex(src_ids=src_ids, **arrays)


def _write_cache(path: Path, index: LabelIndex, meta: dict) -> None:
    """Atomic (a failure to write only costs the next run a rebuild)."""
    buffer = io.BytesIO()
    header = json.dumps(dict(meta, src_ids=index.src_ids)).encode()
    np.savez(buffer, meta=np.frombuffer(header, np.uint8),
             **{name: np.asarray(getattr(index, name), dtype) for name, dtype in _CACHE_COLUMNS.items()})
    try:
        atomic_write_bytes(str(path), buffer.getvalue())
    except OSError as err:
        print_log(f'could not write the index cache {path}: {err}', logger='current', level=logging.WARNING)
