"""PSNR and SSIM beside the trained model: HVS full-reference scores on the same val split.

:func:`fr_scores` scores one distorted image against its pristine source (spec §7: the source
image is the reference) with the scorers of :mod:`miqa.hvs` (``build_scorer('PSNR')``, the one
place PSNR/SSIM are defined); :class:`HVSReferenceHook` scores every val image after training,
correlates the scores with the val labels exactly like the model's metric (``correlations``,
linear fit) and prints one table::

    | method              | SRCC   | PLCC   | KRCC   | RMSE   |
    | RA-MIQA (best val)  | ...
    | PSNR                | ...
    | SSIM                | ...

written also as ``hvs_reference.md`` / ``.json`` in the work dir. Per-image scores are cached
in ``<work_dir>/hvs_scores.json`` (keyed by image path, size and mtime), so later runs only
correlate. ``metrics`` may name any full-reference scorer of :mod:`miqa.hvs` (``'VSI'``, …).
"""
import functools
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from miqa.datasets.transforms import read_rgb
from miqa.evaluation import correlations
from miqa.hvs import HVSScorer, build_scorer
from miqa.registry import HOOKS, SCORERS
from miqa.utils.io import atomic_write_text

from .hooks import strict_options

#: The full-reference scores the hook adds by default (higher = better quality).
FR_METRICS = ('PSNR', 'SSIM')
COLUMNS = ('SRCC', 'PLCC', 'KRCC', 'RMSE')


@functools.cache
def _scorer(name: str) -> HVSScorer:
    return build_scorer(name)


def fr_scores(img: np.ndarray, ref: np.ndarray, metrics: Sequence[str] = FR_METRICS) -> Dict[str, float]:
    """Full-reference scores of ``img`` against ``ref`` (uint8 RGB HxWx3) with the registered scorers
    ``metrics`` (``miqa.hvs``; PSNR capped at 100 dB for identical images). ``ref`` is resized
    (``INTER_AREA``) to ``img``'s size if needed."""
    if ref.shape[:2] != img.shape[:2]:
        ref = cv2.resize(ref, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float().div_(255.0)

    x, y = tensor(img), tensor(ref)
    return {name: float(_scorer(name).score(x, y)[0]) for name in metrics}


def psnr_ssim(img: np.ndarray, ref: np.ndarray) -> Dict[str, float]:
    """PSNR (dB) and SSIM of ``img`` against ``ref``: :func:`fr_scores` with ``miqa.hvs``'s
    ``PSNR`` and ``SSIM`` scorers (piq; SSIM: Gaussian 11x11, sigma 1.5, downsampling of large
    images as in Wang et al.'s reference code)."""
    return fr_scores(img, ref, ('PSNR', 'SSIM'))


def _file_key(path: str) -> Optional[str]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f'{path}|{st.st_size}|{st.st_mtime_ns}'


def score_pairs(pairs: Iterable[Tuple[str, str]], cache_file: Optional[str] = None,
                metrics: Sequence[str] = FR_METRICS) -> List[Optional[Dict]]:
    """:func:`fr_scores` of each ``(img_path, ref_path)`` (``None`` when unreadable), reusing and
    updating ``cache_file`` (JSON ``{key: {metric: score}}``; key = path, size, mtime of both;
    only the metrics a cached entry lacks are computed)."""
    cache: Dict[str, Dict[str, float]] = {}
    if cache_file and Path(cache_file).is_file():
        try:
            cache = json.loads(Path(cache_file).read_text())
        except (OSError, ValueError):
            cache = {}
    refs: Dict[str, np.ndarray] = {}
    out, new = [], 0
    for img_path, ref_path in pairs:
        ki, kr = _file_key(img_path), _file_key(ref_path)
        key = f'{ki}<{kr}' if ki and kr else None
        if key is None:
            out.append(None)
            continue
        lacking = [m for m in metrics if m not in cache.get(key, {})]
        if lacking:
            if ref_path not in refs:
                refs = {ref_path: read_rgb(ref_path)}  # val samples come grouped by source
            cache[key] = {**cache.get(key, {}), **fr_scores(read_rgb(img_path), refs[ref_path], lacking)}
            new += 1
        out.append({m: cache[key][m] for m in metrics})
    if cache_file and new:
        atomic_write_text(cache_file, json.dumps(cache))
    return out


def _fmt(value: Any) -> str:
    return 'n/a' if value is None else f'{value:.4f}'


def reference_table(rows: Mapping[str, Mapping[str, Any]], n: int, label: str) -> str:
    """Markdown table of ``rows`` (name -> metrics)."""
    lines = [f'val: {n} images, labels: {label}; PLCC/RMSE after a linear fit',
             '', '| method | ' + ' | '.join(COLUMNS) + ' |', '|---|' + '---|' * len(COLUMNS)]
    for name, metrics in rows.items():
        lines.append(f'| {name} | ' + ' | '.join(_fmt(metrics.get(c)) for c in COLUMNS) + ' |')
    return '\n'.join(lines)


@HOOKS.register_module()
@strict_options()
class HVSReferenceHook(Hook):
    """After training, print the model's val SRCC/PLCC beside PSNR and SSIM on the same split.

    Args:
        fit: mapping before PLCC/RMSE (as the val metric, default ``'linear'``).
        metrics: full-reference scorers of :mod:`miqa.hvs` to add (default :data:`FR_METRICS`).
        cache: keep per-image scores in ``<work_dir>/hvs_scores.json``.
        out_name: stem of the ``.md``/``.json`` written into the work dir.
    """

    priority = 'LOWEST'

    def __init__(self, fit: str = 'linear', metrics: Sequence[str] = FR_METRICS, cache: bool = True,
                 out_name: str = 'hvs_reference') -> None:
        for name in metrics:
            if not SCORERS.get(name).full_reference:  # an unknown name: KeyError with did-you-mean
                raise ValueError(f'HVSReferenceHook: {name} is not a full-reference scorer')
        self.fit, self.metrics, self.cache, self.out_name = fit, tuple(metrics), cache, out_name
        self.best: Optional[Dict[str, Any]] = None
        self.last: Optional[Dict[str, Any]] = None

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if not metrics:
            return
        srcc = next((v for k, v in metrics.items() if k.split('/')[-1] == 'SRCC'), None)
        if srcc is None:
            return
        plain = {c: next((v for k, v in metrics.items() if k.split('/')[-1] == c), None) for c in COLUMNS}
        plain.update(epoch=runner.epoch, iter=runner.iter)
        self.last = plain
        if self.best is None or srcc > self.best['SRCC']:
            self.best = plain

    def after_train(self, runner) -> None:
        if not is_main_process():
            return
        dataset = runner.val_dataloader.dataset
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        cache_file = os.path.join(runner.work_dir, 'hvs_scores.json') if self.cache else None
        scores = score_pairs(((d['img_path'], d['ref_path']) for d in infos), cache_file, self.metrics)
        keep = [i for i, s in enumerate(scores) if s is not None]
        labels = np.array([infos[i]['gt_score'] for i in keep], dtype=np.float64)
        method = runner.cfg.get('method', type(runner.model).__name__)
        rows: Dict[str, Dict[str, Any]] = {}
        if self.best is not None:
            rows[f'{method} (best val, iter {self.best["iter"]})'] = self.best
        if self.last is not None and self.last is not self.best:
            rows[f'{method} (last val)'] = self.last
        for name in self.metrics:
            values = np.array([scores[i][name] for i in keep], dtype=np.float64)
            rows[name] = correlations(values, labels, fit=self.fit) if len(keep) > 2 else {}
        label = getattr(dataset, 'label_type', 'gt_score')
        table = reference_table(rows, len(keep), label)
        print_log('\n' + table, logger='current')
        atomic_write_text(os.path.join(runner.work_dir, f'{self.out_name}.md'), table + '\n')
        plain_rows = {k: {c: v[c] for c in (*COLUMNS, 'epoch', 'iter') if c in v} for k, v in rows.items()}
        summary = dict(num_images=len(keep), label_type=label, fit=self.fit, rows=plain_rows)
        atomic_write_text(os.path.join(runner.work_dir, f'{self.out_name}.json'),
                          json.dumps(summary, indent=1))
