"""Train/val splits of MIQD-2.5M, always by source image (spec §2).

Official split files (published with the authors' code, shipped with the database) live in
``<data_root>/splits/``: ``miqa_cls_{train,val}.csv`` (``Image Name,Category,Quality Score``;
the score selected the source images and is not a label) and ``miqa_det_{train,val}.csv``
(``Image Index``, a COCO id, zero-padded to 12 digits in file names). Instance segmentation
uses the det files. Without a split file, :func:`make_split` draws a deterministic one.
"""
import csv
import hashlib
import os
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional

import numpy as np

from miqa.utils.types import PathLike
from miqa.vocab import SPLITS, split_file_name, split_task  # noqa: F401  (re-exported)

CLS_SPLIT_COLUMNS = ('Image Name', 'Category')
DET_SPLIT_COLUMN = 'Image Index'


class SplitFile(NamedTuple):
    """Source ids of one split file, in file order; ``categories`` is empty for det files."""
    task: str                   # 'cls' or 'det': the layout of the file
    src_ids: List[str]
    categories: Dict[str, str]  # src_id -> ImageNet class name (cls files)


def official_split_path(data_root: PathLike, task: str, split: str) -> Path:
    """``<data_root>/splits/miqa_<cls|det>_<train|val>.csv``."""
    return Path(data_root).expanduser() / 'splits' / split_file_name(task, split)


def read_split_file(path: PathLike, task: Optional[str] = None) -> SplitFile:
    """Read an official split CSV; with ``task`` given, its layout must be that task's."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f'split file not found: {path}. The official files (miqa_cls_train.csv, miqa_cls_val.csv, '
            'miqa_det_train.csv, miqa_det_val.csv) come with the MIQD-2.5M download and go in '
            '<data_root>/splits/ (see data/README.md); split_file=None makes an own split by source image.')
    with open(path, newline='', encoding='utf-8-sig') as file:
        reader = csv.reader(file)
        header = [name.strip() for name in next(reader, [])]
        if CLS_SPLIT_COLUMNS[0] in header:
            layout = 'cls'
            name_col = header.index(CLS_SPLIT_COLUMNS[0])
            cat_col = header.index(CLS_SPLIT_COLUMNS[1]) if CLS_SPLIT_COLUMNS[1] in header else None
        elif DET_SPLIT_COLUMN in header:
            layout, name_col, cat_col = 'det', header.index(DET_SPLIT_COLUMN), None
        else:
            raise ValueError(f'{path}: unknown split file layout (columns: {",".join(header) or "none"}); '
                             f'expected "Image Name,Category,Quality Score" (cls) or "Image Index" (det/ins)')
        if task is not None and split_task(task) != layout:
            raise ValueError(f'{path} is a {layout} split file ({header[name_col]!r} column) but the task is '
                             f'{task!r}: use miqa_{split_task(task)}_<train|val>.csv')
        src_ids: List[str] = []
        categories: Dict[str, str] = {}
        for row in reader:
            if not row:
                continue
            try:
                value = row[name_col].strip()
                if layout == 'cls':
                    src_id = os.path.splitext(value)[0]
                else:  # a COCO id (zero-padded to 12 digits), else the builder's own source id
                    src_id = f'{int(value):012d}' if value.isdigit() else value
                if not src_id:
                    raise ValueError
            except (IndexError, ValueError):
                raise ValueError(f'{path}, line {reader.line_num}: no source in {row!r}') from None
            src_ids.append(src_id)
            if cat_col is not None and cat_col < len(row):
                categories[src_id] = row[cat_col].strip()
    return SplitFile(layout, list(dict.fromkeys(src_ids)), categories)


def official_categories(data_root: PathLike, task: str) -> Dict[str, str]:
    """src_id -> category from whichever official split files of ``task`` exist (cls only)."""
    categories: Dict[str, str] = {}
    for split in SPLITS:
        path = official_split_path(data_root, task, split)
        if path.is_file():
            categories.update(read_split_file(path, task).categories)
    return categories


def make_split(src_ids: Iterable[str], val_ratio: float = 0.2, seed: int = 0,
               categories: Optional[Mapping[str, str]] = None) -> Dict[str, List[str]]:
    """Deterministic train/val split by source image.

    Sources are ordered by category (``''`` when unknown), then by a seeded hash of their id,
    and the one at each crossing of ``k + 1/2`` by the running sum of ``val_ratio`` goes to
    val (systematic sampling). So val holds ``round(N * val_ratio)`` sources, each category
    its share of them (floor or ceil), the result does not depend on the input order, and
    no source is on both sides.

    Returns:
        ``dict(train=[...], val=[...])``, each sorted.
    """
    if not 0.0 < val_ratio < 1.0:
        raise ValueError(f'val_ratio must be in (0, 1), got {val_ratio}')
    categories = categories or {}

    def rank(src_id: str) -> tuple:
        digest = hashlib.blake2b(f'{seed}:{src_id}'.encode(), digest_size=8).digest()
        return categories.get(src_id, ''), digest, src_id

    ordered = sorted(set(src_ids), key=rank)
    position = np.arange(len(ordered))
    is_val = np.floor((position + 1) * val_ratio + 0.5) > np.floor(position * val_ratio + 0.5)
    return dict(train=sorted(s for s, v in zip(ordered, is_val) if not v),
                val=sorted(s for s, v in zip(ordered, is_val) if v))
