"""Build a MIQD-style database from your own photos (spec §2 layout, spec §3 recipe).

Per source image (independently of every other, so shards and resumed runs give the same
bytes): read, downscale (short side at most ``max_short_side``, ``INTER_AREA``), store as the
pristine JPEG (``jpeg_quality``) and use the *decoded* JPEG as the reference of everything
after; ROI mask (:mod:`miqa.database.masks`); per distortion the 5 levels (seeded by
``source_seed(seed, src_id)``) and the 20 fused region-aware variants
(:mod:`miqa.database.fusion`), all written as PNGs; then the labeller scores the 250 variants
and the label CSV(s) are written atomically, last. A source is *finished* when its label
CSV(s) exist; a rerun skips finished sources and redoes the others from scratch.

Outputs under ``<out>`` (layout of :func:`miqa.datasets.index.task_layout`)::

    miqa_<cls|det>/images/<src_id>/<official variant name>.png
    miqa_<cls|det>/src_images/<src_id>.JPEG | .jpg
    miqa_<task>/labels/<src_id>_mmos.csv                      (cls)
    miqa_<task>/labels/<src_id>_accuracy.csv, _consistency.csv (det/ins; consistency last)
    miqa_det/additional_info/instances_val2017.json            (det/ins with a COCO file)
    splits/miqa_<cls|det>_<train|val>.csv                      (by source group, finalize)
    manifest_<task>.json                                       (finalize)
    .build_<task>/sources/<src_id>.json, labeller.json         (per-source records)

The config (an mmengine ``Config``) keys are those of :data:`DEFAULTS`; see
``configs/build/README.md``.
"""
import csv
import hashlib
import importlib
import importlib.metadata
import io
import json
import logging
import math
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from miqa.datasets.index import (
    CLS_COLUMNS,
    CLS_LABEL_SUFFIX,
    DET_COLUMNS,
    DET_LABEL_SUFFIXES,
    TaskLayout,
    task_layout,
)
from miqa.datasets.naming import DISTORTIONS, format_name, parse_name
from miqa.datasets.splits import make_split, official_split_path
from miqa.datasets.transforms import read_rgb
from miqa.distortions import LEVEL_RANKS, get_distortion, to_rgb_uint8
from miqa.registry import SOURCES
from miqa.utils.io import atomic_write_bytes, atomic_write_text
from miqa.utils.processes import exit_with_parent
from miqa.version import __version__
from miqa.vocab import SOURCE_EXTENSIONS, TASKS

from .fusion import fusion_parameters, region_variants, soft_mask
from .labels import LABEL_KEYS  # the six columns every labeller returns per image
from .masks import MASK_SOURCES, find_mask_files, source_mask
from .sources import attribution_markdown
from .variants import check_subset, select_variants

# Source collectors (``miqa.registry.SOURCES``): ``collector(**kwargs) -> [dict(src_id, path,
# group=None, annotation=None, category='')]``. Configs name one as
# ``sources=dict(type=<registered name or dotted path>, ...)``.

MIN_SIDE = 8          # smaller sources are reported as unreadable
FORMAT = 'miqa-build/1'

#: Config keys and defaults. ``labeller`` is passed to ``miqa.database.labels.build_labeller``.
DEFAULTS: Dict[str, Any] = dict(
    task='cls',
    sources=None,            # dict(type='folder', root=...) | dict(type=<collector>, ...) | [dict(...)]
    annotations=None,        # cls: JSON {src_id: class index or list} / CSV src_id,labels; det/ins: COCO json
    masks=None,              # folder of binary masks named like the sources (else saliency, see masks.py)
    distortions=None,        # None: all 10 (spec order)
    variants=None,           # None: all 25 per distortion; dict(distortions=D, per_distortion=K): variants.py
    max_short_side=320,      # downscale so that the short side is at most this (None: keep)
    jpeg_quality=95,         # of the stored pristine source (the decoded JPEG is the reference)
    png_compression=1,       # zlib level of the variant PNGs (lossless: size and speed only)
    png_strategy=cv2.IMWRITE_PNG_STRATEGY_RLE,  # zlib strategy: RLE is ~15 % faster and smaller here
    seed=0,
    fusion=None,             # overrides of miqa.database.fusion.soft_mask keywords
    labeller=None,
    label_in='worker',       # 'worker': each worker labels its sources; 'main': the main process does
    val_ratio=0.2,
    split_seed=0,
    out_root=None,
    workers=None,            # None: os.cpu_count()
    start_method=None,       # multiprocessing start method (None: DEFAULT_START_METHOD)
)
#: Workers start from a clean process: a forked copy of a process whose OpenCV / OpenMP thread
#: pools have run can deadlock in ``cv2.setNumThreads`` or in torch (seen with ``fork``).
DEFAULT_START_METHOD = 'forkserver' if 'forkserver' in mp.get_all_start_methods() else 'spawn'
#: Keys that decide the bytes of a database; a folder built with other values is not written
#: into without ``force``. ``IMAGE_KEYS`` decide the images (shared by det and ins).
PARAM_KEYS = ('task', 'sources', 'annotations', 'masks', 'distortions', 'variants', 'max_short_side',
              'jpeg_quality', 'png_compression', 'png_strategy', 'seed', 'fusion', 'labeller', 'val_ratio',
              'split_seed')
IMAGE_KEYS = ('sources', 'masks', 'distortions', 'variants', 'max_short_side', 'jpeg_quality',
              'png_compression', 'png_strategy', 'seed', 'fusion')
_SIBLING = {'det': 'ins', 'ins': 'det'}


class BuildConflict(RuntimeError):
    """The output folder holds a database built with other parameters."""


# ---------------------------------------------------------------- sources
@SOURCES.register_module(name='folder')
def collect_folder(root: str, recursive: bool = False, extensions: Sequence[str] = SOURCE_EXTENSIONS,
                   group_pattern: Optional[str] = None) -> List[dict]:
    """Every image file under ``root``: ``src_id`` = file stem, ``group`` = the first group of the
    regex ``group_pattern`` matched on the stem (e.g. ``r'(.*)_crop\\d+$'``), else the stem."""
    import re

    pattern = re.compile(group_pattern) if group_pattern else None
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise FileNotFoundError(f'source folder not found: {root_path}')
    files = root_path.rglob('*') if recursive else root_path.iterdir()
    items = []
    for path in sorted(files):
        if path.is_file() and path.suffix.lower() in tuple(e.lower() for e in extensions):
            match = pattern.match(path.stem) if pattern else None
            items.append(dict(src_id=path.stem, path=str(Path(root) / path.relative_to(root_path)),
                              group=match.group(1) if match else path.stem))
    return items


@SOURCES.register_module(name='list')
def collect_list(items: Sequence[Mapping]) -> List[dict]:
    """The sources given inline in the config."""
    return [dict(item) for item in items]


def _callable(name: str) -> Callable:
    fn = SOURCES.module_dict.get(name)
    if fn is None and '.' in name:
        module, _, attr = name.rpartition('.')
        fn = getattr(importlib.import_module(module), attr)
    return fn or SOURCES.get(name)  # did-you-mean KeyError


def collect_sources(spec: Any) -> List[dict]:
    """Source dicts sorted by ``src_id``, checked (unique ids that survive official file names),
    with ``group`` (default: the id), ``annotation`` (default None) and ``category`` (default '')."""
    if spec is None:
        raise ValueError('the build config needs `sources`, e.g. sources=dict(type="folder", root=...)')
    if isinstance(spec, Mapping):
        spec = dict(spec)
        items = _callable(spec.pop('type', 'folder'))(**spec)
    else:
        items = collect_list(spec)
    sources = []
    for item in items:
        src = {'group': None, 'annotation': None, 'category': '', **item}
        src['src_id'], src['path'] = str(src['src_id']), str(src['path'])
        src['group'] = str(src['group'] if src['group'] is not None else src['src_id'])
        check_src_id(src['src_id'])
        sources.append(src)
    sources.sort(key=lambda s: s['src_id'])
    dupes = sorted({a['src_id'] for a, b in zip(sources, sources[1:]) if a['src_id'] == b['src_id']})
    if dupes:
        raise ValueError(f'duplicate source ids (file stems): {", ".join(dupes[:10])}')
    return sources


def check_src_id(src_id: str) -> None:
    """An id must be a file-name stem that official variant names give back (naming.parse_name)."""
    bad = not src_id or src_id.startswith('.') or any(c in src_id for c in '/\\\0')
    if bad or parse_name(format_name(src_id, 'contrast', 'UD', 1, 1)).src_id != src_id:
        raise ValueError(f'source id {src_id!r} cannot be used in official MIQD file names')


def select_shard(src_ids: Sequence[str], num_shards: int, shard_index: int) -> List[str]:
    """Shard ``shard_index`` of ``num_shards``: the ids whose blake2b hash is ``shard_index`` mod
    ``num_shards`` (disjoint, covering, and stable when sources are added)."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f'shard index {shard_index} not in [0, {num_shards})')
    return [s for s in src_ids
            if int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), 'little') % num_shards
            == shard_index]


def source_seed(seed: int, src_id: str) -> int:
    """The per-image seed: 63 bits of blake2b(f'{seed}:{src_id}')."""
    digest = hashlib.blake2b(f'{seed}:{src_id}'.encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'little') >> 1


# ---------------------------------------------------------------- annotations
def _read_cls_annotations(path: str) -> Dict[str, Any]:
    """JSON ``{src_id: class index | [indices]}`` or CSV ``src_id,labels`` (indices split by spaces/;)."""
    if path.lower().endswith('.json'):
        raw = json.loads(Path(path).read_text())
    else:
        with open(path, newline='') as file:
            rows = list(csv.reader(file))
        raw = {row[0].strip(): row[1].replace(';', ' ').split() for row in rows[1:] if len(row) >= 2}
    return {str(k): sorted({int(v) for v in (vs if isinstance(vs, (list, tuple)) else [vs])})
            for k, vs in raw.items()}


def _read_coco_annotations(path: str) -> Dict[str, Any]:
    """COCO instances JSON: per image (keyed by file stem and by the 12-digit id) its annotations."""
    coco = json.loads(Path(path).read_text())
    per_image: Dict[int, list] = {img['id']: [] for img in coco.get('images', [])}
    for ann in coco.get('annotations', []):
        per_image.setdefault(ann['image_id'], []).append(ann)
    out: Dict[str, Any] = {}
    for img in coco.get('images', []):
        out[f'{img["id"]:012d}'] = out[Path(img.get('file_name', '')).stem] = per_image[img['id']]
    return out


ANNOTATION_READERS: Dict[str, Callable[[str], Dict[str, Any]]] = {
    'cls': _read_cls_annotations, 'det': _read_coco_annotations, 'ins': _read_coco_annotations}


def _scale_coco(annotations: Optional[list], sx: float, sy: float) -> Optional[list]:
    """COCO annotations of an image resized by (sx, sy): boxes, polygons, RLE masks, keypoints, area."""
    if annotations is None or (sx == 1.0 and sy == 1.0):
        return annotations
    out = []
    for ann in annotations:
        ann = dict(ann)
        if 'bbox' in ann:
            x, y, w, h = ann['bbox']
            ann['bbox'] = [x * sx, y * sy, w * sx, h * sy]
        seg = ann.get('segmentation')
        if isinstance(seg, list):
            ann['segmentation'] = [[v * (sx, sy)[i % 2] for i, v in enumerate(poly)] for poly in seg]
        elif isinstance(seg, dict):
            ann['segmentation'] = _scale_rle(seg, sx, sy)
        if 'keypoints' in ann:
            ann['keypoints'] = [v * (sx, sy, 1)[i % 3] for i, v in enumerate(ann['keypoints'])]
        if 'area' in ann:
            ann['area'] = ann['area'] * sx * sy
        out.append(ann)
    return out


def _scale_rle(rle: dict, sx: float, sy: float) -> dict:
    from pycocotools import mask as mask_utils

    h, w = rle['size']
    if isinstance(rle['counts'], list):
        rle = mask_utils.frPyObjects(rle, h, w)
    binary = mask_utils.decode(rle)
    size = (max(1, round(w * sx)), max(1, round(h * sy)))
    scaled = mask_utils.encode(np.asfortranarray(cv2.resize(binary, size, interpolation=cv2.INTER_NEAREST)))
    return dict(size=scaled['size'], counts=scaled['counts'].decode('ascii'))


ANNOTATION_SCALERS: Dict[str, Callable[[Any, float, float], Any]] = {
    'cls': lambda annotation, sx, sy: annotation, 'det': _scale_coco, 'ins': _scale_coco}


# ---------------------------------------------------------------- settings
def _plain(value: Any) -> Any:
    """JSON-normal form (ConfigDict, tuples, numpy scalars -> dict, list, str ...)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, 'item') else repr(v)))


def build_settings(cfg: Any, out: Optional[str] = None) -> Dict[str, Any]:
    """Config (mmengine ``Config``, ``ConfigDict`` or dict) + defaults, checked; ``out`` wins."""
    raw = cfg.to_dict() if isinstance(cfg, Config) else dict(cfg)
    unknown = sorted(set(raw) - set(DEFAULTS) - {'filename', 'text', 'pretty_text', 'custom_imports'})
    settings = {**DEFAULTS, **{k: v for k, v in raw.items() if k in DEFAULTS}}
    if unknown:
        print_log(f'build config: ignoring unknown keys {unknown}; known: {sorted(DEFAULTS)}',
                  logger='current', level=logging.WARNING)
    settings['out_root'] = out or settings['out_root']
    if not settings['out_root']:
        raise ValueError('no output folder: set out_root in the config or pass --out')
    if settings['task'] not in TASKS:
        raise ValueError(f'unknown task {settings["task"]!r}; expected one of {TASKS}')
    settings['distortions'] = list(settings['distortions'] or DISTORTIONS)
    for name in settings['distortions']:
        get_distortion(name)  # KeyError with close names
        format_name('x', name, 'UD', 1, 1)  # an official MIQD distortion
    if settings['label_in'] not in ('worker', 'main'):
        raise ValueError(f"label_in must be 'worker' or 'main', got {settings['label_in']!r}")
    settings['fusion'] = fusion_parameters(**(settings['fusion'] or {}))
    settings['variants'] = check_subset(settings['variants'], len(settings['distortions']))
    return {k: v.to_dict() if isinstance(v, ConfigDict) else v for k, v in settings.items()}


def build_params(settings: Mapping[str, Any]) -> Dict[str, Any]:
    """The manifest's ``params``: what decides the database's bytes (:data:`PARAM_KEYS`)."""
    return _plain({key: settings[key] for key in PARAM_KEYS})


@dataclass(frozen=True)
class Plan:
    """What a worker needs to turn one source into its files (picklable)."""
    task: str
    layout: TaskLayout
    state_dir: str
    distortions: Tuple[str, ...]
    max_short_side: Optional[int]
    jpeg_quality: int
    png_compression: int
    png_strategy: int
    seed: int
    fusion: Dict[str, Any] = field(default_factory=dict)
    mask_files: Dict[str, str] = field(default_factory=dict)
    variants: Optional[Dict[str, int]] = None


def make_plan(settings: Mapping[str, Any]) -> Plan:
    task = settings['task']
    return Plan(task, task_layout(settings['out_root'], task), str(_state_dir(settings['out_root'], task)),
                tuple(settings['distortions']), settings['max_short_side'], int(settings['jpeg_quality']),
                int(settings['png_compression']), int(settings['png_strategy']), int(settings['seed']),
                dict(settings['fusion']),
                find_mask_files(settings['masks']), settings['variants'])


def _state_dir(out: str, task: str) -> Path:
    return Path(out) / f'.build_{task}'


def manifest_path(out: str, task: str) -> Path:
    return Path(out) / f'manifest_{task}.json'


def label_files(task: str, src_id: str) -> List[str]:
    """The label CSV names of a source, in writing order (the last one marks it finished)."""
    suffixes = (CLS_LABEL_SUFFIX,) if task == 'cls' else tuple(DET_LABEL_SUFFIXES.values())
    return [f'{src_id}{suffix}' for suffix in suffixes]


def finished_sources(layout: TaskLayout, src_ids: Optional[Iterable[str]] = None) -> List[str]:
    """Sources whose label CSV(s) all exist (one listing of the label folder); all such sources
    when ``src_ids`` is None."""
    try:
        present = set(os.listdir(layout.labels))
    except FileNotFoundError:
        return []
    if src_ids is None:
        suffix = label_files(layout.task, '')[-1]
        src_ids = [name[:-len(suffix)] for name in present if name.endswith(suffix)]
    return sorted(s for s in src_ids if all(name in present for name in label_files(layout.task, s)))


# ---------------------------------------------------------------- one source
@dataclass
class Prepared:
    """A source after its images are written: what the labeller and the record need."""
    src_id: str
    record: Dict[str, Any]
    source: Optional[np.ndarray] = None                 # the decoded pristine JPEG
    variants: Optional[Dict[str, np.ndarray]] = None    # file name -> image, official order
    annotation: Any = None


def _read_image(path: str) -> Optional[np.ndarray]:
    """RGB uint8 through the loader's decoder (grayscale, alpha, 16-bit handled); None if unreadable."""
    try:
        return read_rgb(path)
    except OSError:
        return None


def _write_bytes(path: Path, data: bytes) -> None:
    """A file is whole or absent (temporary sibling + ``os.replace``)."""
    atomic_write_bytes(str(path), data)


def _encode(ext: str, rgb: np.ndarray, params: Sequence[int]) -> bytes:
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]), list(params))
    if not ok:
        raise RuntimeError(f'cv2.imencode({ext}) failed for an image of shape {rgb.shape}')
    return buf.tobytes()


def downscale(image: np.ndarray, max_short_side: Optional[int]) -> np.ndarray:
    """``image`` resized (``INTER_AREA``, aspect kept, sides rounded) so its short side is at most
    ``max_short_side``; unchanged when already small enough or when ``max_short_side`` is None."""
    h, w = image.shape[:2]
    if not max_short_side or min(h, w) <= max_short_side:
        return image
    scale = max_short_side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def prepare_source(plan: Plan, src: Mapping[str, Any], keep_images: bool = True) -> Prepared:
    """Write the pristine JPEG and the 25 variants per distortion of one source (spec §3 steps 1-2).

    Unreadable (or smaller than ``MIN_SIDE``) sources give a record with ``status='unreadable'``.
    """
    src_id = src['src_id']
    record = dict(src_id=src_id, path=src['path'], group=src['group'], category=src.get('category', ''),
                  seed=source_seed(plan.seed, src_id))
    extra = {k: v for k, v in src.items() if k not in record and k != 'annotation'}
    if extra:  # provenance given by the collector (package, licence ...)
        record['info'] = _plain(extra)
    raw = _read_image(src['path'])
    if raw is None or min(raw.shape[:2]) < MIN_SIDE:
        error = 'cannot be decoded' if raw is None else f'smaller than {MIN_SIDE} px ({raw.shape[:2]})'
        return Prepared(src_id, dict(record, status='unreadable', error=error))
    raw = to_rgb_uint8(raw)
    small = downscale(raw, plan.max_short_side)
    jpeg = _encode('.jpg', small, [cv2.IMWRITE_JPEG_QUALITY, plan.jpeg_quality])
    source = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = source.shape[:2]
    mask, mask_from = source_mask(source, plan.mask_files.get(src_id)
                                  or plan.mask_files.get(Path(src['path']).stem))
    soft = soft_mask(mask, **plan.fusion)

    folder = plan.layout.images / src_id
    folder.mkdir(parents=True, exist_ok=True)
    plan.layout.src_images.mkdir(parents=True, exist_ok=True)
    _write_bytes(plan.layout.src_images / f'{src_id}{plan.layout.src_ext}', jpeg)
    png = [cv2.IMWRITE_PNG_COMPRESSION, plan.png_compression, cv2.IMWRITE_PNG_STRATEGY, plan.png_strategy]
    variants: Dict[str, np.ndarray] = {}
    chosen = select_variants(plan.distortions, record['seed'], plan.variants)
    for distortion, rows in chosen.items():
        images = region_variants(source, distortion, record['seed'], soft, src_id, variants=rows)
        for name, image in images.items():
            _write_bytes(folder / name, _encode('.png', image, png))
        if keep_images:
            variants.update(images)
    expected = {format_name(src_id, d, *v) for d, rows in chosen.items() for v in rows}
    for stale in set(os.listdir(folder)) - expected:  # leftovers of a killed run
        os.unlink(folder / stale)
    sx, sy = w / raw.shape[1], h / raw.shape[0]
    annotation = ANNOTATION_SCALERS[plan.task](src.get('annotation'), sx, sy)
    record.update(status='finished', mask_source=mask_from, size=[h, w], original_size=list(raw.shape[:2]),
                  mask_coverage=round(float(mask.mean()), 6))
    if annotation is not None:
        record['annotation'] = _plain(annotation)
    return Prepared(src_id, record, source if keep_images else None, variants if keep_images else None,
                    annotation)


def _fmt(value: float) -> str:
    return f'{value:.6f}'


def _write_cls_labels(plan: Plan, src_id: str, names: Sequence[str], scores: Mapping) -> None:
    header = CLS_COLUMNS + LABEL_KEYS[2:]
    lines = [','.join(header)] + [','.join([f'{src_id}/{name}'] + [_fmt(scores[name][k]) for k in LABEL_KEYS])
                                  for name in names]
    atomic_write_text(str(plan.layout.labels / label_files('cls', src_id)[0]), '\n'.join(lines) + '\n')


def _write_det_labels(plan: Plan, src_id: str, names: Sequence[str], scores: Mapping) -> None:
    for kind, file in zip(DET_LABEL_SUFFIXES, label_files(plan.task, src_id)):  # accuracy, consistency
        key = f'weighted_{kind}'
        lines = [','.join(DET_COLUMNS)] + [f'{name},{_fmt(scores[name][key])}' for name in names]
        atomic_write_text(str(plan.layout.labels / file), '\n'.join(lines) + '\n')


LABEL_WRITERS: Dict[str, Callable[[Plan, str, Sequence[str], Mapping], None]] = {
    'cls': _write_cls_labels, 'det': _write_det_labels, 'ins': _write_det_labels}


_NAN_OK = frozenset(k for k in LABEL_KEYS if k.endswith('accuracy'))


def check_scores(names: Sequence[str], scores: Mapping[str, Mapping[str, float]]
                 ) -> Dict[str, Dict[str, float]]:
    """Every name scored with the six ``LABEL_KEYS`` in [0, 1] (1e-6 slack, clipped). Accuracy
    columns may be NaN (a labeller without annotations, e.g. ``missing_annotation='nan'``): they
    are written as ``nan``; consistency must be a number."""
    missing = [n for n in names if n not in scores]
    if missing:
        raise ValueError(f'labeller returned no scores for {len(missing)} image(s), e.g. {missing[0]}')
    out = {}
    for name in names:
        row = scores[name]
        absent = [k for k in LABEL_KEYS if k not in row]
        if absent:
            raise ValueError(f'labeller scores of {name} lack {absent}')
        values = {k: float(row[k]) for k in LABEL_KEYS}
        bad = {k: v for k, v in values.items()
               if not -1e-6 <= v <= 1 + 1e-6 and not (math.isnan(v) and k in _NAN_OK)}
        if bad:
            raise ValueError(f'labeller scores of {name} outside [0, 1]: {bad}')
        out[name] = {k: v if math.isnan(v) else min(1.0, max(0.0, v)) for k, v in values.items()}
    return out


def write_labels(plan: Plan, prepared: Prepared, scores: Mapping) -> None:
    """Record, then the label CSV(s) atomically, the finishing one last (spec §2 columns)."""
    names = list(prepared.variants)
    checked = check_scores(names, scores)
    write_record(plan, prepared.record)
    LABEL_WRITERS[plan.task](plan, prepared.src_id, names, checked)


def write_record(plan: Plan, record: Mapping[str, Any]) -> None:
    atomic_write_text(os.path.join(plan.state_dir, 'sources', f'{record["src_id"]}.json'),
                      json.dumps(_plain(record), indent=1, sort_keys=True))


def label_source(plan: Plan, labeller: Any, prepared: Prepared) -> None:
    """Label a prepared source and write its record and label CSV(s).

    A labeller with ``inspect_source(source, annotation)`` (det: :class:`~miqa.database.labels.
    MachineLabeller`) is asked first: it may give the annotation to use (pseudo ground truth,
    :mod:`miqa.database.pseudo_gt`) and fields for the record, or a reason to leave the source out
    (:func:`exclude_source`).
    """
    annotation = prepared.annotation
    inspect = getattr(labeller, 'inspect_source', None)
    if inspect is not None:
        found = inspect(prepared.source, annotation)
        prepared.record.update(_plain(found.get('record') or {}))
        if found.get('exclude'):
            exclude_source(plan, prepared, found['exclude'])
            return
        annotation = found.get('annotation', annotation)
    write_labels(plan, prepared, labeller.label(prepared.source, prepared.variants, annotation))


def exclude_source(plan: Plan, prepared: Prepared, reason: str) -> None:
    """Leave a source out of the database: its images are removed (unless the sibling det/ins
    task labelled it: they share images) and its record says ``status='excluded'`` and why, so
    a resumed build skips it."""
    src_id = prepared.src_id
    sibling = _SIBLING.get(plan.task)
    shared = sibling is not None and all(
        (task_layout(plan.layout.root.parent, sibling).labels / name).exists()
        for name in label_files(sibling, src_id))
    if not shared:
        shutil.rmtree(plan.layout.images / src_id, ignore_errors=True)
        (plan.layout.src_images / f'{src_id}{plan.layout.src_ext}').unlink(missing_ok=True)
    prepared.record.update(status='excluded', reason=reason)
    write_record(plan, prepared.record)


def excluded_sources(plan: Plan, src_ids: Iterable[str]) -> List[str]:
    """The ``src_ids`` whose record says ``status='excluded'`` (not finished, not to be redone)."""
    folder = Path(plan.state_dir) / 'sources'
    out = []
    for src_id in src_ids:
        record = _read_json(folder / f'{src_id}.json')
        if record is not None and record.get('status') == 'excluded':
            out.append(src_id)
    return out


def build_source(plan: Plan, labeller: Any, src: Mapping[str, Any]) -> Dict[str, Any]:
    """Images, labels and record of one source; returns its record."""
    prepared = prepare_source(plan, src)
    if prepared.record['status'] == 'finished':
        label_source(plan, labeller, prepared)
    else:
        write_record(plan, prepared.record)
    return prepared.record


# ---------------------------------------------------------------- workers
_WORKER: Dict[str, Any] = {}


def _limit_threads() -> None:
    cv2.setNumThreads(1)
    if 'torch' in sys.modules:
        sys.modules['torch'].set_num_threads(1)


def _init_worker(plan: Plan, labeller_factory: Optional[Callable[[], Any]]) -> None:
    exit_with_parent('build worker')  # a killed build leaves no worker writing into the folder
    _limit_threads()
    _WORKER.update(plan=plan, labeller=labeller_factory() if labeller_factory else None, described=False)
    _limit_threads()  # again: the labeller may have imported torch


def _work_full(src: Mapping[str, Any]) -> Tuple[Dict[str, Any], Optional[dict]]:
    record = build_source(_WORKER['plan'], _WORKER['labeller'], src)
    description = None
    if not _WORKER['described']:
        description, _WORKER['described'] = _describe(_WORKER['labeller']), True
    return record, description


def _work_prepare(src: Mapping[str, Any]) -> Prepared:
    return prepare_source(_WORKER['plan'], src)


def _describe(labeller: Any) -> dict:
    describe = getattr(labeller, 'describe', None)
    return _plain(describe()) if describe else dict(type=type(labeller).__name__)


def _bounded(pool: Any, fn: Callable, jobs: Sequence, window: int) -> Iterator:
    """``pool.apply_async`` over ``jobs`` with at most ``window`` in flight; results in job order."""
    pending: deque = deque()
    jobs_iter = iter(jobs)
    for job in jobs_iter:
        pending.append(pool.apply_async(fn, (job,)))
        if len(pending) >= window:
            break
    while pending:
        result = pending.popleft().get()
        for job in jobs_iter:
            pending.append(pool.apply_async(fn, (job,)))
            break
        yield result


def default_labeller_factory(labeller_cfg: Any) -> Callable[[], Any]:
    """``() -> build_labeller(labeller_cfg)`` (``miqa.database.labels``), picklable."""
    if labeller_cfg is None:
        raise ValueError('the build config needs `labeller` (see configs/build/README.md)')
    return _LabellerFactory(labeller_cfg)


@dataclass(frozen=True)
class _LabellerFactory:
    cfg: Any

    def __call__(self) -> Any:
        from miqa.database.labels import build_labeller

        return build_labeller(self.cfg)


# ---------------------------------------------------------------- build
@dataclass
class BuildSummary:
    """What one call of :func:`build_database` did."""
    out: str
    task: str
    selected: int = 0            # sources of this shard (after --limit)
    skipped_finished: int = 0
    built: int = 0
    unreadable: List[Dict[str, str]] = field(default_factory=list)
    excluded: int = 0            # sources the labeller left out (status 'excluded', built or earlier)
    finalized: bool = False
    seconds: float = 0.0


def build_database(cfg: Any, out: Optional[str] = None, num_shards: int = 1, shard_index: int = 0,
                   workers: Optional[int] = None, limit: Optional[int] = None, force: bool = False,
                   finalize: Optional[bool] = None, labeller_factory: Optional[Callable[[], Any]] = None,
                   progress: bool = True) -> BuildSummary:
    """Build (or resume) the database of ``cfg`` into ``out`` (or ``cfg.out_root``).

    Args:
        cfg: build config (keys of :data:`DEFAULTS`).
        num_shards, shard_index: build only :func:`select_shard` of the sources.
        workers: processes (``<= 1``: in this process); default ``cfg.workers`` or the CPU count.
        limit: only the first ``limit`` sources (sorted by id), before sharding.
        force: build even if the folder's manifest has other parameters: that task's labels,
            records and manifest (and its images, if image parameters changed) are deleted first.
        finalize: write split CSVs and the manifest from all finished sources; default: when
            ``num_shards == 1``.
        labeller_factory: zero-argument callable making the labeller (default:
            ``build_labeller(cfg.labeller)``).
    """
    start = time.perf_counter()
    settings = build_settings(cfg, out)
    out, task = settings['out_root'], settings['task']
    params = build_params(settings)
    sources = collect_sources(settings['sources'])
    if settings['annotations']:
        annotations = ANNOTATION_READERS[task](settings['annotations'])
        for src in sources:
            if src['annotation'] is None:
                src['annotation'] = annotations.get(src['src_id'], annotations.get(Path(src['path']).stem))
    if limit is not None:
        sources = sources[:limit]
    chosen = set(select_shard([s['src_id'] for s in sources], num_shards, shard_index))
    sources = [s for s in sources if s['src_id'] in chosen]
    summary = BuildSummary(out, task, selected=len(sources))

    begin_build(out, task, params, force)
    plan = make_plan(settings)
    done = set(finished_sources(plan.layout, [s['src_id'] for s in sources]))
    left_out = set(excluded_sources(plan, [s['src_id'] for s in sources if s['src_id'] not in done]))
    todo = [s for s in sources if s['src_id'] not in done | left_out]
    summary.skipped_finished, summary.excluded = len(done), len(left_out)
    factory = labeller_factory or default_labeller_factory(settings['labeller'])
    workers = next(w for w in (workers, settings['workers'], os.cpu_count(), 1) if w is not None)
    plan.layout.labels.mkdir(parents=True, exist_ok=True)
    desc = f'{task} {shard_index + 1}/{num_shards}'
    for record in _run(plan, factory, todo, workers, settings, progress, desc):
        if record['status'] == 'finished':
            summary.built += 1
        elif record['status'] == 'excluded':
            summary.excluded += 1
        else:
            summary.unreadable.append({k: record[k] for k in ('src_id', 'path', 'error')})
    if summary.unreadable:
        listed = '; '.join(f'{u["src_id"]} ({u["path"]}: {u["error"]})' for u in summary.unreadable[:20])
        print_log(f'build {task}: skipped {len(summary.unreadable)} unreadable source(s): {listed}',
                  logger='current', level=logging.WARNING)
    if summary.excluded:
        print_log(f'build {task}: {summary.excluded} source(s) left out by the labeller (e.g. no clean '
                  f'detection: no consistency reference); listed with reasons in manifest_{task}.json',
                  logger='current', level=logging.WARNING)
    if finalize if finalize is not None else num_shards == 1:
        finalize_database(cfg, out)
        summary.finalized = True
    summary.seconds = time.perf_counter() - start
    return summary


def _run(plan: Plan, factory: Callable[[], Any], todo: List[dict], workers: int, settings: Mapping[str, Any],
         progress: bool, desc: str) -> Iterator[Dict[str, Any]]:
    """Records of the ``todo`` sources as they finish (labelled in workers or here, see ``label_in``)."""
    from tqdm import tqdm

    if not todo:
        return
    label_here = settings['label_in'] == 'main' or workers <= 1
    labeller = factory() if label_here else None
    if labeller is not None:
        _save_description(plan, _describe(labeller))
    bar = tqdm(total=len(todo), desc=f'build {desc}', unit='src', disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1:
            for src in todo:
                yield build_source(plan, labeller, src)
                bar.update()
            return
        ctx = mp.get_context(settings['start_method'] or DEFAULT_START_METHOD)
        if ctx.get_start_method() == 'forkserver':
            ctx.set_forkserver_preload([__name__])
        worker_factory = None if label_here else factory
        with ctx.Pool(workers, initializer=_init_worker, initargs=(plan, worker_factory)) as pool:
            if label_here:
                for prepared in _bounded(pool, _work_prepare, todo, 2 * workers):
                    if prepared.record['status'] == 'finished':
                        label_source(plan, labeller, prepared)
                    else:
                        write_record(plan, prepared.record)
                    bar.update()
                    yield prepared.record
            else:
                for record, description in pool.imap_unordered(_work_full, todo):
                    if description is not None:
                        _save_description(plan, description)
                    bar.update()
                    yield record
    finally:
        bar.close()


def _save_description(plan: Plan, description: dict) -> None:
    path = Path(plan.state_dir) / 'labeller.json'
    text = json.dumps(description, indent=1, sort_keys=True)
    if not path.exists() or path.read_text() != text:
        atomic_write_text(str(path), text)


# ---------------------------------------------------------------- manifest, guard, finalize
def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def begin_build(out: str, task: str, params: Dict[str, Any], force: bool = False) -> None:
    """Refuse (``BuildConflict``) to mix a build into a folder built with other parameters.

    det and ins share images: their image parameters (:data:`IMAGE_KEYS`) must agree even with
    ``force``. A new folder gets a provisional manifest holding ``params``.
    """
    path = manifest_path(out, task)
    old = _read_json(path)
    layout = task_layout(out, task)
    if old is None and finished_sources(layout):
        old = dict(params='(no manifest: unknown parameters)')
    sibling = _SIBLING.get(task)
    if sibling:
        theirs = (_read_json(manifest_path(out, sibling)) or {}).get('params')
        if theirs and any(theirs.get(k) != params.get(k) for k in IMAGE_KEYS):
            raise BuildConflict(f'{out}: miqa_det/images were built for {sibling} with other image '
                                f'parameters ({_diff(theirs, params, IMAGE_KEYS)}); det and ins share '
                                'images: use the same image parameters or another output folder')
    if old is not None and old.get('params') != params:
        if not force:
            raise BuildConflict(f'{out} holds a {task} database built with other parameters '
                                f'({_diff(old.get("params"), params, PARAM_KEYS)}); use another output '
                                'folder or --force to delete it and rebuild')
        _wipe(out, task, old.get('params'), params)
        old = None
    if old is None:
        provisional = dict(format=FORMAT, task=task, status='building', params=params)
        atomic_write_text(str(path), json.dumps(provisional, indent=1, sort_keys=True))


def _diff(old: Any, new: Mapping[str, Any], keys: Sequence[str]) -> str:
    if not isinstance(old, Mapping):
        return str(old)
    changed = [k for k in keys if old.get(k) != new.get(k)]
    return ', '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in changed)


def _wipe(out: str, task: str, old: Any, new: Mapping[str, Any]) -> None:
    layout = task_layout(out, task)
    print_log(f'--force: deleting the {task} labels, records and manifest in {out}', logger='current',
              level=logging.WARNING)
    shutil.rmtree(layout.labels, ignore_errors=True)
    shutil.rmtree(_state_dir(out, task), ignore_errors=True)
    manifest_path(out, task).unlink(missing_ok=True)
    if not isinstance(old, Mapping) or any(old.get(k) != new.get(k) for k in IMAGE_KEYS):
        shutil.rmtree(layout.images, ignore_errors=True)
        shutil.rmtree(layout.src_images, ignore_errors=True)


def _versions() -> Dict[str, Optional[str]]:
    def version(package: str) -> Optional[str]:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return dict(python=sys.version.split()[0], numpy=np.__version__, opencv=cv2.__version__,
                torch=version('torch'), mmengine=version('mmengine'))


def distortion_tables(names: Sequence[str]) -> Dict[str, Any]:
    """Category and the 12 candidate settings of each distortion, as recorded in the manifest."""
    fns = {name: get_distortion(name) for name in names}
    return _plain({name: dict(category=fn.category, candidates=list(fn.params)) for name, fn in fns.items()})


def finalize_database(cfg: Any, out: Optional[str] = None) -> Dict[str, Any]:
    """Write the split CSVs (by source group, ``make_split``) and ``manifest_<task>.json`` from all
    finished sources in the folder (every shard's); returns the manifest."""
    settings = build_settings(cfg, out)
    out, task = settings['out_root'], settings['task']
    params = build_params(settings)
    old = _read_json(manifest_path(out, task))
    if old is not None and old.get('params') != params:
        raise BuildConflict(f'{out}: manifest_{task}.json has other parameters '
                            f'({_diff(old.get("params"), params, PARAM_KEYS)})')
    layout = task_layout(out, task)
    state = _state_dir(out, task)
    records = {}
    for path in sorted((state / 'sources').glob('*.json')) if (state / 'sources').is_dir() else []:
        record = json.loads(path.read_text())
        records[record['src_id']] = record
    finished = finished_sources(layout, sorted(records))
    unreadable = [dict(src_id=r['src_id'], path=r['path'], error=r['error'])
                  for s, r in records.items() if r['status'] == 'unreadable' and s not in finished]
    excluded = [dict(src_id=r['src_id'], path=r['path'], reason=r.get('reason', ''))
                for s, r in records.items() if r['status'] == 'excluded' and s not in finished]
    splits = _write_splits(out, task, {s: records[s] for s in finished}, settings)
    pseudo = any(records[s].get('annotation_source') == 'pseudo_gt' for s in finished)
    if task != 'cls' and (settings['annotations'] or pseudo):
        _write_coco_subset(layout, settings['annotations'], {s: records[s] for s in finished})
    skip = {'src_id', 'status'} | ({'annotation'} if task != 'cls' else set())  # det/ins: additional_info
    sources = {s: {k: v for k, v in records[s].items() if k not in skip} for s in finished}
    manifest = dict(
        format=FORMAT, task=task, status='finalized', miqa_version=__version__, versions=_versions(),
        params=params, labeller=_read_json(state / 'labeller.json'),
        seeds=dict(seed=settings['seed'], per_source="blake2b(f'{seed}:{src_id}', 8 bytes, little) >> 1",
                   split_seed=settings['split_seed']),
        level_ranks=list(LEVEL_RANKS), distortion_tables=distortion_tables(settings['distortions']),
        mask_providers=list(MASK_SOURCES),
        mask_sources={k: sum(r['mask_source'] == k for r in sources.values()) for k in MASK_SOURCES},
        splits={k: len(v) for k, v in splits.items()}, num_finished=len(finished), finished=finished,
        unreadable=unreadable, **({'excluded': excluded} if excluded else {}), sources=sources)
    atomic_write_text(str(Path(out) / f'ATTRIBUTION_{task}.md'),
                      attribution_markdown(sources, f'MIQD database, task {task}'))
    atomic_write_text(str(manifest_path(out, task)), json.dumps(_plain(manifest), indent=1, sort_keys=True))
    return manifest


def _write_splits(out: str, task: str, records: Mapping[str, Mapping], settings: Mapping,
                  dest: Optional[str] = None) -> Dict[str, list]:
    """Official-format split CSVs: groups (crops of one photo) split by ``make_split``, 80/20 default;
    written to ``<out>/splits/`` or to ``<dest>/`` (same file names)."""
    groups = sorted({r['group'] for r in records.values()})
    if not groups:
        return dict(train=[], val=[])
    seed = settings['split_seed']
    by_group = make_split(groups, settings['val_ratio'], seed) if len(groups) > 1 \
        else dict(train=groups, val=[])
    if len(groups) > 1 and not by_group['val']:  # e.g. 2 groups at 80/20: val must not be empty
        first = min(by_group['train'], key=lambda g: hashlib.blake2b(f'{seed}:{g}'.encode(),
                                                                     digest_size=8).digest())
        by_group = dict(train=[g for g in by_group['train'] if g != first], val=[first])
    splits = {}
    for split, chosen in by_group.items():
        chosen = set(chosen)
        src_ids = sorted(s for s, r in records.items() if r['group'] in chosen)
        splits[split] = src_ids
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator='\n')
        SPLIT_WRITERS[task](writer, src_ids, records)
        path = official_split_path(out, task, split)
        if dest is not None:
            path = Path(dest) / path.name
        atomic_write_text(str(path), rows.getvalue())
    return splits


def resplit_database(out: str, task: str, split_seed: int, val_ratio: Optional[float] = None,
                     dest: Optional[str] = None) -> Dict[str, list]:
    """Another train/val split of a finalized database, by source group as the official one
    (crops of one photo stay on one side): split CSVs in ``dest`` (default
    ``<out>/splits/seed<split_seed>/``). For repeated experiments on a small database."""
    manifest = _read_json(manifest_path(out, task))
    if manifest is None or manifest.get('status') != 'finalized':
        raise FileNotFoundError(f'{manifest_path(out, task)} is missing or not finalized: build the '
                                f'database first (python tools/build_miqd.py CONFIG --out {out})')
    ratio = manifest['params'].get('val_ratio', 0.2) if val_ratio is None else val_ratio
    dest = dest or str(Path(out) / 'splits' / f'seed{split_seed}')
    settings = dict(val_ratio=ratio, split_seed=split_seed)
    return _write_splits(out, task, manifest['sources'], settings, dest=dest)


def _cls_split(writer: Any, src_ids: Sequence[str], records: Mapping[str, Mapping]) -> None:
    writer.writerow(('Image Name', 'Category', 'Quality Score'))  # no selection score: left empty
    writer.writerows((f'{s}.JPEG', records[s].get('category', ''), '') for s in src_ids)


def _det_split(writer: Any, src_ids: Sequence[str], records: Mapping[str, Mapping]) -> None:
    writer.writerow(('Image Index',))  # the COCO id when the src_id is a 12-digit one, else the id itself
    writer.writerows((int(s) if s.isdigit() and len(s) == 12 else s,) for s in src_ids)


SPLIT_WRITERS = {'cls': _cls_split, 'det': _det_split, 'ins': _det_split}


def _write_coco_subset(layout: TaskLayout, annotations_file: Optional[str], records: Mapping[str, Mapping]
                       ) -> None:
    """``miqa_det/additional_info/instances_val2017.json``: the finished sources with their
    annotations at the stored size (from ``annotations_file``, scaled; or the pseudo ground truth
    of :mod:`miqa.database.pseudo_gt`, ``annotation_source='pseudo_gt'`` in the record), the
    categories of ``annotations_file`` (else COCO's 80). Image and annotation ids of the file are
    kept; sources without them get new ids after the largest one (in ``src_id`` order)."""
    from .pseudo_gt import COCO_CATEGORIES

    coco = json.loads(Path(annotations_file).read_text()) if annotations_file else {}
    image_ids: Dict[str, Any] = {}
    for src_id, record in records.items():
        src_anns = record.get('annotation') or []
        if src_anns and 'image_id' in src_anns[0]:
            image_ids[src_id] = src_anns[0]['image_id']
        elif src_id.isdigit():
            image_ids[src_id] = int(src_id)
    next_image = 1 + max((i for i in image_ids.values() if isinstance(i, int)), default=0)
    next_ann = 1 + max((a['id'] for r in records.values() for a in r.get('annotation') or []
                        if isinstance(a.get('id'), int)), default=0)
    images, anns = [], []
    for src_id in sorted(records):
        record = records[src_id]
        if src_id not in image_ids:
            image_ids[src_id], next_image = next_image, next_image + 1
        images.append(dict(id=image_ids[src_id], file_name=f'{src_id}{layout.src_ext}',
                           height=record['size'][0], width=record['size'][1]))
        for ann in record.get('annotation') or []:
            if 'id' not in ann:
                ann, next_ann = dict(ann, id=next_ann, image_id=image_ids[src_id]), next_ann + 1
            anns.append(ann)
    subset = dict(images=images, annotations=anns,
                  categories=coco.get('categories', []) if annotations_file else list(COCO_CATEGORIES))
    atomic_write_text(str(layout.src_images.parent / 'additional_info' / 'instances_val2017.json'),
                      json.dumps(subset))
