"""Train and test several configs, score reference metrics, and compare them with intervals.

What ``tools/benchmark_models.py`` (and the README's main job) runs. For each split (``official``
= ``<data_root>/splits/``, ``k`` = ``<data_root>/splits/seed<k>/`` from ``tools/build_miqd.py
--resplit k``, ``train-seed<k>`` from ``--resplit k --within train``) and each config:
``tools/train.py`` (``--resume auto``) then ``tools/test.py`` on
the split's val set with the LAST checkpoint (no model selection on the reported set), each in
its own process; reference scorers (``--hvs``: PSNR, SSIM, VSI, ``Lite0-MSP`` ...) through
``tools/benchmark_hvs.py``. Every run writes per-image predictions; the comparison reads them:

- per split, 95 % intervals of SRCC/PLCC/KRCC/RMSE by a bootstrap over photos
  (:func:`miqa.evaluation.bootstrap.group_bootstrap`, photo = the source's ``group`` in the
  database manifest) and the paired SRCC differences asked for (``compare``);
- over splits, mean ± sample std.

A finished run is reused only when its fingerprint (config text, options, split files) is the
same; a run made with other settings is kept under a timestamped name and redone.
"""
import csv
import hashlib
import io
import json
import os
import os.path as osp
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from miqa.database.splitting import resplit_name
from miqa.evaluation.bootstrap import BootstrapResult, Versus, group_bootstrap, interval_table
from miqa.evaluation.tables import markdown_table
from miqa.utils.io import atomic_write_text, unique_path
from miqa.vocab import METRIC_COLUMNS


def split_dir(data_root: str, split: str) -> str:
    """``'official'`` -> ``<data_root>/splits``; a seed ``k`` -> ``splits/seed<k>``; any other name
    (e.g. ``train-seed1``, ``tools/build_miqd.py --resplit 1 --within train``) -> ``splits/<name>``."""
    splits = osp.join(data_root, 'splits')
    if split == 'official':
        return splits
    return osp.join(splits, resplit_name(int(split)) if str(split).isdigit() else str(split))


def run_tool(tool: str, args: Sequence[str], log: str, dry_run: bool = False) -> None:
    """``python tools/<tool> ARGS`` in its own process, output appended to ``log``."""
    from miqa.utils.paths import tools_dir

    cmd = [sys.executable, osp.join(tools_dir(), tool), *args]
    print('$ ' + ' '.join(cmd), flush=True)
    if dry_run:
        return
    os.makedirs(osp.dirname(log), exist_ok=True)
    with open(log, 'a') as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise RuntimeError(f'{tool} failed (exit {proc.returncode}); see {log}')


def last_checkpoint(run_dir: str) -> str:
    """The checkpoint mmengine recorded as its last (``<work_dir>/last_checkpoint``)."""
    marker = osp.join(run_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        raise FileNotFoundError(f'{marker} not found: training in {run_dir} did not finish')
    return open(marker).read().strip()


def fingerprint(config: str, split_files: str, options: Sequence[str]) -> str:
    """Digest of what decides a run: the config's resolved text, the options, the split CSVs."""
    from mmengine.config import Config

    h = hashlib.sha256(Config.fromfile(config).pretty_text.encode())
    h.update(json.dumps(list(options)).encode())
    for name in sorted(os.listdir(split_files)) if osp.isdir(split_files) else []:
        path = osp.join(split_files, name)
        if osp.isfile(path) and name.endswith('.csv'):
            h.update(name.encode() + Path(path).read_bytes())
    return h.hexdigest()


def _fresh_run_dir(run_dir: str, digest: str) -> None:
    """Keep ``run_dir`` when made with ``digest``; else move it aside (never deleted) and start anew."""
    stamp = osp.join(run_dir, 'fingerprint.txt')
    if osp.isdir(run_dir) and (not osp.isfile(stamp) or open(stamp).read().strip() != digest):
        if os.listdir(run_dir):
            old = unique_path(run_dir + '_previous')
            os.replace(run_dir, old)
            print(f'{run_dir} was made with other settings: kept as {old}', flush=True)
    os.makedirs(run_dir, exist_ok=True)
    atomic_write_text(stamp, digest + '\n')


def model_run(config: str, split: str, root: str, fit: str = 'linear', options: Sequence[str] = (),
              dry_run: bool = False) -> Dict:
    """Train + test one config on one split (reusing finished steps of the same fingerprint)."""
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    stem = osp.splitext(osp.basename(config))[0]
    run_dir = osp.join(root, stem, f'split_{split}')
    sdir = split_dir(cfg.data_root, split)
    if not dry_run:
        _fresh_run_dir(run_dir, fingerprint(config, sdir, options))
    result = osp.join(run_dir, 'test.json')
    if not osp.isfile(result):
        common = ['--split-dir', sdir] + (['--cfg-options', *options] if options else [])
        if not osp.isfile(osp.join(run_dir, 'last_checkpoint')) or not _finished(run_dir, cfg):
            run_tool('train.py', [config, '--work-dir', run_dir, '--resume', 'auto', *common],
                     osp.join(run_dir, 'benchmark_train.log'), dry_run)
        if dry_run:
            return {}
        run_tool('test.py', [config, last_checkpoint(run_dir), '--work-dir', run_dir, '--fit', fit,
                             '--out', result, *common], osp.join(run_dir, 'benchmark_test.log'))
    record = json.loads(open(result).read())
    return dict(method=record['method'], split=split, kind='model', config=config,
                predictions=osp.join(run_dir, 'test_predictions.csv'),
                **{m: record['metrics'].get(m) for m in METRIC_COLUMNS})


def _finished(run_dir: str, cfg) -> bool:
    """Whether the last checkpoint is the end of training (iteration- or epoch-based)."""
    name = osp.basename(last_checkpoint(run_dir))
    end = cfg.train_cfg.get('max_iters') or cfg.train_cfg.get('max_epochs')
    return name in (f'iter_{end}.pth', f'epoch_{end}.pth')


def reference_runs(config: str, split: str, root: str, metrics: Sequence[str], fit: str = 'linear',
                   dry_run: bool = False) -> List[Dict]:
    """Reference scorers (``tools/benchmark_hvs.py``) on the split's val set; a shared cache."""
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    out_dir = osp.join(root, 'hvs', f'split_{split}')
    args = [config, '--metrics', *metrics, '--split-dir', split_dir(cfg.data_root, split), '--fit', fit,
            '--out-dir', out_dir, '--no-progress']
    run_tool('benchmark_hvs.py', args, osp.join(out_dir, 'benchmark_hvs.log'), dry_run)
    if dry_run:
        return []
    summary = json.loads(open(osp.join(out_dir, 'hvs_results.json')).read())
    return [dict(method=name, split=split, kind='reference', config=config,
                 predictions=osp.join(out_dir, f'{name}_predictions.csv'),
                 **{m: row.get(m) for m in METRIC_COLUMNS})
            for name, row in summary['rows'].items() if row.get('status') == 'ok']


def ensure_databases(configs: Sequence[str]) -> None:
    """Build (or resume) the database of every config that declares one (``database = dict(...)``)."""
    from mmengine.config import Config

    from miqa.database.ensure import ensure_database

    for config in configs:
        cfg = Config.fromfile(config)
        if cfg.get('database'):
            ensure_database(cfg.database, out=cfg.get('data_root'))


def split_intervals(runs: Sequence[Mapping], groups: Mapping[str, str], compare: Sequence[Tuple[str, Versus]],
                    fit: str = 'linear', n_resamples: int = 2000, seed: int = 0) -> BootstrapResult:
    """Bootstrap intervals over photos for the runs of one split, from their prediction CSVs
    (joined on the image path; every method must have scored the same val images)."""
    from miqa.analysis.predictions import read_predictions

    preds, labels, sources = {}, None, None
    for run in runs:
        records = {r['img_path']: r for r in read_predictions(run['predictions'])}
        if labels is None:
            order = sorted(records)
            labels = np.array([records[p]['gt_score'] for p in order])
            sources = [records[p].get('src_id') for p in order]
        elif sorted(records) != order:
            raise ValueError(f'{run["predictions"]} scores other images than {runs[0]["predictions"]}')
        preds[run['method']] = np.array([records[p]['pred_score'] for p in order])
    usable = np.isfinite(labels) & np.all([np.isfinite(v) for v in preds.values()], axis=0)
    photo = [groups.get(s, s) for s in sources]
    keep = np.flatnonzero(usable)
    compare = [(a, b) for a, b in compare if a in preds and all(x in preds for x in ([b] if isinstance(b, str)
                                                                                     else b))]
    return group_bootstrap({k: v[keep] for k, v in preds.items()}, labels[keep], [photo[i] for i in keep],
                           differences=compare, fit=None if fit == 'none' else fit,
                           n_resamples=n_resamples, seed=seed)


def summarize(runs: List[Dict]) -> Dict[str, Dict]:
    """Mean and sample std (ddof=1) of each metric per method over its splits."""
    out: Dict[str, Dict] = {}
    for method in dict.fromkeys(r['method'] for r in runs):
        rows = [r for r in runs if r['method'] == method]
        entry = dict(kind=rows[0]['kind'], n_splits=len(rows))
        for m in METRIC_COLUMNS:
            values = np.array([r[m] for r in rows if r[m] is not None], dtype=float)
            entry[m] = float(values.mean()) if len(values) else None
            entry[f'{m}_std'] = float(values.std(ddof=1)) if len(values) > 1 else None
        out[method] = entry
    return out


def summary_table(summary: Dict[str, Dict], splits: Sequence[str]) -> str:
    def cell(entry: Dict, m: str) -> str:
        if entry[m] is None:
            return 'n/a'
        return f'{entry[m]:.4f}' + (f' ± {entry[m + "_std"]:.4f}' if entry[f'{m}_std'] is not None else '')
    table = markdown_table(['Method', *METRIC_COLUMNS], [[name, *(cell(e, m) for m in METRIC_COLUMNS)]
                                                  for name, e in summary.items()])
    return f'mean ± std over {len(splits)} train/val splits ({", ".join(splits)})\n\n{table}'


def shared_database(configs: Sequence[str]) -> Tuple[str, str]:
    """``(data_root, task)`` of the configs' test sets, which must be one database and task and
    name their rows differently (``tools/test.py`` names a row by ``method``, else the file stem)."""
    from mmengine.config import Config

    cfgs = {c: Config.fromfile(c) for c in configs}
    data_roots = {cfg.data_root for cfg in cfgs.values()}
    if len(data_roots) != 1:
        raise ValueError(f'the configs point at different databases: {sorted(data_roots)}')
    tasks = {cfg.get('test_dataloader', {}).get('dataset', {}).get('task', 'cls') for cfg in cfgs.values()}
    if len(tasks) != 1:
        raise ValueError(f'the configs test different tasks: {sorted(tasks)}')
    methods: Dict[str, List[str]] = {}
    for c, cfg in cfgs.items():
        methods.setdefault(cfg.get('method') or osp.splitext(osp.basename(c))[0], []).append(c)
    same = {m: cs for m, cs in methods.items() if len(cs) > 1}
    if same:
        raise ValueError('configs with the same `method` would share one row of the tables: '
                         + '; '.join(f'{m!r}: {", ".join(cs)}' for m, cs in same.items())
                         + ". Give each its own `method = '...'`.")
    return data_roots.pop(), tasks.pop()


def run_benchmark(configs: Sequence[str], splits: Sequence[str] = ('official',), hvs: Sequence[str] = (),
                  work_dir: Optional[str] = None, fit: str = 'linear', options: Sequence[str] = (),
                  compare: Sequence[Tuple[str, Versus]] = (), n_resamples: int = 2000,
                  dry_run: bool = False) -> Dict:
    """Everything the module doc says; returns ``dict(summary, intervals, runs)`` and writes
    ``runs.csv``, ``summary.{json,md}`` and ``intervals_split_<k>.{md,json}`` to the work dir."""
    from miqa.database.ensure import source_groups

    data_root, task = shared_database(configs)
    if not dry_run:
        ensure_databases(configs)
    root = work_dir or osp.join('work_dirs', f'benchmark_{osp.basename(osp.normpath(data_root))}')
    groups = source_groups(data_root, task)  # photo groups from that task's manifest
    runs: List[Dict] = []
    intervals: Dict[str, BootstrapResult] = {}
    start = time.time()
    for split in splits:
        split_runs = reference_runs(configs[0], split, root, hvs, fit, dry_run) if hvs else []
        for config in configs:
            run = model_run(config, split, root, fit, options, dry_run)
            if run:
                split_runs.append(run)
                print(f'split {split} {run["method"]}: '
                      + ' '.join(f'{m} {run[m]:.4f}' for m in METRIC_COLUMNS), flush=True)
        if dry_run:
            continue
        runs += split_runs
        result = split_intervals(split_runs, groups, compare, fit, n_resamples)
        intervals[split] = result
        text = interval_table(result, f'split {split}')
        atomic_write_text(osp.join(root, f'intervals_split_{split}.md'), text + '\n')
        atomic_write_text(osp.join(root, f'intervals_split_{split}.json'),
                          json.dumps(_plain(result), indent=1))
        print('\n' + text + '\n', flush=True)
    if dry_run:
        return {}
    summary = summarize(runs)
    table = summary_table(summary, splits)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=['method', 'kind', 'split', 'config', *METRIC_COLUMNS],
                            lineterminator='\n', extrasaction='ignore')
    writer.writeheader()
    writer.writerows(runs)
    atomic_write_text(osp.join(root, 'runs.csv'), buf.getvalue())
    atomic_write_text(osp.join(root, 'summary.json'), json.dumps(dict(splits=list(splits), fit=fit,
                                                                      summary=summary, runs=runs), indent=1))
    atomic_write_text(osp.join(root, 'summary.md'), table + '\n')
    if len(splits) > 1:
        print(table)
    print(f'({time.time() - start:.0f} s; written: {root}/intervals_split_*.md, summary.md, runs.csv)')
    return dict(summary=summary, intervals=intervals, runs=runs)


def _plain(result: BootstrapResult) -> Dict:
    return dict(rows={n: {m: iv._asdict() for m, iv in row.items()} for n, row in result.rows.items()},
                differences={n: iv._asdict() for n, iv in result.differences.items()},
                metric=result.metric, n_groups=result.n_groups, n_images=result.n_images,
                n_resamples=result.n_resamples, confidence=result.confidence, method=result.method)
