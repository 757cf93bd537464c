"""A tiny MIQD-2.5M tree in the exact official layout (spec §2), for tests and benchmarks.

Everything written is a deterministic function of the arguments: source ids, labels (in
[0, 1], falling with the distortion level in expectation), image content and the official-
format split CSVs.
"""
import csv
import json
import os
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import cv2
import numpy as np

from miqa.datasets.index import (
    CLS_COLUMNS,
    CLS_LABEL_SUFFIX,
    DET_COLUMNS,
    DET_LABEL_SUFFIXES,
    TaskLayout,
    task_layout,
)
from miqa.datasets.naming import DISTORTIONS, VARIANTS, variant_names
from miqa.datasets.splits import official_split_path
from miqa.vocab import TASKS

DEFAULT_CATEGORIES = ('sea snake', 'ski', 'Shetland sheepdog, Shetland sheep dog, Shetland')
COCO_CATEGORIES = ({'id': 1, 'name': 'person', 'supercategory': 'person'},
                   {'id': 3, 'name': 'car', 'supercategory': 'vehicle'},
                   {'id': 18, 'name': 'dog', 'supercategory': 'animal'})
_TASK_CODE = {'cls': 0, 'det': 1, 'ins': 2}
_FG_WEIGHT = {'UD': 0.5, 'ROI': 0.7, 'BG': 0.3}  # weight of the fg level in a variant's severity
_SEVERITY = np.array([_FG_WEIGHT[r] * fg + (1 - _FG_WEIGHT[r]) * bg for r, fg, bg in VARIANTS])


def make_miqd_tree(root: Union[str, os.PathLike],
                   tasks: Sequence[str] = TASKS,
                   n_src: int = 4,
                   distortions: Sequence[str] = ('gaussian_noise', 'motion_blur'),
                   image_size: Tuple[int, int] = (32, 40),
                   zero_byte: bool = False,
                   seed: int = 0,
                   categories: Sequence[str] = DEFAULT_CATEGORIES) -> dict:
    """Write a MIQD tree under ``root`` for ``tasks``.

    Per task: ``n_src`` sources x ``len(distortions)`` x 25 variants, label CSVs, source images
    and official-format split files (``root/splits/``; one source in five, at least one, is
    val); det/ins also get ``miqa_det/additional_info/instances_val2017.json``. Images are
    small seeded random PNGs of ``image_size`` (h, w), or empty files with ``zero_byte``.

    Returns:
        ``dict(root=str, categories={src_id: class name} (cls), coco=path (det/ins), and per
        task written cls/det/ins=dict(layout=TaskLayout (its folders), src_ids=[...],
        train=[...], val=[...], split_files=dict(train=path, val=path),
        labels={filename: (consistency, accuracy)}))``.
    """
    root = Path(root).absolute()
    unknown = [d for d in distortions if d not in DISTORTIONS]
    if unknown or not set(tasks) <= set(_TASK_CODE):
        raise ValueError(f'unknown distortions {unknown} or tasks {tasks}')
    out: dict = dict(root=str(root))
    src_ids = {'cls': _src_ids('cls', n_src, seed), 'det': _src_ids('det', n_src, seed)}
    image_tasks = sorted({'cls' if t == 'cls' else 'det' for t in tasks})
    for image_task in image_tasks:
        _write_images(task_layout(root, image_task), src_ids[image_task], distortions, image_size,
                      zero_byte, seed)
        val = _val_sources(src_ids[image_task], seed)
        splits = {'train': [s for s in src_ids[image_task] if s not in val],
                  'val': [s for s in src_ids[image_task] if s in val]}
        if image_task == 'cls':
            out['categories'] = {s: categories[i % len(categories)] for i, s in enumerate(src_ids['cls'])}
        split_files = _write_splits(root, image_task, splits, out.get('categories', {}), seed)
        if image_task == 'det':
            out['coco'] = task_layout(root, 'det').root / 'additional_info' / 'instances_val2017.json'
            _write_coco(out['coco'], src_ids['det'], image_size)
        for task in tasks:
            if (task == 'cls') == (image_task == 'cls'):
                layout = task_layout(root, task)
                labels = _write_labels(layout, src_ids[image_task], distortions, seed)
                out[task] = dict(layout=layout, src_ids=list(src_ids[image_task]), labels=labels,
                                 split_files=split_files, **splits)
    return out


def _src_ids(task: str, n_src: int, seed: int) -> List[str]:
    """ImageNet-val names (cls) or 12-digit zero-padded COCO ids (det/ins), sorted."""
    rng = np.random.default_rng([seed, 7, _TASK_CODE[task]])
    if task == 'cls':
        numbers = rng.choice(50000, size=n_src, replace=False) + 1
        return sorted(f'ILSVRC2012_val_{k:08d}' for k in numbers)
    numbers = rng.choice(581929, size=n_src, replace=False) + 1
    return sorted(f'{k:012d}' for k in numbers)


def _val_sources(src_ids: List[str], seed: int) -> set:
    n_val = max(1, round(len(src_ids) * 0.2))
    picked = np.random.default_rng([seed, 11]).permutation(len(src_ids))[:n_val]
    return {src_ids[i] for i in picked}


def _write_images(layout: TaskLayout, src_ids: List[str], distortions: Sequence[str],
                  image_size: Tuple[int, int], zero_byte: bool, seed: int) -> None:
    layout.src_images.mkdir(parents=True, exist_ok=True)
    h, w = image_size
    for position, src_id in enumerate(src_ids):
        folder = layout.images / src_id
        folder.mkdir(parents=True, exist_ok=True)
        names = [name for d in distortions for name in variant_names(src_id, d)]
        src_path = layout.src_images / f'{src_id}{layout.src_ext}'
        if zero_byte:
            for path in [src_path] + [folder / name for name in names]:
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644))
            continue
        rng = np.random.default_rng([seed, 13, position])
        base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cv2.imencode('.jpg', base)[1].tofile(str(src_path))
        for name in names:
            noise = rng.integers(-40, 41, (h, w, 3))
            cv2.imencode('.png', np.clip(base + noise, 0, 255).astype(np.uint8))[1].tofile(str(folder / name))


def _labels(task: str, position: int, distortions: Sequence[str], seed: int) -> List[Tuple[float, float]]:
    """(consistency, accuracy) of the variants of one source, in ``variant_names`` order: a source
    quality minus a distortion sensitivity times the severity (the levels weighted by region),
    plus noise; clipped to [0, 1] and rounded to 6 decimals so the CSV text round-trips."""
    rng = np.random.default_rng([seed, _TASK_CODE[task], position])
    quality = rng.uniform(0.85, 1.0)
    sensitivity = np.repeat(rng.uniform(0.05, 0.2, len(distortions)), len(VARIANTS))
    severity = np.tile(_SEVERITY, len(distortions))
    consistency = quality - sensitivity * severity + rng.normal(0, 0.03, severity.size)
    accuracy = 0.9 * consistency + rng.normal(0, 0.05, severity.size)
    return [tuple(row) for row in np.clip(np.stack([consistency, accuracy], 1), 0.0, 1.0).round(6).tolist()]


def _write_labels(layout: TaskLayout, src_ids: List[str], distortions: Sequence[str],
                  seed: int) -> Dict[str, Tuple[float, float]]:
    layout.labels.mkdir(parents=True, exist_ok=True)
    written: Dict[str, Tuple[float, float]] = {}
    for position, src_id in enumerate(src_ids):
        names = [name for d in distortions for name in variant_names(src_id, d)]
        labels = _labels(layout.task, position, distortions, seed)
        written.update(zip(names, labels))
        if layout.task == 'cls':
            rng = np.random.default_rng([seed, 17, position])
            spread = rng.uniform(0.0, 0.3, (len(names), 2)).round(6)
            header = CLS_COLUMNS + ('mean_consistency', 'std_consistency', 'mean_accuracy', 'std_accuracy')
            _write_csv(layout.labels / f'{src_id}{CLS_LABEL_SUFFIX}', header,
                       [(f'{src_id}/{n}', c, a, c, s_c, a, s_a)
                        for n, (c, a), (s_c, s_a) in zip(names, labels, spread)])
            continue
        rows = {kind: [(n, lab[i]) for n, lab in zip(names, labels)]
                for i, kind in enumerate(('consistency', 'accuracy'))}
        rows['consistency'].reverse()  # the loader joins by filename, not by position
        for kind, suffix in DET_LABEL_SUFFIXES.items():
            _write_csv(layout.labels / f'{src_id}{suffix}', DET_COLUMNS, rows[kind])
    return written


def _write_splits(root: Path, task: str, splits: Dict[str, List[str]], categories: Dict[str, str],
                  seed: int) -> Dict[str, Path]:
    rng = np.random.default_rng([seed, 19])
    paths = {split: official_split_path(root, task, split) for split in splits}
    for split, src_ids in splits.items():
        path = paths[split]
        path.parent.mkdir(parents=True, exist_ok=True)
        if task == 'cls':
            _write_csv(path, ('Image Name', 'Category', 'Quality Score'),
                       [(f'{s}.JPEG', categories[s], round(rng.uniform(0.7, 0.9), 8)) for s in src_ids])
        else:
            _write_csv(path, ('Image Index',), [(int(s),) for s in src_ids])
    return paths


def _write_coco(path: Path, src_ids: List[str], image_size: Tuple[int, int]) -> None:
    """A small valid COCO instances file: one or two boxes with polygons per image."""
    h, w = image_size
    images, annotations = [], []
    for position, src_id in enumerate(src_ids):
        images.append(dict(id=int(src_id), file_name=f'{src_id}.jpg', height=h, width=w))
        for k in range(1 + position % 2):
            x, y, bw, bh = 2.0 + 4 * k, 3.0 + 2 * k, w / 3, h / 3
            annotations.append(dict(
                id=len(annotations) + 1, image_id=int(src_id),
                category_id=COCO_CATEGORIES[(position + k) % len(COCO_CATEGORIES)]['id'],
                bbox=[x, y, bw, bh], area=bw * bh, iscrowd=0,
                segmentation=[[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]))
    path.parent.mkdir(parents=True, exist_ok=True)
    coco = dict(images=images, annotations=annotations, categories=list(COCO_CATEGORIES))
    path.write_text(json.dumps(coco))


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    with open(path, 'w', newline='') as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
