"""The filtering experiment end to end (MIQA spec §8): does dropping the images a quality model
rates lowest raise a downstream machine's performance on what is kept?

Every prediction file is a per-image CSV (``tools/test.py``'s ``*_predictions.csv`` or
``tools/benchmark_hvs.py``'s) naming the images (``img_path``) and holding a quality score
(``pred_score``, higher = better) and the label (``gt_score``). The images common to all the
files are ranked by each file's score, by the label (oracle, from the first file) and at random
(``random_repeats`` seeded permutations); the lowest ``fractions`` are dropped and every machine
is measured on the rest: cls top-1 (and top-5) accuracy against the acceptable ImageNet classes
of the image's source, det / ins COCO AP, AP50, AP75 (pycocotools) against the source's
annotations. Machines run once per image; their outputs are cached under
``<out_dir>/machine_cache`` (resumable; reused by later runs with other quality models).

:func:`filter_eval` writes ``<out_dir>/filter_<task>.json`` (never overwriting: a timestamp is
added to a taken name), a ``.csv`` beside it (long format), a ``.md`` summary and one PNG per
plotted metric. ``tools/filter_eval.py`` is its command line; the curves themselves are the pure
functions of :mod:`miqa.analysis.filtering`.
"""
import csv
import io
import json
import logging
import os.path as osp
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

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
from miqa.evaluation.tables import CENTER, LEFT, markdown_table
from miqa.utils.io import atomic_write_text, unique_path

RESERVED = ('oracle', 'random')
PLOT_METRICS = {'cls': ('top1',), 'det': ('AP75', 'AP'), 'ins': ('AP75', 'AP')}


def machine_specs(machines: Sequence = (), machine_config: Optional[str] = None) -> list:
    """The machine specs given (``'EfficientNetLite:lite0'`` or dicts) and those of
    ``machine_config`` (a Python config with ``machines = [dict(type=...), ...]``)."""
    specs = list(machines)
    if machine_config:
        from mmengine.config import Config
        cfg = Config.fromfile(machine_config)
        if 'machines' not in cfg:
            raise ValueError(f'{machine_config}: no `machines = [dict(type=...), ...]`')
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


def _sources(keys, records, data_root: Optional[str]):
    """(data root, src_id of every key)."""
    data_root = data_root or downstream.data_root_of(records[keys[0]]['img_path'])
    src_ids = [records[k].get('src_id') for k in keys]
    if None in src_ids:
        raise ValueError(f'no src_id for {keys[src_ids.index(None)]}: add a src_id column to the predictions '
                         'or use official MIQD file names')
    return data_root, src_ids


def coco_references(keys, records, data_root: Optional[str] = None, annotations: Optional[str] = None):
    """det/ins: ``({src_id: (annotations, size)}, categories, src_ids, coco_file)``."""
    data_root, src_ids = _sources(keys, records, data_root)
    coco_file = annotations or (data_root and Path(data_root) / 'miqa_det' / 'additional_info'
                                / 'instances_val2017.json')
    if not coco_file:
        raise ValueError('cannot locate the COCO annotations: pass --annotations or --data-root')
    refs, categories = downstream.coco_ground_truth(coco_file)
    missing = sorted({s for s in src_ids if s not in refs})
    if missing:
        raise ValueError(f'{coco_file}: no image for source(s) {missing[:5]}')
    return refs, categories, src_ids, coco_file


def annotated_keys(keys, records, data_root: Optional[str] = None, annotations: Optional[str] = None):
    """The keys whose source has at least one annotated (non-crowd) object."""
    refs, _, src_ids, coco_file = coco_references(keys, records, data_root, annotations)
    kept = [k for k, s in zip(keys, src_ids) if any(not a.get('iscrowd', 0) for a in refs[s][0])]
    sources = len({records[k]['src_id'] for k in kept})
    print_log(f'--annotated-only: {len(kept)} of {len(keys)} images ({sources} sources) have an annotated '
              f'object in {coco_file}', logger='current')
    if not kept:
        raise ValueError(f'{coco_file}: none of the images has an annotated object')
    return kept


def classified_keys(keys, records, data_root: Optional[str] = None, annotations: Optional[str] = None):
    """cls: the keys whose source has acceptable ImageNet classes (MIQD-mini's photos without a
    fitting class carry consistency-only labels and no ground truth for top-1)."""
    root, src_ids = _sources(keys, records, data_root)
    classes = downstream.cls_ground_truth(sorted(set(src_ids)), root, annotations, on_missing='drop')
    kept = [k for k, s in zip(keys, src_ids) if s in classes]
    print_log(f'--annotated-only: {len(kept)} of {len(keys)} images ({len(set(classes))} of '
              f'{len(set(src_ids))} sources) have ImageNet classes', logger='current')
    if not kept:
        raise ValueError('none of the images has a source with ImageNet classes')
    return kept


def ground_truth_metrics(task, machines, outputs, keys, records, data_root: Optional[str] = None,
                         annotations: Optional[str] = None, max_dets: int = 100):
    """``{machine name: metric}`` with the task's ground truth."""
    if task == 'cls':
        data_root, src_ids = _sources(keys, records, data_root)
        classes = downstream.cls_ground_truth(sorted(set(src_ids)), data_root, annotations)
        return {m.name: downstream.cls_metric(outputs[m.name], keys, [classes[s] for s in src_ids])
                for m in machines}
    refs, categories, src_ids, _ = coco_references(keys, records, data_root, annotations)
    return {m.name: downstream.det_metric(outputs[m.name], keys, [refs[s] for s in src_ids], task,
                                          [c['id'] for c in categories] or None, max_dets)
            for m in machines}


def summary(result: dict) -> str:
    """Markdown: per machine and ranking the value unfiltered, at the largest fraction, the gain."""
    lines = []
    last = len(result['fractions']) - 1
    head = f'{100 * result["fractions"][0]:.0f} %', f'{100 * result["fractions"][last]:.0f} %'
    for metric in result['metrics']:
        rows = []
        for machine, by_ranking in result['curves'].items():
            for ranking, values in by_ranking.items():
                seq = values[metric]['mean'] if ranking == 'random' else values[metric]
                a, b = seq[0], seq[last]
                cells = ['n/a' if v is None else f'{100 * v:.2f}' for v in (a, b)]
                gain = 'n/a' if a is None or b is None else f'{100 * (b - a):+.2f}'
                rows.append([machine, ranking, *cells, gain])
        lines += ['', f'**{metric}** (n = {result["num_images"]}; kept at the last fraction: '
                      f'{result["n_kept"][last]})', '',
                  markdown_table(['machine', 'ranking', *head, 'gain'], rows, [LEFT] * 2 + [CENTER] * 3)]
    return '\n'.join(lines[1:])


def filter_eval(preds: Sequence[str], machines: Sequence = (), *, machine_config: Optional[str] = None,
                task: Optional[str] = None, data_root: Optional[str] = None,
                annotations: Optional[str] = None, annotated_only: bool = False,
                fractions: Sequence[float] = DEFAULT_FRACTIONS, random_repeats: int = 50, seed: int = 0,
                oracle: bool = True, plot_metrics: Optional[List[str]] = None,
                out_dir: str = 'work_dirs/filter_eval', cache_dir: Optional[str] = None,
                batch_size: Optional[int] = None, device: Optional[str] = None,
                num_threads: Optional[int] = None, chunk_size: int = 64, max_dets: int = 100,
                progress: bool = True) -> Dict[str, Any]:
    """Run the filtering experiment and write its results (see the module docstring).

    ``preds``: ``'NAME=CSV'`` or ``'CSV'`` prediction files; ``machines``: machine specs (a
    registered name with a short config, e.g. ``'EfficientNetLite:lite0'``, or dicts), plus those
    of ``machine_config``. ``annotations``: cls JSON ``{src_id: [classes]}`` / CSV, det/ins COCO
    json (default: the database's). ``annotated_only``: only images whose source has an annotated
    object (det/ins) or ImageNet classes (cls). Returns the result dict written to ``filter_<task>.json``."""
    start = time.perf_counter()
    fractions = check_fractions(fractions).tolist()
    preds_by_name = read_named(preds)
    built = downstream.build_machines(machine_specs(machines, machine_config), dict(
        batch_size=batch_size, device=device, num_threads=num_threads))
    tasks = sorted({m.task for m in built})
    if len(tasks) > 1 or (task and tasks != [task]):
        raise ValueError(f'machines of task(s) {tasks}' + (f' but --task {task}' if task else '')
                         + ': run one task at a time')
    task = tasks[0]
    keys, by_key = common_images(preds_by_name)
    names = list(preds_by_name)
    records = by_key[names[0]]
    if annotated_only:
        keys = (classified_keys if task == 'cls' else annotated_keys)(keys, records, data_root, annotations)
    out_dir = Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir else out_dir / 'machine_cache'
    outputs, errors = downstream.run_machines(
        built, {k: records[k]['img_path'] for k in keys}, cache_dir, chunk_size=chunk_size,
        max_dets=max_dets, progress=progress)
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
    if oracle:
        rankings['oracle'] = labels[names[0]]
    metrics = ground_truth_metrics(task, built, outputs, keys, records, data_root, annotations, max_dets)
    curves = filtering_curves(rankings, metrics, fractions, random_repeats, seed)
    n = len(keys)
    result = dict(
        task=task, time=time.strftime('%Y-%m-%d %H:%M:%S'), fractions=fractions,
        n_kept=[n - num_dropped(n, f) for f in fractions], num_images=n, num_excluded=len(errors),
        excluded=dict(list(errors.items())[:20]), metrics=list(next(iter(curves.values()))[names[0]]),
        models=names, predictions=dict(parse_named(spec) for spec in preds),
        annotated_only=bool(annotated_only),
        oracle=f'gt_score of {names[0]}' if oracle else None,
        random=dict(repeats=random_repeats, seed=seed, band='5th-95th percentile over the repeats'),
        drop_rule='round(fraction * n) lowest-scored images dropped (half-up); ties keep file-name order',
        machines={m.name: m.describe() for m in built}, cache_dir=str(cache_dir),
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
    for metric in plot_metrics or PLOT_METRICS[task]:
        if metric not in result['metrics']:
            raise ValueError(f'--plot-metric {metric!r}: the {task} metrics are {result["metrics"]}')
        written.append(filtering_plot(result, metric, f'{stem}_{metric}.png',
                                      title=f'Filtering on {n} {task} images: {metric}'))
    text = summary(result)
    atomic_write_text(stem + '.md', text + '\n')
    print(text)
    print(f'\n{n} images ({len(errors)} left out), {len(built)} machine(s); machines {machine_s:.1f} s, '
          f'total {time.perf_counter() - start:.1f} s\nwritten: {", ".join(written + [stem + ".md"])}')
    return result
