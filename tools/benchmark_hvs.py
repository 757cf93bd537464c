"""Score an MIQD split with human-vision quality metrics and correlate them with the machine labels.

``python tools/benchmark_hvs.py CONFIG [--metrics PSNR SSIM ...] [--paper]``

The split, task and label type come from the config's test dataset (override with ``--task``,
``--label``, ``--split``, ``--split-dir``, ``--data-root``), so HVS rows and the model rows of
``tools/test.py CONFIG CKPT`` describe the same images. Per-image scores are cached in
``<out-dir>/cache/<METRIC>.csv`` (append-only, flushed every batch: an interrupted run resumes,
a rerun only correlates). SRCC/KRCC/PLCC/RMSE use the same metric code and fit as
``tools/test.py`` (overall, per distortion type, per region type), on quality-oriented scores:
distances (LPIPS, DISTS) are negated. A metric whose weight files are missing is reported as
skipped, with the file to obtain, and the others still run.

Writes ``hvs_results.{json,csv,md}`` and ``<METRIC>_predictions.csv`` (same columns as
``tools/test.py``'s) to the out dir (default ``work_dirs/hvs_<database>_<task>_<label>_<split>``).
"""
import argparse
import csv
import io
import json
import os.path as osp
import time
from typing import Any, Dict, List

from mmengine.config import Config

from miqa.evaluation import IQAMetric
from miqa.evaluation.iqa_metric import breakdown_table
from miqa.evaluation.reference import paper_row
from miqa.hvs import SCORERS, build_scorer
from miqa.hvs.benchmark import default_cache_dir, score_split
from miqa.registry import DATASETS
from miqa.utils import register_all_modules
from miqa.utils.config import apply_overrides, set_split_dir
from miqa.utils.io import write_result_text
from miqa.vocab import METRIC_COLUMNS as COLUMNS
from miqa.vocab import TASKS

#: the paper's HVS rows (spec §7), in its order
PAPER_METRICS = ('PSNR', 'SSIM', 'VSI', 'LPIPS', 'DISTS', 'HyperIQA', 'MANIQA')
RECORD_FIELDS = ('distortion', 'region', 'fg_level', 'bg_level', 'src_id', 'img_path')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='HVS metrics against machine-quality labels')
    parser.add_argument('config', help='a training/test config: its test dataset is scored')
    parser.add_argument('--metrics', nargs='+', default=list(PAPER_METRICS),
                        help=f'registered HVS scorers (default: {" ".join(PAPER_METRICS)})')
    parser.add_argument('--task', choices=TASKS)
    parser.add_argument('--label', choices=['composite', 'consistency', 'accuracy'])
    parser.add_argument('--split', choices=['train', 'val'])
    parser.add_argument('--split-dir', help='folder of the split CSVs (official names)')
    parser.add_argument('--data-root', help='folder holding miqa_cls/, miqa_det/, miqa_ins/')
    parser.add_argument('--size', type=int,
                        help='warp images and references to SIZE x SIZE (default: native size)')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--workers', type=int, default=2, help='decoding processes')
    parser.add_argument('--fit', choices=['none', 'linear', 'logistic4', 'logistic5'],
                        help='mapping before PLCC/RMSE (default: the config\'s, linear)')
    parser.add_argument('--device', default='cpu', help="torch device of the learned metrics ('cuda')")
    parser.add_argument('--paper', action='store_true', help="print the paper's row beside each result")
    parser.add_argument('--out-dir', help='results')
    parser.add_argument('--cache-dir', help='per-image score cache (default $MIQA_HOME/cache/scores/<db>: '
                                            'shared by every split and the reference hook of training runs)')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def load_split(args) -> Dict[str, Any]:
    """The config's test dataset with the overrides: its sample infos and description."""
    cfg = Config.fromfile(args.config)
    apply_overrides(cfg, data_root=args.data_root)
    dataset_cfg = cfg.test_dataloader.dataset
    for key, value in (('task', args.task), ('label_type', args.label), ('split', args.split)):
        if value:
            dataset_cfg[key] = value
    if args.split_dir:
        set_split_dir(cfg, args.split_dir)
    dataset_cfg = dict(dataset_cfg, pipeline=[], serialize_data=False)
    dataset = DATASETS.build(dataset_cfg)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    fit = args.fit or cfg.get('test_evaluator', {}).get('fit', 'linear')
    return dict(infos=infos, task=dataset.task, label=dataset.label_type, split=dataset.split,
                data_root=dataset.data_root, split_file=str(dataset_cfg.get('split_file')),
                fit=None if fit == 'none' else fit)


def build_available(names: List[str], device: str) -> Dict[str, Any]:
    """Build each scorer; a missing weight file makes it ``skipped`` with the reason."""
    scorers, skipped = {}, {}
    for name in names:
        try:
            scorers[name] = build_scorer(name).to(device).eval()
        except FileNotFoundError as err:
            skipped[name] = str(err)
    return dict(scorers=scorers, skipped=skipped)


def evaluate(scores, scorer, infos, fit) -> Dict[str, Any]:
    """``IQAMetric`` (as ``tools/test.py``) on quality-oriented scores; and the per-image records."""
    import torch
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


def _row(name: str, values: Dict[str, Any]) -> str:
    cells = ' | '.join('n/a' if values.get(c) is None else f'{values[c]:.4f}' for c in COLUMNS)
    return f'| {name} | {cells} |'


def _csv_text(rows: List[Dict[str, Any]], fields: List[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction='ignore', lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def main(argv=None) -> Dict[str, Any]:
    args = parse_args(argv)
    register_all_modules()
    for name in args.metrics:
        SCORERS.get(name)  # an unknown name raises KeyError with did-you-mean, before any work
    split = load_split(args)
    db = osp.basename(osp.normpath(split['data_root']))
    out_dir = args.out_dir or osp.join(
        'work_dirs', f'hvs_{db}_{split["task"]}_{split["label"]}_{split["split"]}')
    built = build_available(args.metrics, args.device)
    start = time.time()
    cache_dir = args.cache_dir or default_cache_dir(split['data_root'])
    scores = score_split(built['scorers'], split['infos'], cache_dir, size=args.size,
                         batch_size=args.batch_size, num_workers=args.workers, root=split['data_root'],
                         progress=not args.no_progress)
    seconds = time.time() - start

    rows: Dict[str, Dict[str, Any]] = {}
    sections = []
    for name in args.metrics:
        if name in built['skipped']:
            rows[name] = dict(status='skipped', reason=built['skipped'][name])
            continue
        result = evaluate(scores[name], built['scorers'][name], split['infos'], split['fit'])
        metrics = result['metrics']
        rows[name] = dict(status='ok', lower_is_better=built['scorers'][name].lower_is_better,
                          **{c: metrics.get(c) for c in COLUMNS}, metrics=metrics)
        fields = ['sample_idx', 'img_path', 'pred_score', 'raw_score', 'gt_score', *RECORD_FIELDS[:-1]]
        write_result_text(osp.join(out_dir, f'{name}_predictions.csv'),
                          _csv_text(result['predictions'], list(dict.fromkeys(fields))))
        sections.append(f'### {name}\n\n{breakdown_table(metrics)}')

    head = (f'HVS metrics on {db} {split["task"]} ({split["label"]} labels, {split["split"]} split, '
            f'{len(split["infos"])} images); SRCC/KRCC: ranks; PLCC/RMSE after a {split["fit"] or "no"} fit; '
            'distances negated')
    table = ['| Method | ' + ' | '.join(COLUMNS) + ' |', '|:--|' + ':-:|' * len(COLUMNS)]
    for name, row in rows.items():
        if row['status'] != 'ok':
            table.append(f'| {name} | ' + ' | '.join(['skipped'] * len(COLUMNS)) + ' |')
            continue
        table.append(_row(name, row))
        reference = paper_row(name, split['task'], split['label']) if args.paper else None
        if reference:
            table.append(_row(f'{name} (paper, MIQD-2.5M)', reference))
    skipped = [f'- {name} skipped: {row["reason"]}' for name, row in rows.items() if row['status'] != 'ok']
    text = '\n'.join([head, '', *table, '', *skipped, '', *sections]) + '\n'
    write_result_text(osp.join(out_dir, 'hvs_results.md'), text)
    summary = dict(database=split['data_root'], task=split['task'], label_type=split['label'],
                   split=split['split'], split_file=split['split_file'], fit=split['fit'],
                   num_images=len(split['infos']), size=args.size, rows=rows)
    write_result_text(osp.join(out_dir, 'hvs_results.json'), json.dumps(summary, indent=1))
    flat = [dict(method=n, status=r['status'], **{c: r.get(c) for c in COLUMNS}) for n, r in rows.items()]
    write_result_text(osp.join(out_dir, 'hvs_results.csv'), _csv_text(flat, ['method', 'status', *COLUMNS]))
    print('\n'.join([head, '', *table, '', *skipped]))
    print(f'\nscored in {seconds:.1f} s; written: {out_dir}/hvs_results.md, .json, .csv, '
          '<METRIC>_predictions.csv')
    return summary


if __name__ == '__main__':
    main()
