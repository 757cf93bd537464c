"""Score every image of an MIQD split with HVS scorers, resumably (``tools/benchmark_hvs.py``).

Per-image scores go to an append-only cache, one CSV per metric (``<cache_dir>/<METRIC>.csv``,
rows ``key,score``; the key holds the relative image path with size and mtime of the image and
of its reference, so a changed file is scored again). Every batch is appended and flushed, so
an interrupted run of a 1.25 M-image split loses at most one batch; a torn last line is ignored
on reading. Images are decoded in DataLoader workers; the reference of a distorted image is its
source image (spec §7), resized (``INTER_AREA``) to the distorted image's size when they differ,
and both are warped to ``size x size`` when a size is given. Consecutive images of the same size
(MIQD lists the 250 variants of a source together) are batched.
"""
import csv
import logging
import math
import os
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmengine.logging import print_log
from torch.utils.data import DataLoader, Dataset

from miqa.datasets.transforms import read_rgb

from .base import HVSScorer


def default_cache_dir(data_root: str) -> str:
    """``$MIQA_HOME/cache/scores/<database>-<digest of its absolute path>``: the per-image score
    cache shared by ``tools/benchmark_hvs.py`` and the reference hook of a training run, so a
    database's images are scored once per metric (keys hold each file's size and mtime)."""
    import hashlib

    from miqa.utils.paths import miqa_home

    root = os.path.abspath(data_root)
    digest = hashlib.sha1(root.encode()).hexdigest()[:12]
    return str(miqa_home() / 'cache' / 'scores' / f'{os.path.basename(root.rstrip(os.sep))}-{digest}')


def file_key(path: str, root: Optional[str] = None) -> Optional[str]:
    """``relative path|size|mtime_ns`` of a file, ``None`` when it cannot be stat-ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    rel = os.path.relpath(path, root) if root else path
    return f'{rel}|{st.st_size}|{st.st_mtime_ns}'


class ScoreCache:
    """Append-only per-image score file of one metric (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.scores: Dict[str, float] = {}
        if self.path.is_file():
            with open(self.path, newline='') as f:
                for row in csv.reader(f):
                    if len(row) == 2:
                        try:
                            self.scores[row[0]] = float(row[1])
                        except ValueError:  # a torn last line of an interrupted run
                            continue
        self._file = None

    def __contains__(self, key: str) -> bool:
        return key in self.scores

    def __len__(self) -> int:
        return len(self.scores)

    def add(self, items: Sequence[Tuple[str, float]]) -> None:
        """Record and append ``(key, score)`` pairs, flushed to disk at once."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_file() and self.path.stat().st_size:
                with open(self.path, 'rb') as f:  # a torn last line must not swallow the next row
                    f.seek(-1, os.SEEK_END)
                    torn = f.read(1) != b'\n'
            else:
                torn = False
            self._file = open(self.path, 'a', newline='')
            if torn:
                self._file.write('\n')
        writer = csv.writer(self._file, lineterminator='\n')
        for key, score in items:
            self.scores[key] = float(score)
            writer.writerow((key, repr(float(score))))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class PairDataset(Dataset):
    """``(index, distorted, reference)`` as float CHW tensors in [0, 1]; unreadable -> ``None``."""

    def __init__(self, pairs: Sequence[Tuple[str, Optional[str]]], size: Optional[int] = None) -> None:
        self.pairs, self.size = list(pairs), size

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, path: str, shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
        img = read_rgb(path)
        target = (self.size, self.size) if self.size else shape
        if target is not None and img.shape[:2] != tuple(target):
            img = cv2.resize(img, (target[1], target[0]), interpolation=cv2.INTER_AREA)
        return img

    def __getitem__(self, index: int):
        img_path, ref_path = self.pairs[index]
        try:
            img = self._load(img_path)
            ref = self._load(ref_path, img.shape[:2]) if ref_path else None
        except OSError as err:
            return index, None, None, str(err)

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).permute(2, 0, 1).float().div_(255.0)
        return index, tensor(img), None if ref is None else tensor(ref), None


def _same_shape_batches(loader: DataLoader, batch_size: int) -> Iterator[Tuple[List[int], list, list, list]]:
    """Group the loader's single items into batches of consecutive same-shape images."""
    idx, dist, ref, bad = [], [], [], []
    for index, img, reference, error in loader:
        if img is None:
            bad.append((index, error))
            continue
        if idx and (img.shape != dist[0].shape or len(idx) == batch_size):
            yield idx, dist, ref, bad
            idx, dist, ref, bad = [], [], [], []
        idx.append(index)
        dist.append(img)
        ref.append(reference)
    if idx or bad:
        yield idx, dist, ref, bad


def score_split(scorers: Mapping[str, HVSScorer], infos: Sequence[Mapping], cache_dir: str,
                size: Optional[int] = None, batch_size: int = 16, num_workers: int = 2,
                root: Optional[str] = None, progress: bool = True) -> Dict[str, np.ndarray]:
    """Scores of every sample info (``img_path``, ``ref_path``) for each scorer; NaN for
    unreadable images. Cached scores are reused; only the missing ones are computed."""
    caches = {name: ScoreCache(os.path.join(cache_dir, f'{name}.csv')) for name in scorers}
    keys: List[Optional[str]] = []
    for info in infos:
        ki, kr = file_key(info['img_path'], root), file_key(info.get('ref_path') or '', root)
        keys.append(f'{ki}<{kr}' if ki and kr else ki)
    todo = sorted({i for name, cache in caches.items() for i, k in enumerate(keys)
                   if k is not None and k not in cache})
    unreadable: Dict[int, str] = {i: 'file not found' for i, k in enumerate(keys) if k is None}
    if todo:
        needs_ref = any(s.full_reference for s in scorers.values())
        pairs = [(infos[i]['img_path'], infos[i].get('ref_path') if needs_ref else None) for i in todo]
        if needs_ref:
            missing = [infos[i]['img_path'] for i, p in zip(todo, pairs) if not p[1]]
            if missing:
                raise ValueError(f'{len(missing)} images have no reference (ref_path), e.g. {missing[0]}; '
                                 'full-reference metrics need the source images (src_images/)')
        loader = DataLoader(PairDataset(pairs, size), batch_size=None, num_workers=num_workers,
                            persistent_workers=False)
        bar = _progress(len(todo), progress)
        for idx, dist, ref, bad in _same_shape_batches(loader, batch_size):
            for local, error in bad:
                unreadable[todo[local]] = error
            if idx:
                distorted = torch.stack(dist)
                reference = torch.stack(ref) if ref[0] is not None else None
                for name, scorer in scorers.items():
                    sel = [k for k, j in enumerate(idx) if keys[todo[j]] not in caches[name]]
                    if not sel:
                        continue
                    ref_sel = reference[sel] if scorer.full_reference else None
                    values = scorer.score(distorted[sel], ref_sel).tolist()
                    caches[name].add([(keys[todo[idx[k]]], v) for k, v in zip(sel, values)])
            if bar is not None:
                bar.update(len(idx) + len(bad))
        if bar is not None:
            bar.close()
    for cache in caches.values():
        cache.close()
    if unreadable:
        first = next(iter(unreadable.items()))
        print_log(f'HVS scoring: {len(unreadable)} unreadable images left out (NaN), e.g. '
                  f'{infos[first[0]]["img_path"]}: {first[1]}', logger='current', level=logging.WARNING)
    return {name: np.array([cache.scores.get(k, math.nan) if k is not None and i not in unreadable
                            else math.nan for i, k in enumerate(keys)])
            for name, cache in caches.items()}


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc='HVS scores', unit='img', dynamic_ncols=True)
