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
import zipfile
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.logging import print_log
from PIL import Image

from miqa.registry import SOURCES
from miqa.utils.io import atomic_write_bytes
from miqa.utils.paths import miqa_home

from .rcc import RccArchive

DATA_DIR = Path(__file__).with_name('data')
TABLE = DATA_DIR / 'miqd_mini_sources.csv'
IMAGENET_CLASSES = DATA_DIR / 'imagenet_classes.txt'
NUM_CLASSES = 1000
#: A row without ImageNet classes says so (and why) in its note; its category name.
NO_CLASS_NOTE, NO_CLASS_CATEGORY = 'no ImageNet-1k class', 'no class'
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


def packages_dir() -> Path:
    """``$MIQA_HOME/packages``: package files (wheels, npm tarballs) read for their photos, never
    installed."""
    return miqa_home() / 'packages'


@dataclass(frozen=True)
class PinnedFile:
    """A package file read for its photos and never installed nor imported: a pip wheel or an npm
    tarball in :func:`packages_dir`, checked against its sha256 (that of the file the registry
    served, recorded when the rows were added). ``module``: a pip package whose installed files
    are read instead when it is installed (the table's paths are relative to site-packages)."""

    file: str
    sha256: str
    fetch: Tuple[str, ...]       # the download command; the destination folder is appended
    module: Optional[str] = None

    @property
    def command(self) -> str:
        return ' '.join(self.fetch + ('"$MIQA_HOME/packages"',))

    def locate(self) -> Path:
        """site-packages when ``module`` is installed, else the verified file."""
        if self.module:
            spec = importlib.util.find_spec(self.module)
            if spec is not None and spec.origin is not None:
                return Path(spec.origin).parent.parent
        path = packages_dir() / self.file
        if not path.is_file():
            raise FileNotFoundError(f'{path} not found ({self.command})')
        _verified(str(path), self.sha256, self.command)
        return path

    def download(self) -> Path:
        """Fetch the file into :func:`packages_dir` unless it is there (or ``module`` is installed)."""
        import subprocess
        import sys

        path = packages_dir() / self.file
        installed = self.module and importlib.util.find_spec(self.module) is not None
        if not installed and not path.is_file():
            packages_dir().mkdir(parents=True, exist_ok=True)
            args = list(self.fetch)
            if args[0] == 'pip':
                args = [sys.executable, '-m'] + args
            subprocess.run(args + [str(packages_dir())], check=True, cwd=str(packages_dir()))
        return self.locate()


@cache
def _verified(path: str, sha256: str, command: str) -> bool:
    from miqa.hub.checksums import file_sha256

    digest = file_sha256(path)
    if digest != sha256:
        raise ValueError(f'{path}: sha256 {digest} is not the pinned {sha256}; delete it and run {command}')
    return True


#: Package files read for their photos (:class:`PinnedFile`), by the table's ``package`` name.
#: foolbox (MIT): 20 ImageNet val images; ultralytics (AGPL-3.0): bus.jpg and zidane.jpg;
#: imgaug (MIT): quokka.jpg; @vladmandic/face-api (MIT): 6 group photos of people.
PINNED_FILES: Dict[str, PinnedFile] = {
    'foolbox': PinnedFile('foolbox-3.3.4-py3-none-any.whl',
                          '11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb',
                          ('pip', 'download', '-q', 'foolbox==3.3.4', '--no-deps', '--dest'), 'foolbox'),
    'ultralytics': PinnedFile('ultralytics-8.4.190-py3-none-any.whl',
                              'bd309728efa168af64d39040136828edd2dbcb4aeceb4510bdff4f3ca0ea01b8',
                              ('pip', 'download', '-q', 'ultralytics==8.4.190', '--no-deps', '--dest'),
                              'ultralytics'),
    'imgaug': PinnedFile('imgaug-0.4.0-py2.py3-none-any.whl',
                         'ce61e65b4eb7405fc62c1b0a79d2fa92fd47f763aaecb65152d29243592111f9',
                         ('pip', 'download', '-q', 'imgaug==0.4.0', '--no-deps', '--dest'), 'imgaug'),
    'face-api': PinnedFile('vladmandic-face-api-1.7.15.tgz',
                           '0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031',
                           ('npm', 'pack', '-q', '@vladmandic/face-api@1.7.15', '--pack-destination')),
}
#: The foolbox wheel's name, digest and download command (kept for existing callers).
FOOLBOX_WHEEL, FOOLBOX_SHA256 = PINNED_FILES['foolbox'].file, PINNED_FILES['foolbox'].sha256
FOOLBOX_INSTALL = PINNED_FILES['foolbox'].command


def fetch_foolbox_wheel() -> Path:
    """Download the pinned foolbox wheel into :func:`packages_dir` (``pip download``, no install)
    unless it is there or foolbox is installed; the file is checked against its sha256."""
    return PINNED_FILES['foolbox'].download()


def fetch_package_files(names: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """Download the pinned package files (all, or ``names``) that are not there yet; returns
    ``{name: 'ok' | error}`` (a registry that cannot be reached leaves that package out)."""
    status = {}
    for name in names or PINNED_FILES:
        try:
            PINNED_FILES[name].download()
            status[name] = 'ok'
        except Exception as err:  # noqa: BLE001 (reported per package)
            status[name] = f'{type(err).__name__}: {err}'
    return status


@dataclass(frozen=True)
class PackageRoot:
    """Where a package keeps its photos: ``kind`` ('pip' or 'debian'), ``locate()`` -> a folder
    (or a wheel, whose members the table's paths name), and the command that installs it."""

    kind: str
    locate: Callable[[], Path]
    install: str


def _debian(package: str, folder: str = '/usr/share') -> PackageRoot:
    return PackageRoot('debian', _folder(folder), f'apt-get install {package}')


#: Package name (the table's ``package`` column) -> its photo folder. Paths in the table are
#: relative to it; ``<archive>:<member>`` names a file inside a Qt resource file (``.rcc``).
PACKAGE_ROOTS: Dict[str, PackageRoot] = {
    'skimage': PackageRoot('pip', _pip_data('skimage', 'data'), 'pip install scikit-image'),
    'sklearn': PackageRoot('pip', _pip_data('sklearn', 'datasets', 'images'), 'pip install scikit-learn'),
    'matplotlib': PackageRoot('pip', _pip_data('matplotlib', 'mpl-data', 'sample_data'),
                              'pip install matplotlib'),
    **{name: PackageRoot('npm' if pinned.file.endswith('.tgz') else 'pip', pinned.locate, pinned.command)
       for name, pinned in PINNED_FILES.items()},
    'opencv-doc': _debian('opencv-doc', '/usr/share/doc/opencv-doc/examples/data'),
    'darknet': _debian('darknet', '/usr/share/darknet/data'),
    'gcompris-qt-data': _debian('gcompris-qt-data', '/usr/share/gcompris-qt/rcc'),
    **{name: _debian(name) for name in ('mate-backgrounds', 'lomiri-wallpapers-16.04',
                                        'lomiri-wallpapers-20.04',
                                        'plasma-workspace-wallpapers', 'palapeli-data',
                                        'kphotoalbum')},
}


@dataclass(frozen=True)
class SourceRow:
    """One row of the MIQD-mini table (``classes`` empty: no ImageNet-1k class fits the photo)."""

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
    """The rows of a sources table (checked: unique ids, known packages, classes in 0..999; a row
    without classes must say why in its note)."""
    rows = []
    with open(path, newline='', encoding='utf-8') as file:
        for raw in csv.DictReader(file):
            src_id = raw['src_id'].strip()
            classes = tuple(int(v) for v in raw['imagenet_classes'].split())
            if any(not 0 <= c < NUM_CLASSES for c in classes):
                raise ValueError(f'{path}: {src_id}: ImageNet classes must be in 0..{NUM_CLASSES - 1}, '
                                 f'got {raw["imagenet_classes"]!r}')
            if not classes and NO_CLASS_NOTE not in (raw.get('note') or ''):
                raise ValueError(f'{path}: {src_id}: no ImageNet classes; a photo without a fitting class '
                                 f'must say {NO_CLASS_NOTE!r} (and why) in its note')
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


@lru_cache(maxsize=8)
def _rcc(path: str) -> RccArchive:
    return RccArchive(path)


@dataclass(frozen=True)
class Origin:
    """Where a photo is installed: a file, or a ``member`` of an archive ``file`` (a wheel, an npm
    tarball ``.tgz`` or a Qt ``.rcc``)."""

    file: Path
    member: Optional[str] = None

    def read(self) -> bytes:
        if self.member is None:
            return self.file.read_bytes()
        if self.file.suffix == '.rcc':
            return _rcc(str(self.file)).read(self.member)
        if self.file.suffix == '.tgz':
            return _tar_members(str(self.file))[self.member]
        with zipfile.ZipFile(self.file) as archive:
            return archive.read(self.member)

    def __str__(self) -> str:
        return str(self.file) if self.member is None else f'{self.file}:{self.member}'


@lru_cache(maxsize=2)
def _tar_members(path: str) -> Dict[str, bytes]:
    """The image files of an npm tarball (``.tgz``), read in one pass (a gzip stream has no index)."""
    import tarfile

    with tarfile.open(path, 'r:gz') as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()
                if m.isfile() and m.name.lower().endswith(('.jpg', '.jpeg', '.png', '.webp'))}


def _has_member(file: Path, member: str) -> bool:
    if file.suffix == '.rcc':
        return member in _rcc(str(file))
    if file.suffix == '.tgz':
        return member in _tar_members(str(file))
    with zipfile.ZipFile(file) as archive:
        return member in archive.namelist()


def find_origin(row: SourceRow, roots: Optional[Mapping[str, str]] = None) -> Optional[Origin]:
    """Where the photo of ``row`` is installed here (``None`` when its package is not)."""
    root = _root(row.package, roots)
    if root is None:
        return None
    if root.is_file():                      # a wheel: the path is a member
        file, member = root, row.path
    elif ':' in row.path:                   # <archive>:<member>
        archive, member = row.path.split(':', 1)
        file = root / archive
    else:
        path = root / row.path
        return Origin(path) if path.is_file() else None
    return Origin(file, member) if file.is_file() and _has_member(file, member) else None


def original_path(row: SourceRow, roots: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """The installed file of ``row`` when it is a plain file (``None`` when its package is not
    installed here or the photo is inside an archive: see :func:`find_origin`)."""
    origin = find_origin(row, roots)
    return origin.file if origin is not None and origin.member is None else None


def read_photo(source: Union[os.PathLike, str, bytes, Origin], crop: Optional[Box] = None) -> np.ndarray:
    """A photo (file, encoded bytes or :class:`Origin`) as uint8 RGB ``HxWx3`` (grayscale
    replicated, alpha dropped), optionally cropped."""
    if isinstance(source, Origin):
        source = source.read() if source.member is not None else source.file
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
        if crop is not None:
            if crop[2] > img.width or crop[3] > img.height:
                where = 'the image' if isinstance(source, bytes) else source
                raise ValueError(f'crop {crop} outside {where} ({img.width}x{img.height})')
            img = img.crop(crop)
        return np.asarray(img.convert('RGB')).copy()


def default_crop_dir() -> Path:
    """``$MIQA_HOME/cache/miqd_mini`` (``MIQA_HOME`` defaults to ``~/.cache/miqa``)."""
    return miqa_home() / 'cache' / 'miqd_mini'


def _write_once(out: Path, data: bytes) -> Path:
    """``data`` at ``out`` (written atomically, rewritten only when different)."""
    if not (out.is_file() and out.read_bytes() == data):
        atomic_write_bytes(str(out), data)
    return out


def source_file(row: SourceRow, origin: Origin, crop_dir: Path) -> Path:
    """A file the builder can read for ``row``: the installed photo itself, or, for a crop or an
    archive member, a copy written once into ``crop_dir`` (crops as lossless PNG, members as
    their own bytes)."""
    if row.crop is None and origin.member is None:
        return origin.file
    if row.crop is None:
        return _write_once(crop_dir / f'{row.src_id}{Path(origin.member).suffix.lower()}', origin.read())
    buffer = io.BytesIO()
    Image.fromarray(read_photo(origin, row.crop)).save(buffer, format='PNG')
    return _write_once(crop_dir / f'{row.src_id}.png', buffer.getvalue())


def _size(origin: Origin, crop: Optional[Box]) -> Tuple[int, int]:
    if crop is not None:
        return crop[3] - crop[1], crop[2] - crop[0]
    data = origin.read() if origin.member is not None else origin.file
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
        return img.height, img.width


def _selected(row: SourceRow, include: Sequence[str]) -> bool:
    return row.package in include or PACKAGE_ROOTS[row.package].kind in include


def missing_sources(include: Sequence[str] = ('pip', 'debian'), roots: Optional[Mapping[str, str]] = None,
                    table: os.PathLike = TABLE) -> Dict[str, List[str]]:
    """Package -> src_ids of the selected rows whose photo is not installed here."""
    missing: Dict[str, List[str]] = {}
    for row in read_table(table):
        if _selected(row, include) and find_origin(row, roots) is None:
            missing.setdefault(row.package, []).append(row.src_id)
    return missing


@SOURCES.register_module(name='miqd_mini')
def collect_miqd_mini(include: Sequence[str] = ('pip', 'debian'), min_short_side: int = 128,
                      src_ids: Optional[Sequence[str]] = None, crop_dir: Optional[str] = None,
                      roots: Optional[Mapping[str, str]] = None, table: Optional[str] = None,
                      packages: Optional[Sequence[str]] = None,
                      imagenet_annotations: bool = True) -> List[dict]:
    """The MIQD-mini sources installed on this machine, as builder source dicts.

    Args:
        include: package kinds (``'pip'``, ``'debian'``) and/or package names (``'skimage'``,
            ``'darknet'`` ...) to take rows from.
        min_short_side: leave out photos/crops whose short side (before the builder's
            downscaling) is smaller.
        src_ids: only these rows (after ``include``); an unknown id is an error.
        crop_dir: where crops and archive members are written (default :func:`default_crop_dir`).
        roots: package name -> folder (or wheel), overriding :data:`PACKAGE_ROOTS`.
        table: another sources table with the same columns.
        packages: only rows of these packages (after ``include``).
        imagenet_annotations: give each source its ImageNet classes as ``annotation`` (cls);
            ``False`` for det/ins builds, whose ground truth is COCO boxes (a COCO file or the
            pseudo ground truth of :mod:`miqa.database.pseudo_gt`).

    Returns:
        ``dict(src_id, path, group, annotation, category)`` per source, in table order:
        ``annotation`` = the sorted acceptable ImageNet-1k class indices (``None`` for a photo
        without a fitting class: its labels are consistency-only, see
        :class:`miqa.database.labels.MachineLabeller`), ``category`` = the name of the first
        listed class (or ``'no class'``); provenance in ``package``, ``origin`` (installed file,
        ``archive:member`` inside an archive), ``origin_box`` (crop box or None), ``licence``.
        Missing photos are logged (warning) with the command that installs them.
    """
    kinds = {root.kind for root in PACKAGE_ROOTS.values()}
    unknown = [i for i in include if i not in kinds and i not in PACKAGE_ROOTS]
    if unknown:
        raise ValueError(f'include: unknown {unknown}; use {sorted(kinds)} or {sorted(PACKAGE_ROOTS)}')
    rows = [r for r in read_table(table or TABLE) if _selected(r, include)
            and (packages is None or r.package in packages)]
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
        origin = find_origin(row, roots)
        if origin is None:
            missing.setdefault(row.package, []).append(row.src_id)
            continue
        if min(_size(origin, row.crop)) < min_short_side:
            small.append(row.src_id)
            continue
        items.append(dict(src_id=row.src_id, path=str(source_file(row, origin, out_dir)), group=row.group,
                          annotation=(sorted(row.classes) or None) if imagenet_annotations else None,
                          category=names[row.classes[0]][1] if row.classes else NO_CLASS_CATEGORY,
                          package=row.package, origin=str(origin),
                          origin_box=list(row.crop) if row.crop else None, licence=row.licence))
    if missing:
        what = '; '.join(f'{pkg}: {len(ids)} ({PACKAGE_ROOTS[pkg].install})' for pkg, ids in missing.items())
        print_log(f'miqd_mini: {sum(map(len, missing.values()))} of {len(rows)} sources are not installed '
                  f'here and are left out -- {what}', logger='current', level=logging.WARNING)
    if small:
        print_log(f'miqd_mini: left out {len(small)} source(s) with short side < {min_short_side}: {small}',
                  logger='current', level=logging.WARNING)
    return items


def attribution_markdown(sources: Mapping[str, Mapping], title: str) -> str:
    """A markdown table of every photo a database uses: id, group, package, installed origin (and
    crop), licence and author as the package states them; built from the builder's per-source
    records (``info`` holds what the collector gave)."""
    lines = [f'# {title}: photo attribution', '',
             f'{len(sources)} sources from {len({s.get("group") for s in sources.values()})} photos. '
             'Every image of the database is a derived work (downscaled, distorted) of these photos.', '',
             '| source | photo group | package | origin (crop) | licence and author |',
             '|:--|:--|:--|:--|:--|']
    for src_id in sorted(sources):
        record = sources[src_id]
        info = record.get('info', {})
        box = info.get('origin_box')
        origin = f'`{info.get("origin", record.get("path", ""))}`'
        if box:
            origin += f' ({" ".join(map(str, box))})'
        cells = [src_id, record.get('group', ''), info.get('package', ''), origin,
                 info.get('licence', 'not stated')]
        lines.append('| ' + ' | '.join(str(c).replace('|', '\\|') for c in cells) + ' |')
    return '\n'.join(lines) + '\n'
