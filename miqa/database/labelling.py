"""One rendered source labelled and recorded; which sources of a build folder are finished.

The labeller (:mod:`miqa.database.labels`) scores the variants; the scores are checked, the
source's record (``.build_<task>/sources/<src_id>.json``) is written, then its label CSV(s)
atomically, the finishing one last (:meth:`~miqa.database.tasks.TaskSpec.label_files`). A source
is *finished* when its label CSV(s) exist; a rerun skips finished sources and redoes the others
from scratch.
"""
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from miqa.datasets.index import TaskLayout, task_layout
from miqa.utils.io import atomic_write_text, read_json

from .render import Prepared, prepare_source
from .settings import Plan, plain
from .tasks import LABEL_KEYS, task_spec

_NAN_OK = frozenset(k for k in LABEL_KEYS if k.endswith('accuracy'))


def finished_sources(layout: TaskLayout, src_ids: Optional[Iterable[str]] = None) -> List[str]:
    """Sources whose label CSV(s) all exist (one listing of the label folder); all such sources
    when ``src_ids`` is None."""
    try:
        present = set(os.listdir(layout.labels))
    except FileNotFoundError:
        return []
    spec = task_spec(layout.task)
    if src_ids is None:
        suffix = spec.label_files('')[-1]
        src_ids = [name[:-len(suffix)] for name in present if name.endswith(suffix)]
    return sorted(s for s in src_ids if all(name in present for name in spec.label_files(s)))


def excluded_sources(plan: Plan, src_ids: Iterable[str]) -> List[str]:
    """The ``src_ids`` whose record says ``status='excluded'`` (not finished, not to be redone)."""
    folder = Path(plan.state_dir) / 'sources'
    out = []
    for src_id in src_ids:
        record = read_json(folder / f'{src_id}.json')
        if record is not None and record.get('status') == 'excluded':
            out.append(src_id)
    return out


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


def write_record(plan: Plan, record: Mapping[str, Any]) -> None:
    atomic_write_text(os.path.join(plan.state_dir, 'sources', f'{record["src_id"]}.json'),
                      json.dumps(plain(record), indent=1, sort_keys=True))


def write_labels(plan: Plan, prepared: Prepared, scores: Mapping) -> None:
    """Record, then the label CSV(s) atomically, the finishing one last (spec §2 columns)."""
    names = list(prepared.variants)
    checked = check_scores(names, scores)
    write_record(plan, prepared.record)
    task_spec(plan.task).write_labels(plan.layout.labels, prepared.src_id, names, checked)


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
        prepared.record.update(plain(found.get('record') or {}))
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
    sibling = task_spec(plan.task).shares_images_with
    shared = sibling is not None and all(
        (task_layout(plan.layout.root.parent, sibling).labels / name).exists()
        for name in task_spec(sibling).label_files(src_id))
    if not shared:
        shutil.rmtree(plan.layout.images / src_id, ignore_errors=True)
        (plan.layout.src_images / f'{src_id}{plan.layout.src_ext}').unlink(missing_ok=True)
    prepared.record.update(status='excluded', reason=reason)
    write_record(plan, prepared.record)


def build_source(plan: Plan, labeller: Any, src: Mapping[str, Any]) -> Dict[str, Any]:
    """Images, labels and record of one source; returns its record."""
    prepared = prepare_source(plan, src)
    if prepared.record['status'] == 'finished':
        label_source(plan, labeller, prepared)
    else:
        write_record(plan, prepared.record)
    return prepared.record


__all__ = ['build_source', 'check_scores', 'exclude_source', 'excluded_sources', 'finished_sources',
           'label_source', 'write_labels', 'write_record']
