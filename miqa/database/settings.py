"""A build config checked into settings, the parameters that decide a database's bytes, and
the :class:`Plan` a worker follows.

The config (an mmengine ``Config``) keys are those of :data:`DEFAULTS`; see
``configs/build/README.md``.
"""
import json
import logging
import multiprocessing as mp
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import cv2
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from miqa.datasets.index import TaskLayout, task_layout
from miqa.datasets.naming import DISTORTIONS, format_name
from miqa.distortions import get_distortion

from .fusion import fusion_parameters
from .masks import find_mask_files
from .tasks import task_spec
from .variants import check_subset

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


def plain(value: Any) -> Any:
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
    task_spec(settings['task'])  # ValueError naming the tasks
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
    return plain({key: settings[key] for key in PARAM_KEYS})


def state_dir(out: str, task: str) -> Path:
    """``<out>/.build_<task>``: the per-source records (``sources/<src_id>.json``) and ``labeller.json``."""
    return Path(out) / f'.build_{task}'


def manifest_path(out: str, task: str) -> Path:
    return Path(out) / f'manifest_{task}.json'


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
    return Plan(task, task_layout(settings['out_root'], task), str(state_dir(settings['out_root'], task)),
                tuple(settings['distortions']), settings['max_short_side'], int(settings['jpeg_quality']),
                int(settings['png_compression']), int(settings['png_strategy']), int(settings['seed']),
                dict(settings['fusion']),
                find_mask_files(settings['masks']), settings['variants'])


__all__ = ['DEFAULTS', 'DEFAULT_START_METHOD', 'IMAGE_KEYS', 'PARAM_KEYS', 'Plan', 'build_params',
           'build_settings', 'make_plan', 'manifest_path', 'plain', 'state_dir']
