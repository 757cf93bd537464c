"""Score every image of an MIQD split with HVS scorers, resumably, and correlate the scores with
the machine-quality labels (:func:`benchmark_hvs`; ``tools/benchmark_hvs.py`` is its command line).

Per-image scores go to an append-only cache, one CSV per metric (``<cache_dir>/<METRIC>.csv``,
rows ``key,score``; the key holds the relative image path with size and mtime of the image and
of its reference, so a changed file is scored again). Every batch is appended and flushed, so
an interrupted run of a 1.25 M-image split loses at most one batch; a torn last line is ignored
on reading. Images are decoded in DataLoader workers; the reference of a distorted image is its
source image (spec §7), resized (``INTER_AREA``) to the distorted image's size when they differ,
and both are warped to ``size x size`` when a size is given. Consecutive images of the same size
(MIQD lists the 250 variants of a source together) are batched.

:func:`benchmark_hvs` takes the split, task and label type from a config's test dataset (so HVS
rows and the model rows of ``tools/test.py CONFIG CKPT`` describe the same images), scores it with
:func:`score_split` and evaluates with the metric code and fit of ``tools/test.py``
(:class:`~miqa.evaluation.IQAMetric`: overall, per distortion type, per region type) on
quality-oriented scores: distances (LPIPS, DISTS) are negated. A metric whose weight files are
missing is reported as skipped, with the file to obtain, and the others still run. It writes
``hvs_results.{json,csv,md}`` and ``<METRIC>_predictions.csv`` (same columns as
``tools/test.py``'s) to the out dir (default ``work_dirs/hvs_<database>_<task>_<label>_<split>``).
"""
import csv
import io
import json
import logging
import math
import os
import os.path as osp
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmengine.logging import print_log
from torch.utils.data import DataLoader, Dataset

from miqa.utils.image import read_rgb
from miqa.utils.io import write_result_text
from miqa.vocab import METRIC_COLUMNS as COLUMNS

from .base import HVSScorer

#: the paper's HVS rows (spec §7), in its order
PAPER_METRICS = ('PSNR', 'SSIM', 'VSI', 'LPIPS', 'DISTS', 'HyperIQA', 'MANIQA')
RECORD_FIELDS = ('distortion', 'region', 'fg_level', 'bg_level', 'src_id', 'img_path')


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


# ---------------------------------------------------------------- the benchmark: split, scores, rows
def load_split(config: str, task: Optional[str] = None, label: Optional[str] = None,
               split: Optional[str] = None, split_dir: Optional[str] = None,
               data_root: Optional[str] = None, fit: Optional[str] = None) -> Dict[str, Any]:
    """The config's test dataset with the overrides: its sample infos and description."""
    from mmengine.config import Config

    from miqa.registry import DATASETS
    from miqa.utils.config import apply_overrides, set_split_dir
    from miqa.utils.paths import resolve_config

    cfg = Config.fromfile(resolve_config(config))
    apply_overrides(cfg, data_root=data_root)
    dataset_cfg = cfg.test_dataloader.dataset
    for key, value in (('task', task), ('label_type', label), ('split', split)):
        if value:
            dataset_cfg[key] = value
    if split_dir:
        set_split_dir(cfg, split_dir)
    dataset_cfg = dict(dataset_cfg, pipeline=[], serialize_data=False)
    dataset = DATASETS.build(dataset_cfg)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    fit = fit or cfg.get('test_evaluator', {}).get('fit', 'linear')
    return dict(infos=infos, task=dataset.task, label=dataset.label_type, split=dataset.split,
                data_root=dataset.data_root, split_file=str(dataset_cfg.get('split_file')),
                fit=None if fit == 'none' else fit)


def build_available(names: Sequence[str], device: str) -> Dict[str, Any]:
    """Build each scorer on ``device`` (``'auto'``: :func:`~miqa.utils.device.resolve_device`); a
    missing weight file makes it ``skipped`` with the reason."""
    from miqa.hvs import build_scorer
    from miqa.utils.device import resolve_device
    scorers, skipped = {}, {}
    for name in names:
        try:
            scorers[name] = build_scorer(name).to(resolve_device(device)).eval()
        except FileNotFoundError as err:
            skipped[name] = str(err)
    return dict(scorers=scorers, skipped=skipped)


def evaluate(scores, scorer: HVSScorer, infos: Sequence[Mapping], fit: Optional[str]) -> Dict[str, Any]:
    """``IQAMetric`` (as ``tools/test.py``) on quality-oriented scores; and the per-image records."""
    from miqa.evaluation import IQAMetric
    quality = scorer.quality(torch.as_tensor(scores)).numpy()
    metric = IQAMetric(fit=fit, breakdown=True)
    records = []
    for i, (info, q) in enumerate(zip(infos, quality)):
        record = dict(pred_score=float(q), gt_score=float(info['gt_score']), sample_idx=i,
                      **{k: info[k] for k in RECORD_FIELDS if info.get(k) is not None})
        records.append(record)
    metric.process(None, records)
    metrics = metric.compute_metrics(metric.results)
    for record, raw in zip(metric.last_predictions, scores):
        record['raw_score'] = float(raw)
    return dict(metrics=metrics, predictions=metric.last_predictions)


def _csv_text(rows: List[Dict[str, Any]], fields: List[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction='ignore', lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def benchmark_hvs(config: str, metrics: Sequence[str] = PAPER_METRICS, *, task: Optional[str] = None,
                  label: Optional[str] = None, split: Optional[str] = None, split_dir: Optional[str] = None,
                  data_root: Optional[str] = None, size: Optional[int] = None, batch_size: int = 16,
                  workers: int = 2, fit: Optional[str] = None, device: str = 'cpu', paper: bool = False,
                  out_dir: Optional[str] = None, cache_dir: Optional[str] = None,
                  progress: bool = True) -> Dict[str, Any]:
    """Score the config's test split with ``metrics`` and write the rows (module docstring).

    ``task``, ``label``, ``split``, ``split_dir``, ``data_root`` override the config's test
    dataset; ``size`` warps images and references to ``size x size``; ``fit`` is the mapping
    before PLCC/RMSE (default: the config's, linear; ``'none'``); ``paper`` adds the paper's row
    beside each result; ``cache_dir`` defaults to ``$MIQA_HOME/cache/scores/<db>``. Returns the
    summary written to ``hvs_results.json``."""
    from miqa.evaluation.iqa_metric import breakdown_table
    from miqa.evaluation.reference import paper_row
    from miqa.evaluation.tables import markdown_table, metric_cells
    from miqa.hvs import SCORERS
    from miqa.utils import register_all_modules

    register_all_modules()
    metrics = list(metrics)
    for name in metrics:
        SCORERS.get(name)  # an unknown name raises KeyError with did-you-mean, before any work
    data = load_split(config, task=task, label=label, split=split, split_dir=split_dir,
                      data_root=data_root, fit=fit)
    db = osp.basename(osp.normpath(data['data_root']))
    out_dir = out_dir or osp.join('work_dirs', f'hvs_{db}_{data["task"]}_{data["label"]}_{data["split"]}')
    built = build_available(metrics, device)
    start = time.time()
    scores = score_split(built['scorers'], data['infos'], cache_dir or default_cache_dir(data['data_root']),
                         size=size, batch_size=batch_size, num_workers=workers, root=data['data_root'],
                         progress=progress)
    seconds = time.time() - start

    rows: Dict[str, Dict[str, Any]] = {}
    sections = []
    for name in metrics:
        if name in built['skipped']:
            rows[name] = dict(status='skipped', reason=built['skipped'][name])
            continue
        result = evaluate(scores[name], built['scorers'][name], data['infos'], data['fit'])
        values = result['metrics']
        rows[name] = dict(status='ok', lower_is_better=built['scorers'][name].lower_is_better,
                          **{c: values.get(c) for c in COLUMNS}, metrics=values)
        fields = ['sample_idx', 'img_path', 'pred_score', 'raw_score', 'gt_score', *RECORD_FIELDS[:-1]]
        write_result_text(osp.join(out_dir, f'{name}_predictions.csv'),
                          _csv_text(result['predictions'], list(dict.fromkeys(fields))))
        sections.append(f'### {name}\n\n{breakdown_table(values)}')

    head = (f'HVS metrics on {db} {data["task"]} ({data["label"]} labels, {data["split"]} split, '
            f'{len(data["infos"])} images); SRCC/KRCC: ranks; PLCC/RMSE after a {data["fit"] or "no"} fit; '
            'distances negated')
    cells = []
    for name, row in rows.items():
        cells.append([name, *metric_cells(row if row['status'] == 'ok' else None, COLUMNS)])
        reference = paper_row(name, data['task'], data['label']) if paper and row['status'] == 'ok' else None
        if reference:
            cells.append([f'{name} (paper, MIQD-2.5M)', *metric_cells(reference, COLUMNS)])
    table = markdown_table(['Method', *COLUMNS], cells).splitlines()
    skipped = [f'- {name} skipped: {row["reason"]}' for name, row in rows.items() if row['status'] != 'ok']
    text = '\n'.join([head, '', *table, '', *skipped, '', *sections]) + '\n'
    write_result_text(osp.join(out_dir, 'hvs_results.md'), text)
    summary = dict(database=data['data_root'], task=data['task'], label_type=data['label'],
                   split=data['split'], split_file=data['split_file'], fit=data['fit'],
                   num_images=len(data['infos']), size=size, rows=rows)
    write_result_text(osp.join(out_dir, 'hvs_results.json'), json.dumps(summary, indent=1))
    flat = [dict(method=n, status=r['status'], **{c: r.get(c) for c in COLUMNS}) for n, r in rows.items()]
    write_result_text(osp.join(out_dir, 'hvs_results.csv'), _csv_text(flat, ['method', 'status', *COLUMNS]))
    print('\n'.join([head, '', *table, '', *skipped]))
    print(f'\nscored in {seconds:.1f} s; written: {out_dir}/hvs_results.md, .json, .csv, '
          '<METRIC>_predictions.csv')
    return summary
