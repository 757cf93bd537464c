"""Build a MIQD-style database from your own photos (spec §2 layout, spec §3 recipe).

:func:`build_database` runs the steps, each in its own module:

* :mod:`~miqa.database.settings`: the build config checked (keys of ``DEFAULTS``), its parameters;
* :mod:`~miqa.database.collectors`: the sources (collectors, ids, shards, per-source seeds);
* :mod:`~miqa.database.manifest`: the parameter guard (``BuildConflict``) and, last, ``finalize_database``;
* :mod:`~miqa.database.pool`: the worker processes, each source through
  :mod:`~miqa.database.render` (pristine JPEG, ROI mask, fused variants) and
  :mod:`~miqa.database.labelling` (labeller scores, record, label CSVs: a source is *finished*
  when its label CSV(s) exist; a rerun skips finished sources and redoes the others);
* :mod:`~miqa.database.splitting`: the train/val split CSVs; :mod:`~miqa.database.coco`: the
  det/ins COCO file; :mod:`~miqa.database.tasks`: what differs per task.

Outputs under ``<out>`` (layout of :func:`miqa.datasets.index.task_layout`)::

    miqa_<cls|det>/images/<src_id>/<official variant name>.png
    miqa_<cls|det>/src_images/<src_id>.JPEG | .jpg
    miqa_<task>/labels/<src_id>_mmos.csv                      (cls)
    miqa_<task>/labels/<src_id>_accuracy.csv, _consistency.csv (det/ins; consistency last)
    miqa_det/additional_info/instances_val2017.json            (det/ins with a COCO file)
    splits/miqa_<cls|det>_<train|val>.csv                      (by source group, finalize)
    manifest_<task>.json                                       (finalize)
    .build_<task>/sources/<src_id>.json, labeller.json         (per-source records)

The command line is ``tools/build_miqd.py`` (:mod:`miqa.database.cli`); see ``configs/build/README.md``.
"""
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from mmengine.logging import print_log

from .collectors import collect_sources, select_shard
from .labelling import excluded_sources, finished_sources
from .manifest import begin_build, finalize_database
from .pool import default_labeller_factory, run_sources
from .settings import build_params, build_settings, make_plan
from .tasks import task_spec


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
        cfg: build config (keys of :data:`~miqa.database.settings.DEFAULTS`).
        num_shards, shard_index: build only :func:`~miqa.database.collectors.select_shard` of the sources.
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
        annotations = task_spec(task).read_annotations(settings['annotations'])
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
    for record in run_sources(plan, factory, todo, workers, settings, progress, desc):
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


__all__ = ['BuildSummary', 'build_database']
