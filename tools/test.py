"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [options]``.

Prints SRCC/KRCC (rank-based) and PLCC/RMSE after the configured fit (default: linear, which
reproduces the paper's RMSEs) plus the raw PLCC/RMSE, overall, per distortion type and per
region type (UD / ROI-DD / BG-DD); writes JSON, a markdown row in the paper's format and the
per-image predictions. ``--task det`` evaluates a model on another task's data (cross-task).
"""
import argparse
import csv
import json
import os
import os.path as osp
import time

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from miqa.evaluation.iqa_metric import breakdown_table
from miqa.evaluation.reference import paper_row
from miqa.evaluation.tables import markdown_table, metric_cells
from miqa.models.weights import load_model_weights
from miqa.utils import setup_runtime
from miqa.utils.config import load_config, parse_runner_args, set_split_dir
from miqa.utils.io import atomic_write_text, unique_path
from miqa.vocab import FIT_CHOICES, LABEL_TYPES, METRIC_COLUMNS, SPLITS, TASKS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a miqa model on an MIQD split')
    parser.add_argument('config', help='config file or packaged config name (e.g. ra_miqa_cls)')
    parser.add_argument('checkpoint', help='a checkpoint from tools/train.py or tools/convert_checkpoint.py')
    parser.add_argument('--task', choices=TASKS, help='evaluate on this task (cross-task)')
    parser.add_argument('--label', choices=LABEL_TYPES,
                        help='evaluate against this label type')
    parser.add_argument('--split', choices=SPLITS, help='split to evaluate (default: val)')
    parser.add_argument('--fit', choices=FIT_CHOICES,
                        help='mapping applied before PLCC/RMSE (default from the config: linear)')
    parser.add_argument('--method', help='name in the report row (default: the config\'s `method`)')
    parser.add_argument('--paper', action='store_true', help="print the paper's published row beside ours")
    parser.add_argument('--out', help='results JSON (default: <work-dir>/test_<ckpt>_<task>_<label>.json)')
    return parse_runner_args(parser, argv)


def build_config(args) -> Config:
    cfg = load_config(args)
    dataset = cfg.test_dataloader.dataset
    for key, value in (('task', args.task), ('label_type', args.label), ('split', args.split)):
        if value:
            dataset[key] = value
    if args.split_dir:  # after --task/--split: the file names depend on them
        set_split_dir(cfg, args.split_dir)
    cfg.test_evaluator['breakdown'] = True
    if args.fit:
        cfg.test_evaluator['fit'] = None if args.fit == 'none' else args.fit
    cfg.load_from = None  # loaded strictly in main() (mmengine's load_from is strict=False)
    cfg.resume = False
    return setup_runtime(cfg, args.launcher)


def report(cfg: Config, args, metrics: dict, predictions: list) -> str:
    dataset = cfg.test_dataloader.dataset
    task, label = dataset['task'], dataset.get('label_type', 'composite')
    fit = cfg.test_evaluator.get('fit')
    method = args.method or cfg.get('method') or osp.splitext(osp.basename(args.config))[0]
    lines = [f'{method} on MIQD {task} ({label} labels, {dataset.get("split", "val")} split, '
             f'{metrics.get("num_samples")} images, {metrics.get("num_invalid", 0)} excluded as unreadable)',
             f'SRCC/KRCC: rank correlations of the raw predictions; PLCC/RMSE: after a {fit or "no"} fit',
             '', breakdown_table(metrics), '']
    rows = [[method, *metric_cells(metrics)]]
    reference = paper_row(cfg.get('method', method), task, label) if args.paper else None
    if reference:
        rows.append([f'{cfg.get("method", method)} (paper, MIQD-2.5M)', *metric_cells(reference)])
    lines.append(markdown_table(['Method', *METRIC_COLUMNS], rows))
    if args.paper and not reference:
        lines.append(f'(the paper reports no {label} row for {method} on {task})')
    text = '\n'.join(lines)

    out = args.out or osp.join(cfg.work_dir, f'test_{osp.splitext(osp.basename(args.checkpoint))[0]}'
                                             f'_{task}_{label}.json')
    out = unique_path(out)  # finished results are never overwritten silently
    stem = osp.splitext(out)[0]
    record = dict(method=method, config=args.config, checkpoint=args.checkpoint, task=task,
                  label_type=label, fit=fit, time=time.strftime('%Y-%m-%d %H:%M:%S'),
                  metrics=metrics, paper=reference)
    atomic_write_text(out, json.dumps(record, indent=2))
    atomic_write_text(stem + '.md', text + '\n')
    if predictions:
        fields = sorted({k for p in predictions for k in p})
        rows = [fields] + [[p.get(k, '') for k in fields] for p in predictions]
        with open(stem + '_predictions.csv.tmp', 'w', newline='') as f:
            csv.writer(f).writerows(rows)
        os.replace(stem + '_predictions.csv.tmp', stem + '_predictions.csv')
    return text + f'\n\nwritten: {out}, {stem}.md, {stem}_predictions.csv'


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    runner = Runner.from_cfg(cfg)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    load_model_weights(model, args.checkpoint)  # every key covered, or an error listing them
    runner.logger.info(f'loaded {args.checkpoint} (strict)')
    metrics = runner.test()
    if is_main_process():
        metric = runner.test_loop.evaluator.metrics[0]
        print(report(cfg, args, metrics, getattr(metric, 'last_predictions', [])))
    return metrics


if __name__ == '__main__':
    main()
