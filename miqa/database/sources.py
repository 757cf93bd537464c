"""MIQD-mini sources: real photos read at build time from installed packages (never downloaded).

The table :data:`TABLE` (``data/miqd_mini_sources.csv``) lists 41 sources: photos, and crops of
photos, from

- pip: ``scikit-image`` (``skimage/data``), ``scikit-learn`` (``sklearn/datasets/images``),
  ``matplotlib`` (``mpl-data/sample_data``);
- Debian: ``opencv-doc`` (``/usr/share/doc/opencv-doc/examples/data``) and ``darknet``
  (``/usr/share/darknet/data``): ``apt-get install opencv-doc darknet``.

Each row holds a hand annotation: the ImageNet-1k class indices acceptable for that photo, in
the sorted-wnid order of the EfficientNet-Lite / timm classifiers (``data/imagenet_classes.txt``,
line ``i`` = class ``i``; from Debian darknet's ``imagenet.labels.list``/``imagenet.shortnames.list``).
Every photo was looked at; photos without an ImageNet-1k class (portraits, streets, paintings,
renders) are left out. Crops of one photo, and the two views of a stereo pair, share a ``group``
so that a split by group never puts them on both sides. The ``licence`` column says what the
package states about each photo; the built images are derived works of these photos.

Columns: ``src_id, package, path`` (inside the package's data folder), ``crop`` (``x0 y0 x1 y1``
in pixels of the original photo, end exclusive, or empty), ``group, imagenet_classes``
(space-separated), ``class_names, licence, note``.

:func:`collect_miqd_mini` is the builder's source collector (``sources=dict(type=
'miqa.database.sources.collect_miqd_mini', ...)``, also registered as ``'miqd_mini'`` in
``miqa.registry.SOURCES``). The builder reads a source from its ``path`` only, so a crop
is written once, losslessly (PNG), into ``crop_dir`` (default ``$MIQA_HOME/cache/miqd_mini``),
outside the repository; whole photos are read where their package installed them.
"""
import csv
import importlib.util
import io
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log
from PIL import Image

from miqa.registry import SOURCES
from miqa.utils.io import atomic_write_bytes
from miqa.utils.paths import miqa_home

DATA_DIR = Path(__file__).with_name('data')
TABLE = DATA_DIR / 'miqd_mini_sources.csv'
IMAGENET_CLASSES = DATA_DIR / 'imagenet_classes.txt'
NUM_CLASSES = 1000
Box = Tuple[int, int, int, int]


def _pip_data(package: str, *parts: str) -> Callable[[], Path]:
    """The data folder of an installed pip package, found without importing it."""
    def locate() -> Path:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(f'python package {package!r} is not installed')
        return Path(spec.origin).parent.joinpath(*parts)
    return locate


def _folder(path: str) -> Callable[[], Path]:
    return lambda: Path(path)


@dataclass(frozen=True)
class PackageRoot:
    """Where a package keeps its photos: ``kind`` ('pip' or 'debian'), ``locate()`` -> folder,
    and the command that installs it."""

    kind: str
    locate: Callable[[], Path]
    install: str


#: Package name (the table's ``package`` column) -> its photo folder.
PACKAGE_ROOTS: Dict[str, PackageRoot] = {
    'skimage': PackageRoot('pip', _pip_data('skimage', 'data'), 'pip install scikit-image'),
    'sklearn': PackageRoot('pip', _pip_data('sklearn', 'datasets', 'images'), 'pip install scikit-learn'),
    'matplotlib': PackageRoot('pip', _pip_data('matplotlib', 'mpl-data', 'sample_data'),
                              'pip install matplotlib'),
    'opencv-doc': PackageRoot('debian', _folder('/usr/share/doc/opencv-doc/examples/data'),
                              'apt-get install opencv-doc'),
    'darknet': PackageRoot('debian', _folder('/usr/share/darknet/data'), 'apt-get install darknet'),
}


@dataclass(frozen=True)
class SourceRow:
    """One row of the MIQD-mini table."""

    src_id: str
    package: str
    path: str
    crop: Optional[Box]
    group: str
    classes: Tuple[int, ...]
    class_names: str
    licence: str
    note: str = ''


def _parse_crop(text: str, src_id: str) -> Optional[Box]:
    if not text.strip():
        return None
    values = [int(v) for v in text.split()]
    if len(values) != 4 or values[2] <= values[0] or values[3] <= values[1] or min(values) < 0:
        raise ValueError(f'{src_id}: crop must be "x0 y0 x1 y1" with x1 > x0, y1 > y0 >= 0, got {text!r}')
    return tuple(values)  # type: ignore[return-value]


def read_table(path: os.PathLike = TABLE) -> List[SourceRow]:
    """The rows of a sources table (checked: unique ids, known packages, classes in 0..999)."""
    rows = []
    with open(path, newline='', encoding='utf-8') as file:
        for raw in csv.DictReader(file):
            src_id = raw['src_id'].strip()
            classes = tuple(int(v) for v in raw['imagenet_classes'].split())
            if not classes or any(not 0 <= c < NUM_CLASSES for c in classes):
                raise ValueError(f'{path}: {src_id}: ImageNet classes must be in 0..{NUM_CLASSES - 1}, '
                                 f'got {raw["imagenet_classes"]!r}')
            if raw['package'] not in PACKAGE_ROOTS:
                raise ValueError(f'{path}: {src_id}: unknown package {raw["package"]!r} '
                                 f'(known: {", ".join(PACKAGE_ROOTS)})')
            rows.append(SourceRow(src_id, raw['package'], raw['path'], _parse_crop(raw['crop'], src_id),
                                  raw['group'] or src_id, classes, raw['class_names'], raw['licence'],
                                  raw.get('note') or ''))
    ids = [r.src_id for r in rows]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f'{path}: duplicate src_id: {", ".join(dupes)}')
    return rows


@lru_cache(maxsize=1)
def imagenet_classes() -> Tuple[Tuple[str, str], ...]:
    """``(wnid, name)`` of the 1,000 ImageNet-1k classes in sorted-wnid order (index = class id)."""
    lines = IMAGENET_CLASSES.read_text(encoding='utf-8').splitlines()
    classes = tuple(tuple(line.split('\t', 1)) for line in lines if line.strip())
    if len(classes) != NUM_CLASSES:
        raise ValueError(f'{IMAGENET_CLASSES}: expected {NUM_CLASSES} classes, found {len(classes)}')
    return classes  # type: ignore[return-value]


def _root(package: str, roots: Optional[Mapping[str, str]]) -> Optional[Path]:
    if roots and package in roots:
        return Path(roots[package]).expanduser()
    try:
        return PACKAGE_ROOTS[package].locate()
    except (FileNotFoundError, ImportError, ValueError):
        return None


def original_path(row: SourceRow, roots: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """The installed file of ``row`` (``None`` when its package is not installed here)."""
    root = _root(row.package, roots)
    path = root / row.path if root is not None else None
    return path if path is not None and path.is_file() else None


def read_photo(path: os.PathLike, crop: Optional[Box] = None) -> np.ndarray:
    """A photo as uint8 RGB ``HxWx3`` (grayscale replicated, alpha dropped), optionally cropped."""
    with Image.open(path) as img:
        if crop is not None:
            if crop[2] > img.width or crop[3] > img.height:
                raise ValueError(f'crop {crop} outside {path} ({img.width}x{img.height})')
            img = img.crop(crop)
        return np.asarray(img.convert('RGB')).copy()


def _size(path: Path, crop: Optional[Box]) -> Tuple[int, int]:
    if crop is not None:
        return crop[3] - crop[1], crop[2] - crop[0]
    with Image.open(path) as img:
        return img.height, img.width


def default_crop_dir() -> Path:
    """``$MIQA_HOME/cache/miqd_mini`` (``MIQA_HOME`` defaults to ``~/.cache/miqa``)."""
    return miqa_home() / 'cache' / 'miqd_mini'


def _write_crop(row: SourceRow, original: Path, crop_dir: Path) -> Path:
    """Write the crop of ``row`` as a PNG once (rewritten only if its pixels differ)."""
    out = crop_dir / f'{row.src_id}.png'
    pixels = read_photo(original, row.crop)
    if out.is_file():
        try:
            if np.array_equal(read_photo(out), pixels):
                return out
        except OSError:
            pass
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format='PNG')
    atomic_write_bytes(str(out), buffer.getvalue())
    return out


def _selected(row: SourceRow, include: Sequence[str]) -> bool:
    return row.package in include or PACKAGE_ROOTS[row.package].kind in include


def missing_sources(include: Sequence[str] = ('pip', 'debian'), roots: Optional[Mapping[str, str]] = None,
                    table: os.PathLike = TABLE) -> Dict[str, List[str]]:
    """Package -> src_ids of the selected rows whose photo is not installed here."""
    missing: Dict[str, List[str]] = {}
    for row in read_table(table):
        if _selected(row, include) and original_path(row, roots) is None:
            missing.setdefault(row.package, []).append(row.src_id)
    return missing


@SOURCES.register_module(name='miqd_mini')
def collect_miqd_mini(include: Sequence[str] = ('pip', 'debian'), min_short_side: int = 128,
                      src_ids: Optional[Sequence[str]] = None, crop_dir: Optional[str] = None,
                      roots: Optional[Mapping[str, str]] = None, table: Optional[str] = None) -> List[dict]:
    """The MIQD-mini sources installed on this machine, as builder source dicts.

    Args:
        include: package kinds (``'pip'``, ``'debian'``) and/or package names (``'skimage'``,
            ``'darknet'`` ...) to take rows from.
        min_short_side: leave out photos/crops whose short side (before the builder's
            downscaling) is smaller (every row of the shipped table has at least 180 px).
        src_ids: only these rows (after ``include``); an unknown id is an error.
        crop_dir: where crops are written (default :func:`default_crop_dir`).
        roots: package name -> folder, overriding :data:`PACKAGE_ROOTS` (photos kept elsewhere).
        table: another sources table with the same columns.

    Returns:
        ``dict(src_id, path, group, annotation, category)`` per source, in table order:
        ``annotation`` = the sorted acceptable ImageNet-1k class indices, ``category`` = the name
        of the first listed class; provenance in ``package``, ``origin`` (installed file),
        ``origin_box`` (crop box or None), ``licence``. Missing photos are logged (warning) with
        the command that installs them.
    """
    kinds = {root.kind for root in PACKAGE_ROOTS.values()}
    unknown = [i for i in include if i not in kinds and i not in PACKAGE_ROOTS]
    if unknown:
        raise ValueError(f'include: unknown {unknown}; use {sorted(kinds)} or {sorted(PACKAGE_ROOTS)}')
    rows = [r for r in read_table(table or TABLE) if _selected(r, include)]
    if src_ids is not None:
        known = {r.src_id for r in rows}
        bad = [s for s in src_ids if s not in known]
        if bad:
            raise ValueError(f'src_ids not among the included rows: {bad}')
        wanted = set(src_ids)
        rows = [r for r in rows if r.src_id in wanted]
    names = imagenet_classes()
    out_dir = Path(crop_dir).expanduser() if crop_dir else default_crop_dir()
    items, missing, small = [], {}, []
    for row in rows:
        original = original_path(row, roots)
        if original is None:
            missing.setdefault(row.package, []).append(row.src_id)
            continue
        if min(_size(original, row.crop)) < min_short_side:
            small.append(row.src_id)
            continue
        path = _write_crop(row, original, out_dir) if row.crop is not None else original
        items.append(dict(src_id=row.src_id, path=str(path), group=row.group, annotation=sorted(row.classes),
                          category=names[row.classes[0]][1], package=row.package, origin=str(original),
                          origin_box=list(row.crop) if row.crop else None, licence=row.licence))
    if missing:
        what = '; '.join(f'{pkg}: {len(ids)} ({PACKAGE_ROOTS[pkg].install})' for pkg, ids in missing.items())
        print_log(f'miqd_mini: {sum(map(len, missing.values()))} of {len(rows)} sources are not installed '
                  f'here and are left out -- {what}', logger='current', level=logging.WARNING)
    if small:
        print_log(f'miqd_mini: left out {len(small)} source(s) with short side < {min_short_side}: {small}',
                  logger='current', level=logging.WARNING)
    return items
