"""The train/val split CSVs of a built database, in the official format (spec §2).

Sources are split by photo group (crops of one photo stay on one side, ``make_split``); the
official split goes to ``<out>/splits/``, further seeds (:func:`resplit_database`, repeated
experiments on a small database) to ``<out>/splits/seed<k>/``. Splits of the official *train*
sources only (``within='train'``, to ``<out>/splits/train-seed<k>/``) are for model selection:
choosing a design on them never looks at the official val photos.
"""
import csv
import hashlib
import io
from pathlib import Path
from typing import Dict, Mapping, Optional

from miqa.datasets.splits import make_split, official_split_path, read_split_file
from miqa.utils.io import atomic_write_text, read_json

from .settings import manifest_path
from .tasks import task_spec


def write_splits(out: str, task: str, records: Mapping[str, Mapping], settings: Mapping,
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
    spec = task_spec(task)
    splits = {}
    for split, chosen in by_group.items():
        chosen = set(chosen)
        src_ids = sorted(s for s, r in records.items() if r['group'] in chosen)
        splits[split] = src_ids
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator='\n')
        writer.writerow(spec.split_header)
        writer.writerows(spec.split_row(s, records[s]) for s in src_ids)
        path = official_split_path(out, task, split)
        if dest is not None:
            path = Path(dest) / path.name
        atomic_write_text(str(path), rows.getvalue())
    return splits


def resplit_name(split_seed: int, within: Optional[str] = None) -> str:
    """The folder (under ``<out>/splits/``) of a resplit: ``seed<k>`` or ``<within>-seed<k>``."""
    return f'seed{split_seed}' if within is None else f'{within}-seed{split_seed}'


def resplit_database(out: str, task: str, split_seed: int, val_ratio: Optional[float] = None,
                     dest: Optional[str] = None, within: Optional[str] = None) -> Dict[str, list]:
    """Another train/val split of a finalized database, by source group as the official one
    (crops of one photo stay on one side): split CSVs in ``dest`` (default
    ``<out>/splits/<resplit_name(split_seed, within)>/``). For repeated experiments on a small
    database. ``within='train'`` splits the official train sources only (model selection
    without the official val photos)."""
    manifest = read_json(manifest_path(out, task))
    if manifest is None or manifest.get('status') != 'finalized':
        raise FileNotFoundError(f'{manifest_path(out, task)} is missing or not finalized: build the '
                                f'database first (python tools/build_miqd.py CONFIG --out {out})')
    ratio = manifest['params'].get('val_ratio', 0.2) if val_ratio is None else val_ratio
    dest = dest or str(Path(out) / 'splits' / resplit_name(split_seed, within))
    sources = manifest['sources']
    if within is not None:
        if within not in ('train', 'val'):
            raise ValueError(f"within must be None, 'train' or 'val', got {within!r}")
        keep = set(read_split_file(official_split_path(out, task, within), task).src_ids)
        sources = {s: r for s, r in sources.items() if s in keep}
    settings = dict(val_ratio=ratio, split_seed=split_seed)
    return write_splits(out, task, sources, settings, dest=dest)


__all__ = ['resplit_database', 'resplit_name', 'write_splits']
