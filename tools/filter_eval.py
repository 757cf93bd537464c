"""The filtering experiment (MIQA spec §8): does dropping the images a quality model rates
lowest raise a downstream machine's performance on what is kept?

    python tools/filter_eval.py --pred RA-MIQA=work_dirs/ra/test_best_cls_composite_predictions.csv \\
        --pred PSNR=work_dirs/hvs/psnr_cls.csv \\
        --machine EfficientNetLite:lite0 --machine EfficientNetLite:lite1 --machine EfficientNetLite:lite2

Every ``--pred`` is a per-image CSV (``tools/test.py``'s ``*_predictions.csv`` or
``tools/benchmark_hvs.py``'s) naming the images (``img_path``) and holding a quality score
(``pred_score``, higher = better) and the label (``gt_score``). The images common to all the
files are ranked by each file's score, by the label (oracle, from the first file) and at random
(``--random-repeats`` seeded permutations); the lowest ``--fractions`` are dropped and every
machine is measured on the rest: cls top-1 (and top-5) accuracy against the acceptable
ImageNet classes of the image's source, det / ins COCO AP, AP50, AP75 (pycocotools) against
the source's annotations. Machines run once per image; their outputs are cached under
``<out-dir>/machine_cache`` (resumable; reused by later runs with other quality models).

Writes ``<out-dir>/filter_<task>.json`` (never overwriting: a timestamp is added to a taken
name), a ``.csv`` beside it (long format) and one PNG per plotted metric.
"""
import argparse
import csv
import io
import json
import logging
import os.path as osp
import sys
import time
from pathlib import Path

import numpy as np
from mmengine.logging import print_log

from miqa.analysis import downstream
from miqa.analysis.filtering import (
    DEFAULT_FRACTIONS,
    check_fractions,
    curves_to_json,
    curves_to_rows,
    filtering_curves,
    num_dropped,
)
from miqa.analysis.plots import filtering_plot
from miqa.analysis.predictions import image_key, parse_named, read_named
from miqa.evaluation.iqa_metric import is_usable
from miqa.utils.io import atomic_write_text, unique_path
from miqa.vocab import TASKS

RESERVED = ('oracle', 'random')
PLOT_METRICS = {'cls': ('top1',), 'det': ('AP75', 'AP'), 'ins': ('AP75', 'AP')}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Filtering experiment: drop the lowest-rated images, '
                                                 're-measure downstream machines on the rest')
    parser.add_argument('--pred', action='append', required=True, metavar='NAME=CSV',
                        help='per-image prediction CSV of a quality model or HVS scorer (repeatable)')
    parser.add_argument('--machine', action='append', default=[], metavar='SPEC',
                        help='downstream machine: a registered name with a short config, e.g. '
                             'EfficientNetLite:lite0 or "DetectorAdapter:fn=pkg.mod:make,task=det" '
                             '(repeatable)')
    parser.add_argument('--machine-config',
                        help='a Python config file with `machines = [dict(type=...), ...]`')
    parser.add_argument('--task', choices=TASKS, help='checked against the machines\' task')
    parser.add_argument('--data-root', help='database root (default: from the images\' paths)')
    parser.add_argument('--annotations', help='cls: JSON {src_id: [classes]} / CSV src_id,labels; det/ins: '
                                              'COCO json (default: manifest / split files / instances json '
                                              'of the database)')
    parser.add_argument('--annotated-only', action='store_true',
                        help='det/ins: only images whose source has an annotated object (e.g. the sources '
                             'with a pseudo ground truth in MIQD-mini-det; the others have no boxes at all)')
    parser.add_argument('--fractions', type=float, nargs='+', default=list(DEFAULT_FRACTIONS),
                        help='fractions filtered out (default 0 0.1 ... 0.7)')
    parser.add_argument('--random-repeats', type=int, default=50, help='random rankings averaged (0: none)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random rankings')
    parser.add_argument('--no-oracle', action='store_true', help='leave out the oracle (label) ranking')
    parser.add_argument('--plot-metric', nargs='+',
                        help='metrics plotted (default: cls top1; det/ins AP75 AP)')
    parser.add_argument('--out-dir', default='work_dirs/filter_eval', help='results folder')
    parser.add_argument('--cache-dir', help='machine output cache (default: <out-dir>/machine_cache)')
    parser.add_argument('--batch-size', type=int, help='machine batch size (unless its config sets one)')
    parser.add_argument('--device', help="machine device (default 'auto': CUDA when available)")
    parser.add_argument('--num-threads', type=int, help='torch CPU threads of a machine call')
    parser.add_argument('--chunk-size', type=int, default=64, help='images per cache part file')
    parser.add_argument('--max-dets', type=int, default=100, help='det/ins: detections kept per image')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def machine_specs(args) -> list:
    specs = list(args.machine)
    if args.machine_config:
        from mmengine.config import Config
        cfg = Config.fromfile(args.machine_config)
        if 'machines' not in cfg:
            raise ValueError(f'{args.machine_config}: no `machines = [dict(type=...), ...]`')
        specs += [dict(m) for m in cfg.machines]
    if not specs:
        raise ValueError('give at least one --machine (e.g. EfficientNetLite:lite0) or --machine-config')
    return specs


def common_images(preds: dict) -> tuple:
    """Image keys usable in every prediction file (sorted), and ``{name: {key: record}}``."""
    by_key = {}
    for name, records in preds.items():
        if name in RESERVED:
            raise ValueError(f'{name!r} names a built-in ranking; call the predictions something else')
        usable = [r for r in records if is_usable(r)]
        if usable and 'img_path' not in usable[0]:
            raise ValueError(f'predictions {name!r} have no img_path column: the filtering experiment needs '
                             'the images')
        by_key[name] = {image_key(r): r for r in usable}
    keys = sorted(set.intersection(*(set(v) for v in by_key.values())))
    for name, records in by_key.items():
        if len(records) != len(keys):
            print_log(f'{name}: {len(records) - len(keys)} of its {len(records)} usable images are not in '
                      'every prediction file and are left out', logger='current', level=logging.WARNING)
    if not keys:
        raise ValueError('the prediction files have no usable image in common')
    return keys, by_key


def _sources(keys, records, args):
    """(data root, src_id of every key)."""
    data_root = args.data_root or downstream.data_root_of(records[keys[0]]['img_path'])
    src_ids = [records[k].get('src_id') for k in keys]
    if None in src_ids:
        raise ValueError(f'no src_id for {keys[src_ids.index(None)]}: add a src_id column to the predictions '
                         'or use official MIQD file names')
    return data_root, src_ids


def coco_references(keys, records, args):
    """det/ins: ``({src_id: (annotations, size)}, categories, src_ids, coco_file)``."""
    data_root, src_ids = _sources(keys, records, args)
    coco_file = args.annotations or (data_root and Path(data_root) / 'miqa_det' / 'additional_info'
                                     / 'instances_val2017.json')
    if not coco_file:
        raise ValueError('cannot locate the COCO annotations: pass --annotations or --data-root')
    refs, categories = downstream.coco_ground_truth(coco_file)
    missing = sorted({s for s in src_ids if s not in refs})
    if missing:
        raise ValueError(f'{coco_file}: no image for source(s) {missing[:5]}')
    return refs, categories, src_ids, coco_file


def annotated_only(keys, records, args):
    """The keys whose source has at least one annotated (non-crowd) object."""
    refs, _, src_ids, coco_file = coco_references(keys, records, args)
    kept = [k for k, s in zip(keys, src_ids) if any(not a.get('iscrowd', 0) for a in refs[s][0])]
    sources = len({records[k]['src_id'] for k in kept})
    print_log(f'--annotated-only: {len(kept)} of {len(keys)} images ({sources} sources) have an annotated '
              f'object in {coco_file}', logger='current')
    if not kept:
        raise ValueError(f'{coco_file}: none of the images has an annotated object')
    return kept


def ground_truth_metrics(task, machines, outputs, keys, records, args):
    """``{machine name: metric}`` with the task's ground truth."""
    if task == 'cls':
        data_root, src_ids = _sources(keys, records, args)
        classes = downstream.cls_ground_truth(sorted(set(src_ids)), data_root, args.annotations)
        return {m.name: downstream.cls_metric(outputs[m.name], keys, [classes[s] for s in src_ids])
                for m in machines}
    refs, categories, src_ids, _ = coco_references(keys, records, args)
    return {m.name: downstream.det_metric(outputs[m.name], keys, [refs[s] for s in src_ids], task,
                                          [c['id'] for c in categories] or None, args.max_dets)
            for m in machines}


def summary(result: dict) -> str:
    """Markdown: per machine and ranking the value unfiltered, at the largest fraction, the gain."""
    lines = []
    last = len(result['fractions']) - 1
    head = f'{100 * result["fractions"][0]:.0f} %', f'{100 * result["fractions"][last]:.0f} %'
    for metric in result['metrics']:
        lines += ['', f'**{metric}** (n = {result["num_images"]}; kept at the last fraction: '
                      f'{result["n_kept"][last]})', '',
                  f'| machine | ranking | {head[0]} | {head[1]} | gain |', '|:--|:--|:-:|:-:|:-:|']
        for machine, by_ranking in result['curves'].items():
            for ranking, values in by_ranking.items():
                seq = values[metric]['mean'] if ranking == 'random' else values[metric]
                a, b = seq[0], seq[last]
                cells = ['n/a' if v is None else f'{100 * v:.2f}' for v in (a, b)]
                gain = 'n/a' if a is None or b is None else f'{100 * (b - a):+.2f}'
                lines.append(f'| {machine} | {ranking} | {cells[0]} | {cells[1]} | {gain} |')
    return '\n'.join(lines[1:])


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    fractions = check_fractions(args.fractions).tolist()
    preds = read_named(args.pred)
    machines = downstream.build_machines(machine_specs(args), dict(
        batch_size=args.batch_size, device=args.device, num_threads=args.num_threads))
    tasks = sorted({m.task for m in machines})
    if len(tasks) > 1 or (args.task and tasks != [args.task]):
        raise ValueError(f'machines of task(s) {tasks}' + (f' but --task {args.task}' if args.task else '')
                         + ': run one task at a time')
    task = tasks[0]
    keys, by_key = common_images(preds)
    names = list(preds)
    records = by_key[names[0]]
    if args.annotated_only:
        if task == 'cls':
            raise ValueError('--annotated-only is for det/ins (cls sources always have their classes)')
        keys = annotated_only(keys, records, args)
    out_dir = Path(args.out_dir)
    cache_dir = Path(args.cache_dir) if args.cache_dir else out_dir / 'machine_cache'
    outputs, errors = downstream.run_machines(
        machines, {k: records[k]['img_path'] for k in keys}, cache_dir, chunk_size=args.chunk_size,
        max_dets=args.max_dets, progress=not args.no_progress)
    keys = [k for k in keys if k not in errors]
    if not keys:
        raise RuntimeError(f'no image could be measured by every machine, e.g. {next(iter(errors.items()))}')
    machine_s = time.perf_counter() - start

    rankings = {name: np.array([by_key[name][k]['pred_score'] for k in keys]) for name in names}
    labels = {name: np.array([by_key[name][k]['gt_score'] for k in keys]) for name in names}
    for name in names[1:]:
        if not np.allclose(labels[name], labels[names[0]], atol=1e-6):
            print_log(f'{name}: its gt_score differs from {names[0]}\'s; the oracle ranks by {names[0]}\'s',
                      logger='current', level=logging.WARNING)
    if not args.no_oracle:
        rankings['oracle'] = labels[names[0]]
    metrics = ground_truth_metrics(task, machines, outputs, keys, records, args)
    curves = filtering_curves(rankings, metrics, fractions, args.random_repeats, args.seed)
    n = len(keys)
    result = dict(
        task=task, time=time.strftime('%Y-%m-%d %H:%M:%S'), fractions=fractions,
        n_kept=[n - num_dropped(n, f) for f in fractions], num_images=n, num_excluded=len(errors),
        excluded=dict(list(errors.items())[:20]), metrics=list(next(iter(curves.values()))[names[0]]),
        models=names, predictions=dict(parse_named(spec) for spec in args.pred),
        annotated_only=bool(args.annotated_only),
        oracle=None if args.no_oracle else f'gt_score of {names[0]}',
        random=dict(repeats=args.random_repeats, seed=args.seed, band='5th-95th percentile over the repeats'),
        drop_rule='round(fraction * n) lowest-scored images dropped (half-up); ties keep file-name order',
        machines={m.name: m.describe() for m in machines}, cache_dir=str(cache_dir),
        runtime_s=dict(machines=round(machine_s, 1)), curves=curves_to_json(curves))
    result['runtime_s']['total'] = round(time.perf_counter() - start, 1)

    path = unique_path(str(out_dir / f'filter_{task}.json'))
    stem = osp.splitext(path)[0]
    atomic_write_text(path, json.dumps(result, indent=1))
    rows = curves_to_rows(curves, fractions, n)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(rows[0]), lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(stem + '.csv', table.getvalue())
    written = [path, stem + '.csv']
    for metric in args.plot_metric or PLOT_METRICS[task]:
        if metric not in result['metrics']:
            raise ValueError(f'--plot-metric {metric!r}: the {task} metrics are {result["metrics"]}')
        written.append(filtering_plot(result, metric, f'{stem}_{metric}.png',
                                      title=f'Filtering on {n} {task} images: {metric}'))
    text = summary(result)
    atomic_write_text(stem + '.md', text + '\n')
    print(text)
    print(f'\n{n} images ({len(errors)} left out), {len(machines)} machine(s); machines {machine_s:.1f} s, '
          f'total {time.perf_counter() - start:.1f} s\nwritten: {", ".join(written + [stem + ".md"])}')
    return result


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
