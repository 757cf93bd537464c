"""Train and test several configs on repeated train/val splits; one table of mean ± std.

``python tools/benchmark_models.py CONFIG [CONFIG ...] --splits 0 1 2 [--work-dir DIR]``

For each split ``k`` (the CSVs in ``<data_root>/splits/seed<k>/``, written by
``tools/build_miqd.py BUILD_CONFIG --resplit k``; ``official`` = ``<data_root>/splits/``) and each
config, it runs ``tools/train.py`` (``--resume auto``: an interrupted run continues) and then
``tools/test.py`` on the split's val set with the LAST checkpoint (no model selection on the
reported set), each in its own process. Finished runs (``test.json`` present) are reused, so
a rerun only does what is missing. ``--hvs PSNR SSIM ...`` adds rows from
``tools/benchmark_hvs.py`` on the same splits. Output in the work dir: ``runs.csv`` (one row
per method and split), ``summary.json`` and ``summary.md`` (mean ± std over splits, sample std).
"""
import argparse
import csv
import io
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Sequence

import numpy as np
from mmengine.config import Config

from miqa.utils.io import atomic_write_text

METRICS = ('SRCC', 'PLCC', 'KRCC', 'RMSE')
TOOLS = osp.dirname(osp.abspath(__file__))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train/test configs on repeated splits; mean ± std table')
    parser.add_argument('configs', nargs='+', help='training configs (one row each)')
    parser.add_argument('--splits', nargs='+', default=['official'],
                        help="split seeds (<data_root>/splits/seed<k>/) or 'official' (default)")
    parser.add_argument('--hvs', nargs='*', default=[], metavar='METRIC',
                        help='also score these HVS metrics on the same splits (tools/benchmark_hvs.py)')
    parser.add_argument('--work-dir', help='default: work_dirs/benchmark_<database folder name>')
    parser.add_argument('--fit', default='linear', choices=['none', 'linear', 'logistic4', 'logistic5'],
                        help='mapping before PLCC/RMSE (default linear, as the paper)')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='passed to train.py and test.py')
    parser.add_argument('--dry-run', action='store_true', help='print the commands, run nothing')
    return parser.parse_args(argv)


def split_dir(data_root: str, split: str) -> str:
    splits = osp.join(data_root, 'splits')
    return splits if split == 'official' else osp.join(splits, f'seed{split}')


def _run(cmd: List[str], log: str, dry_run: bool) -> None:
    print('$ ' + ' '.join(cmd), flush=True)
    if dry_run:
        return
    os.makedirs(osp.dirname(log), exist_ok=True)
    with open(log, 'a') as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise RuntimeError(f'{cmd[1]} failed (exit {proc.returncode}); see {log}')


def last_checkpoint(run_dir: str) -> str:
    """The checkpoint mmengine recorded as its last (``<work_dir>/last_checkpoint``)."""
    marker = osp.join(run_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        raise FileNotFoundError(f'{marker} not found: training in {run_dir} did not finish')
    return open(marker).read().strip()


def model_run(config: str, split: str, root: str, args) -> Dict:
    """Train + test one config on one split (reusing finished steps); its test record."""
    cfg = Config.fromfile(config)
    stem = osp.splitext(osp.basename(config))[0]
    run_dir = osp.join(root, stem, f'split_{split}')
    result = osp.join(run_dir, 'test.json')
    if not osp.isfile(result):
        sdir = split_dir(cfg.data_root, split)
        common = ['--split-dir', sdir] + (['--cfg-options', *args.cfg_options] if args.cfg_options else [])
        if not osp.isfile(osp.join(run_dir, 'last_checkpoint')) or not _finished(run_dir, cfg):
            _run([sys.executable, osp.join(TOOLS, 'train.py'), config, '--work-dir', run_dir,
                  '--resume', 'auto', *common], osp.join(run_dir, 'benchmark_train.log'), args.dry_run)
        if args.dry_run:
            return {}
        _run([sys.executable, osp.join(TOOLS, 'test.py'), config, last_checkpoint(run_dir), '--work-dir',
              run_dir, '--fit', args.fit, '--out', result, *common],
             osp.join(run_dir, 'benchmark_test.log'), args.dry_run)
    record = json.loads(open(result).read())
    return dict(method=record['method'], split=split, kind='model', config=config,
                **{m: record['metrics'].get(m) for m in METRICS})


def _finished(run_dir: str, cfg: Config) -> bool:
    """Whether the last checkpoint is the end of training (iteration- or epoch-based)."""
    name = osp.basename(last_checkpoint(run_dir))
    end = cfg.train_cfg.get('max_iters') or cfg.train_cfg.get('max_epochs')
    return name in (f'iter_{end}.pth', f'epoch_{end}.pth')


def hvs_runs(config: str, split: str, root: str, metrics: Sequence[str], args) -> List[Dict]:
    cfg = Config.fromfile(config)
    out_dir = osp.join(root, 'hvs', f'split_{split}')
    _run([sys.executable, osp.join(TOOLS, 'benchmark_hvs.py'), config, '--metrics', *metrics,
          '--split-dir', split_dir(cfg.data_root, split), '--fit', args.fit, '--out-dir', out_dir,
          '--cache-dir', osp.join(root, 'hvs', 'cache'), '--no-progress'],
         osp.join(out_dir, 'benchmark_hvs.log'), args.dry_run)
    if args.dry_run:
        return []
    summary = json.loads(open(osp.join(out_dir, 'hvs_results.json')).read())
    return [dict(method=name, split=split, kind='hvs', config=config, **{m: row.get(m) for m in METRICS})
            for name, row in summary['rows'].items() if row.get('status') == 'ok']


def summarize(runs: List[Dict]) -> Dict[str, Dict]:
    """Mean and sample std (ddof=1) of each metric per method over its splits."""
    out: Dict[str, Dict] = {}
    for method in dict.fromkeys(r['method'] for r in runs):
        rows = [r for r in runs if r['method'] == method]
        entry = dict(kind=rows[0]['kind'], n_splits=len(rows))
        for m in METRICS:
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
    lines = [f'mean ± std over {len(splits)} train/val splits ({", ".join(splits)})', '',
             '| Method | ' + ' | '.join(METRICS) + ' |', '|:--|' + ':-:|' * len(METRICS)]
    lines += [f'| {name} | ' + ' | '.join(cell(e, m) for m in METRICS) + ' |' for name, e in summary.items()]
    return '\n'.join(lines)


def main(argv=None) -> Dict[str, Dict]:
    args = parse_args(argv)
    data_roots = {Config.fromfile(c).data_root for c in args.configs}
    if len(data_roots) != 1:
        raise SystemExit(f'the configs point at different databases: {sorted(data_roots)}')
    root = args.work_dir or osp.join('work_dirs', f'benchmark_{osp.basename(osp.normpath(data_roots.pop()))}')
    runs: List[Dict] = []
    start = time.time()
    for split in args.splits:
        if args.hvs:
            runs += hvs_runs(args.configs[0], split, root, args.hvs, args)
        for config in args.configs:
            run = model_run(config, split, root, args)
            if run:
                runs.append(run)
                print(f'split {split} {run["method"]}: ' + ' '.join(f'{m} {run[m]:.4f}' for m in METRICS),
                      flush=True)
    if args.dry_run:
        return {}
    summary = summarize(runs)
    table = summary_table(summary, args.splits)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=['method', 'kind', 'split', 'config', *METRICS],
                            lineterminator='\n')
    writer.writeheader()
    writer.writerows(runs)
    atomic_write_text(osp.join(root, 'runs.csv'), buf.getvalue())
    atomic_write_text(osp.join(root, 'summary.json'), json.dumps(dict(splits=args.splits, fit=args.fit,
                                                                      summary=summary, runs=runs), indent=1))
    atomic_write_text(osp.join(root, 'summary.md'), table + '\n')
    print(table + f'\n\n({time.time() - start:.0f} s; written: {root}/summary.md, summary.json, runs.csv)')
    return summary


if __name__ == '__main__':
    main()
