"""A build folder's manifest: the parameter guard before a build, the finalize step after it.

``manifest_<task>.json`` holds the parameters a database was built with (:data:`~miqa.database.
settings.PARAM_KEYS`). :func:`begin_build` refuses (:class:`BuildConflict`) to mix a build into a
folder built with other parameters; :func:`finalize_database` writes the split CSVs
(:mod:`miqa.database.splitting`), the COCO file of det/ins, ``ATTRIBUTION_<task>.md`` and the
finalized manifest from every finished source in the folder (every shard's).
"""
import importlib.metadata
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import cv2
import numpy as np
from mmengine.logging import print_log

from miqa.datasets.index import task_layout
from miqa.distortions import LEVEL_RANKS, get_distortion
from miqa.utils.io import atomic_write_text, read_json
from miqa.version import __version__

from .coco import write_coco_subset
from .labelling import finished_sources
from .masks import MASK_SOURCES
from .settings import IMAGE_KEYS, PARAM_KEYS, build_params, build_settings, manifest_path, plain, state_dir
from .sources import attribution_markdown
from .splitting import write_splits
from .tasks import task_spec

FORMAT = 'miqa-build/1'


class BuildConflict(RuntimeError):
    """The output folder holds a database built with other parameters."""


def begin_build(out: str, task: str, params: Dict[str, Any], force: bool = False) -> None:
    """Refuse (``BuildConflict``) to mix a build into a folder built with other parameters.

    det and ins share images: their image parameters (:data:`IMAGE_KEYS`) must agree even with
    ``force``. A new folder gets a provisional manifest holding ``params``.
    """
    path = manifest_path(out, task)
    old = read_json(path)
    layout = task_layout(out, task)
    if old is None and finished_sources(layout):
        old = dict(params='(no manifest: unknown parameters)')
    sibling = task_spec(task).shares_images_with
    if sibling:
        theirs = (read_json(manifest_path(out, sibling)) or {}).get('params')
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
    shutil.rmtree(state_dir(out, task), ignore_errors=True)
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
    return plain({name: dict(category=fn.category, candidates=list(fn.params)) for name, fn in fns.items()})


def finalize_database(cfg: Any, out: Optional[str] = None) -> Dict[str, Any]:
    """Write the split CSVs (by source group, ``make_split``) and ``manifest_<task>.json`` from all
    finished sources in the folder (every shard's); returns the manifest."""
    settings = build_settings(cfg, out)
    out, task = settings['out_root'], settings['task']
    params = build_params(settings)
    old = read_json(manifest_path(out, task))
    if old is not None and old.get('params') != params:
        raise BuildConflict(f'{out}: manifest_{task}.json has other parameters '
                            f'({_diff(old.get("params"), params, PARAM_KEYS)})')
    layout = task_layout(out, task)
    state = state_dir(out, task)
    records = {}
    for path in sorted((state / 'sources').glob('*.json')) if (state / 'sources').is_dir() else []:
        record = json.loads(path.read_text())
        records[record['src_id']] = record
    finished = finished_sources(layout, sorted(records))
    unreadable = [dict(src_id=r['src_id'], path=r['path'], error=r['error'])
                  for s, r in records.items() if r['status'] == 'unreadable' and s not in finished]
    excluded = [dict(src_id=r['src_id'], path=r['path'], reason=r.get('reason', ''))
                for s, r in records.items() if r['status'] == 'excluded' and s not in finished]
    splits = write_splits(out, task, {s: records[s] for s in finished}, settings)
    coco = task_spec(task).coco  # det/ins: annotations in additional_info, not in the manifest
    pseudo = any(records[s].get('annotation_source') == 'pseudo_gt' for s in finished)
    if coco and (settings['annotations'] or pseudo):
        write_coco_subset(layout.src_images.parent / 'additional_info' / 'instances_val2017.json',
                          layout.src_ext, {s: records[s] for s in finished}, settings['annotations'])
    skip = {'src_id', 'status'} | ({'annotation'} if coco else set())
    sources = {s: {k: v for k, v in records[s].items() if k not in skip} for s in finished}
    manifest = dict(
        format=FORMAT, task=task, status='finalized', miqa_version=__version__, versions=_versions(),
        params=params, labeller=read_json(state / 'labeller.json'),
        seeds=dict(seed=settings['seed'], per_source="blake2b(f'{seed}:{src_id}', 8 bytes, little) >> 1",
                   split_seed=settings['split_seed']),
        level_ranks=list(LEVEL_RANKS), distortion_tables=distortion_tables(settings['distortions']),
        mask_providers=list(MASK_SOURCES),
        mask_sources={k: sum(r['mask_source'] == k for r in sources.values()) for k in MASK_SOURCES},
        splits={k: len(v) for k, v in splits.items()}, num_finished=len(finished), finished=finished,
        unreadable=unreadable, **({'excluded': excluded} if excluded else {}), sources=sources)
    atomic_write_text(str(Path(out) / f'ATTRIBUTION_{task}.md'),
                      attribution_markdown(sources, f'MIQD database, task {task}'))
    atomic_write_text(str(manifest_path(out, task)), json.dumps(plain(manifest), indent=1, sort_keys=True))
    return manifest


__all__ = ['FORMAT', 'BuildConflict', 'begin_build', 'distortion_tables', 'finalize_database']
