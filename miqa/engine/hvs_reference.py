"""Reference rows beside the trained model, with intervals: what the main job prints.

After training, :class:`HVSReferenceHook` scores every val image with reference scorers of
:mod:`miqa.hvs` — full-reference HVS metrics (PSNR, SSIM, VSI: the source image is the reference,
spec §7) and a zero-training row (``Lite0-MSP``: a classifier that is not a labeller, scoring its
own confidence) — through the one resumable scoring path of the HVS benchmark
(:func:`miqa.hvs.benchmark.score_split`, per-image CSV cache shared with ``tools/benchmark_hvs.py``:
:func:`miqa.hvs.benchmark.default_cache_dir`),
correlates them with the val labels exactly like the model's metric, and prints one table with
95 % bootstrap intervals over val *photos* (:func:`miqa.evaluation.bootstrap.group_bootstrap`; a
photo is the source's group in the database manifest) and the SRCC differences::

    | method                        | SRCC                     | PLCC | KRCC | RMSE |
    | RA-MIQA (Lite0) (iter 600)    | 0.70 [0.64, 0.75]        | ...
    | PSNR                          | ...
    SRCC difference RA-MIQA (Lite0) - max(PSNR, SSIM, VSI): 0.25 [0.17, 0.33]  (interval above 0)

The model row uses the predictions of the best validation (the only one in the demo configs,
at the end of training). Written to ``<work_dir>/<out_name>.md`` / ``.json`` and the per-image
scores of every row to ``<out_name>_predictions.csv``.
"""
import csv
import io
import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from miqa.evaluation.bootstrap import group_bootstrap, interval_table
from miqa.registry import HOOKS, SCORERS
from miqa.utils.io import atomic_write_text

from .hooks import strict_options

#: The reference rows the hook adds by default (quality-oriented: higher = better).
REFERENCES = ('PSNR', 'SSIM', 'VSI', 'Lite0-MSP')
#: The human-vision metrics the model is compared with as a set (the best of them per resample).
HVS_SET = ('PSNR', 'SSIM', 'VSI')
COLUMNS = ('SRCC', 'PLCC', 'KRCC', 'RMSE')


@HOOKS.register_module()
@strict_options()  # a typo in an option fails at start-up with a did-you-mean
class HVSReferenceHook(Hook):
    """After training, the model's val metrics beside reference scorers, with intervals.

    Args:
        fit: mapping before PLCC/RMSE (as the val metric, default ``'linear'``).
        metrics: reference scorers of :mod:`miqa.hvs` (default :data:`REFERENCES`).
        hvs_set: the references compared with the model as a set (the best of them).
        cache_dir: per-image score cache (default: the database's shared cache,
            :func:`miqa.hvs.benchmark.default_cache_dir`; a rerun only correlates).
        n_resamples: bootstrap resamples (0: no intervals, plain values).
        out_name: stem of the files written into the work dir.
        min_photos: below this many val photos the table is printed with a warning that it is
            not evidence (60: the main job's target; a machine without the Debian photo
            packages has far fewer).
    """

    priority = 'LOWEST'

    def __init__(self, fit: str = 'linear', metrics: Sequence[str] = REFERENCES,
                 hvs_set: Sequence[str] = HVS_SET, cache_dir: Optional[str] = None, n_resamples: int = 2000,
                 out_name: str = 'reference_table', min_photos: int = 60) -> None:
        for name in metrics:
            SCORERS.get(name)  # an unknown name: KeyError with did-you-mean, at start-up
        self.fit, self.metrics, self.cache_dir = fit, tuple(metrics), cache_dir
        self.hvs_set = tuple(m for m in hvs_set if m in self.metrics)
        self.n_resamples, self.out_name, self.min_photos = int(n_resamples), out_name, int(min_photos)
        self.best: Optional[Dict[str, Any]] = None

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        srcc = next((v for k, v in (metrics or {}).items() if k.split('/')[-1] == 'SRCC'), None)
        if srcc is None or (self.best is not None and srcc <= self.best['SRCC']):
            return
        evaluator = runner.val_loop.evaluator.metrics[0]
        records = list(getattr(evaluator, 'last_predictions', []))
        self.best = dict(SRCC=srcc, iter=runner.iter, epoch=runner.epoch,
                         predictions={r['sample_idx']: r['pred_score'] for r in records})

    def after_train(self, runner) -> None:
        if not is_main_process():
            return
        from miqa.database.ensure import source_groups
        from miqa.hvs import build_scorer
        from miqa.hvs.benchmark import default_cache_dir, score_split

        dataset = runner.val_dataloader.dataset
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        cache_dir = self.cache_dir or default_cache_dir(dataset.data_root)
        scorers = {name: build_scorer(name).eval() for name in self.metrics}
        raw = score_split(scorers, infos, cache_dir, root=dataset.data_root, progress=True)
        columns: Dict[str, np.ndarray] = {}
        if self.best is not None:
            method = runner.cfg.get('method', type(runner.model).__name__)
            columns[f'{method} (iter {self.best["iter"]})'] = np.array(
                [self.best['predictions'].get(i, np.nan) for i in range(len(infos))], dtype=np.float64)
        for name, scorer in scorers.items():
            columns[name] = -raw[name] if scorer.lower_is_better else raw[name]
        labels = np.array([info['gt_score'] for info in infos], dtype=np.float64)
        usable = np.isfinite(labels) & np.all([np.isfinite(v) for v in columns.values()], axis=0)
        groups = source_groups(dataset.data_root, getattr(dataset, 'task', 'cls'))
        photos = [groups.get(info['src_id'], info['src_id']) for info in infos]
        keep = np.flatnonzero(usable)
        model = next(iter(columns)) if self.best is not None else None
        compare = [(model, self.hvs_set)] if model and self.hvs_set else []
        compare += [(model, name) for name in self.metrics if model and name not in self.hvs_set]
        result = group_bootstrap({k: v[keep] for k, v in columns.items()}, labels[keep],
                                 [photos[i] for i in keep], differences=compare, fit=self.fit,
                                 n_resamples=max(self.n_resamples, 1))
        label = getattr(dataset, 'label_type', 'gt_score')
        title = (f'val: {len(keep)} images of {result.n_groups} photos, labels: {label}; '
                 f'PLCC/RMSE after a {self.fit or "no"} fit; {len(infos) - len(keep)} unusable left out')
        table = interval_table(result, title)
        if result.n_groups < self.min_photos:
            table += (f'\n\n*** ONLY {result.n_groups} VAL PHOTOS (fewer than {self.min_photos}): the '
                      'intervals are wide and this table is not evidence either way. Install the photo '
                      'packages (`make photos`) and rebuild the database for the full set. ***')
        print_log('\n' + table, logger='current',
                  level=logging.WARNING if result.n_groups < self.min_photos else logging.INFO)
        atomic_write_text(os.path.join(runner.work_dir, f'{self.out_name}.md'), table + '\n')
        summary = dict(label_type=label, fit=self.fit, num_images=int(len(keep)), num_photos=result.n_groups,
                       rows={n: {m: iv._asdict() for m, iv in row.items()} for n, row in result.rows.items()},
                       differences={n: iv._asdict() for n, iv in result.differences.items()},
                       n_resamples=result.n_resamples, interval_method=result.method)
        atomic_write_text(os.path.join(runner.work_dir, f'{self.out_name}.json'),
                          json.dumps(summary, indent=1))
        atomic_write_text(os.path.join(runner.work_dir, f'{self.out_name}_predictions.csv'),
                          _predictions_csv(infos, labels, photos, columns))


def _predictions_csv(infos: List[dict], labels: np.ndarray, photos: List[str],
                     columns: Dict[str, np.ndarray]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(['img_path', 'src_id', 'photo', 'gt_score', *columns])
    for i, info in enumerate(infos):
        writer.writerow([info['img_path'], info['src_id'], photos[i], repr(float(labels[i])),
                         *(repr(float(v[i])) for v in columns.values())])
    return buf.getvalue()
