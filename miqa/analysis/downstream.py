"""Downstream machines on a labelled image set, for the filtering experiment (spec §8).

* :func:`machine_config`: a command-line short form of a machine config
  (``EfficientNetLite:lite0`` -> ``dict(type='EfficientNetLite', variant='lite0')``), built by
  :func:`miqa.database.machines.build_machine` from the ``MACHINES`` registry.
* :class:`OutputCache` / :func:`run_machines`: every machine runs once per image; its per-image
  outputs go to part files in a cache folder (written atomically, one per chunk), so a killed
  run resumes and a second quality model reuses them. An entry is reused while the image file
  keeps its size and modification time.
* Ground truth: :func:`cls_ground_truth` (the acceptable ImageNet classes of each source) and
  :func:`coco_ground_truth` (each source's COCO annotations; every variant of a source shares
  them, scaled to the variant's size when it differs).
* :func:`cls_metric` / :func:`det_metric`: the per-machine metrics of
  :mod:`miqa.analysis.filtering` (top-1 / top-5 accuracy; COCO AP, AP50, AP75).

Outputs stored per image: cls ``top5`` class indices and ``prob5`` probabilities; det/ins the
detections in COCO result form (``bbox`` xywh, ``score``, ``category_id``, ``segmentation`` RLE
for ins), at most ``max_dets`` by score.
"""
import ast
import hashlib
import inspect
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.logging import print_log

from miqa.database.coco import CocoSubsetAP, coco_by_source, detection_results, load_coco, scale_coco
from miqa.database.machines import Machine, build_machine
from miqa.database.tasks import read_cls_annotations, task_spec
from miqa.registry import MACHINES
from miqa.utils.io import atomic_write_text

from .filtering import Metric, mean_metric

#: ``describe()`` keys that do not change a machine's outputs (left out of its cache key)
VOLATILE_KEYS = ('batch_size', 'device', 'num_threads', 'tf32')


# ---------------------------------------------------------------- machine configs
def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def machine_config(spec: Union[str, Mapping[str, Any]]) -> Dict[str, Any]:
    """A machine config from its short form ``TYPE[:VALUE][,KEY=VALUE...]``.

    ``TYPE`` is a name registered in ``miqa.registry.MACHINES``; a bare ``VALUE`` goes to the
    first parameter of its constructor (``EfficientNetLite:lite0`` -> ``variant='lite0'``);
    values are Python literals where they parse as one, else strings
    (``DetectorAdapter:fn=my_pkg.det:make,task=ins,label_map=coco80``). Values holding commas
    need a config file. A mapping is returned as a plain dict.
    """
    if isinstance(spec, Mapping):
        return dict(spec)
    kind, _, rest = spec.partition(':')
    cls = MACHINES.get(kind.strip())  # an unknown name answers with the closest ones
    params = [p for p in inspect.signature(cls.__init__).parameters if p != 'self']
    cfg: Dict[str, Any] = dict(type=kind.strip())
    for position, item in enumerate(part for part in rest.split(',') if part.strip()):
        key, eq, value = item.partition('=')
        if not eq:
            if position or not params:
                raise ValueError(f'machine {spec!r}: only the first item may omit KEY= (it sets '
                                 f'{params[0] if params else "nothing"}); write KEY=VALUE')
            key, value = params[0], item
        cfg[key.strip()] = _literal(value.strip())
    return cfg


def machine_key(machine: Machine) -> str:
    """``<name>-<12 hex>``: the machine's name and a hash of what decides its outputs."""
    described = {k: v for k, v in machine.describe().items() if k not in VOLATILE_KEYS}
    digest = hashlib.sha1(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f'{machine.name}-{digest}'


# ---------------------------------------------------------------- per-image outputs
def file_stamp(path: str) -> List[int]:
    """``[size, mtime_ns]`` of a file (a cached output is reused while it is unchanged)."""
    stat = os.stat(path)
    return [int(stat.st_size), int(stat.st_mtime_ns)]


def cls_output(probs: np.ndarray, k: int = 5) -> Dict[str, list]:
    """Top-``k`` classes (descending probability, stable) and their probabilities."""
    top = np.argsort(-probs, kind='stable')[:k]
    return dict(top5=[int(c) for c in top], prob5=[round(float(probs[c]), 6) for c in top])


def det_output(det: Mapping[str, Any], task: str, max_dets: int = 100) -> List[Dict[str, Any]]:
    """A :class:`~miqa.database.machines.Detections` as COCO results (no ``image_id``), top
    ``max_dets`` by score, rounded for the cache; ins adds the masks as RLE."""
    return detection_results(det, task_spec(task).iou_type, max_dets, rounded=True)


class OutputCache:
    """Per-image outputs of one machine: ``<root>/<machine_key>/part-<k>.json`` files, each
    ``{"machine": describe(), "outputs": {image key: output}}`` written atomically."""

    def __init__(self, root: Union[str, os.PathLike], machine: Machine) -> None:
        self.folder = Path(root) / machine_key(machine)
        self.described = machine.describe()
        self.outputs: Dict[str, dict] = {}
        parts = sorted(self.folder.glob('part-*.json')) if self.folder.is_dir() else []
        for part in parts:
            try:
                self.outputs.update(json.loads(part.read_text())['outputs'])
            except (ValueError, KeyError) as err:
                raise ValueError(f'{part}: not a machine output part ({err}); '
                                 'delete it to recompute') from None
        self._next = 1 + max((int(p.stem.split('-')[1]) for p in parts), default=-1)

    def valid(self, key: str, stamp: Sequence[int]) -> bool:
        entry = self.outputs.get(key)
        return entry is not None and list(entry['stamp']) == list(stamp)

    def add(self, outputs: Mapping[str, dict]) -> None:
        """Store a chunk of outputs (one new part file)."""
        if not outputs:
            return
        payload = dict(machine=self.described, outputs=dict(outputs))
        atomic_write_text(str(self.folder / f'part-{self._next:06d}.json'), json.dumps(payload))
        self._next += 1
        self.outputs.update(outputs)


def run_machines(machines: Sequence[Machine], images: Mapping[str, str], cache_dir: Union[str, os.PathLike],
                 chunk_size: int = 64, max_dets: int = 100, read_workers: int = 2,
                 reader: Optional[Callable[[str], np.ndarray]] = None, progress: bool = True
                 ) -> Tuple[Dict[str, Dict[str, dict]], Dict[str, str]]:
    """Every machine's output on every image, computing only what the cache lacks.

    Args:
        machines: built machines (unique names).
        images: ``{image key: path}``.
        cache_dir: the :class:`OutputCache` root.
        chunk_size: images per chunk (one part file per machine and chunk).
        reader: image decoder (default :func:`miqa.utils.image.read_rgb`).

    Returns:
        ``({machine name: {key: output}}, {key: error})``: images that could not be read (or
        that a machine failed on) are in the second dict and in no machine's outputs.
    """
    from tqdm import tqdm

    from miqa.utils.image import read_rgb

    reader = reader or read_rgb
    caches = {m.name: OutputCache(cache_dir, m) for m in machines}
    stamps, errors = {}, {}
    for key, path in images.items():
        try:
            stamps[key] = file_stamp(path)
        except OSError as err:
            errors[key] = f'cannot stat {path}: {err}'
    todo = [k for k in stamps if not all(caches[m.name].valid(k, stamps[k]) for m in machines)]
    if todo:
        print_log(f'running {len(machines)} machine(s) on {len(todo)} of {len(images)} images '
                  f'(the rest cached in {cache_dir})', logger='current')
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc='machines', unit='img', disable=not progress or not todo)
    with ThreadPoolExecutor(max(1, read_workers)) as pool:
        for begin in range(0, len(todo), chunk_size):
            keys = todo[begin:begin + chunk_size]
            decoded = list(pool.map(lambda k: _read(reader, images[k]), keys))
            ok = [(k, im) for k, im in zip(keys, decoded) if not isinstance(im, str)]
            errors.update({k: im for k, im in zip(keys, decoded) if isinstance(im, str)})
            for machine in machines:
                cache = caches[machine.name]
                need = [(k, im) for k, im in ok if not cache.valid(k, stamps[k])]
                if need:
                    cache.add(_predict(machine, need, stamps, max_dets))
            bar.update(len(keys))
    bar.close()
    if todo:
        print_log(f'machines ran on {len(todo)} images in {time.perf_counter() - start:.1f} s',
                  logger='current')
    outputs = {name: {k: c.outputs[k] for k in stamps if k not in errors and c.valid(k, stamps[k])}
               for name, c in caches.items()}
    for name, out in outputs.items():
        for key in stamps:
            if key not in out and key not in errors:
                errors[key] = f'{name} gave no output'
    if errors:
        print_log(f'{len(errors)} image(s) left out (unreadable or failed), e.g. '
                  f'{next(iter(errors.items()))}', logger='current', level=logging.WARNING)
    return {n: {k: v for k, v in out.items() if k not in errors} for n, out in outputs.items()}, errors


def _read(reader: Callable[[str], np.ndarray], path: str) -> Union[np.ndarray, str]:
    try:
        return reader(path)
    except OSError as err:
        return str(err)


def _predict(machine: Machine, items: List[Tuple[str, np.ndarray]], stamps: Mapping[str, list],
             max_dets: int) -> Dict[str, dict]:
    raw = machine.predict([im for _, im in items])
    out = {}
    for (key, image), result in zip(items, raw):
        entry = dict(stamp=list(stamps[key]), hw=list(image.shape[:2]))
        if machine.task == 'cls':
            entry.update(cls_output(np.asarray(result)))
        else:
            entry['dets'] = det_output(result, machine.task, max_dets)
        out[key] = entry
    return out


# ---------------------------------------------------------------- ground truth
def data_root_of(img_path: str) -> Optional[Path]:
    """``<root>`` of ``<root>/miqa_<cls|det>/images/<src_id>/<file>``, else ``None``."""
    path = Path(img_path).absolute()
    parents = path.parents
    if len(parents) > 3 and parents[1].name == 'images' and parents[2].name.startswith('miqa_'):
        return parents[3]
    return None


def _class_index() -> Dict[str, List[int]]:
    from miqa.database.sources import imagenet_classes

    index: Dict[str, List[int]] = {}
    for i, (_, name) in enumerate(imagenet_classes()):
        index.setdefault(name.strip().lower(), []).append(i)
    return index


def classes_of_name(name: str, index: Optional[Mapping[str, List[int]]] = None) -> List[int]:
    """ImageNet class indices (sorted-wnid order) of a split file's ``Category``: the full name,
    else its first comma-separated synonym (``'Shetland sheepdog, Shetland sheep dog'``), matched
    case-insensitively against ``miqa/database/data/imagenet_classes.txt``; a name shared by two
    classes (``crane``) accepts both. ``[]`` when nothing matches."""
    index = index if index is not None else _class_index()
    for candidate in (name, name.split(',')[0]):
        found = index.get(candidate.strip().lower())
        if found:
            return list(found)
    return []


def cls_ground_truth(src_ids: Sequence[str], data_root: Optional[Union[str, os.PathLike]] = None,
                     annotations: Optional[str] = None, on_missing: str = 'error') -> Dict[str, List[int]]:
    """The acceptable ImageNet-1k classes of every source, from the first that has them:

    1. ``annotations``: JSON ``{src_id: index | [indices]}`` or CSV ``src_id,labels`` (the
       database builder's ``annotations`` format);
    2. ``<data_root>/manifest_cls.json`` (a database built by ``tools/build_miqd.py``: each
       source's hand-annotated classes);
    3. the ``Category`` of ``<data_root>/splits/miqa_cls_{train,val}.csv`` (MIQD-2.5M), mapped to
       class indices by :func:`classes_of_name`.

    Raises ``ValueError`` naming the sources without ground truth; ``on_missing='drop'`` leaves
    them out of the result instead (MIQD-mini's consistency-only photos have no fitting class).
    """
    from miqa.datasets.splits import SPLITS, official_split_path, read_split_file

    found: Dict[str, List[int]] = {}
    tried = []
    if annotations:
        found = {k: list(v) for k, v in read_cls_annotations(annotations).items()}
        tried.append(annotations)
    elif data_root is not None:
        manifest = Path(data_root) / 'manifest_cls.json'
        tried.append(str(manifest))
        if manifest.is_file():
            sources = json.loads(manifest.read_text()).get('sources', {})
            found = {s: [int(c) for c in np.atleast_1d(r['annotation'])] for s, r in sources.items()
                     if r.get('annotation') is not None}
        missing = [s for s in src_ids if s not in found]
        if missing:
            index = _class_index()
            for split in SPLITS:
                path = official_split_path(data_root, 'cls', split)
                tried.append(str(path))
                if path.is_file():
                    for src, name in read_split_file(path, 'cls').categories.items():
                        classes = classes_of_name(name, index) if name else []
                        if src not in found and classes:
                            found[src] = classes
    absent = sorted({s for s in src_ids if s not in found})
    if absent and on_missing != 'drop':
        raise ValueError(f'no ImageNet classes for {len(absent)} source(s), e.g. {absent[:5]} (looked in: '
                         f'{", ".join(tried) or "nothing: no data root"}); pass --annotations with a JSON '
                         '{src_id: [class indices]} or a CSV src_id,labels, or --annotated-only')
    return {s: found[s] for s in src_ids if s in found}


Reference = Tuple[list, Tuple[int, int]]  # a source's COCO annotations and the (height, width) they refer to


def coco_ground_truth(coco_file: Union[str, os.PathLike]) -> Tuple[Dict[str, Reference], list]:
    """``({source key: (annotations, (height, width))}, categories)`` of a COCO instances file,
    keyed by the 12-digit image id and by the file stem (:func:`miqa.database.coco.coco_by_source`)."""
    coco = load_coco(coco_file)
    return ({key: (anns, (int(img['height']), int(img['width'])))
             for key, (img, anns) in coco_by_source(coco).items()}, coco.get('categories', []))


# ---------------------------------------------------------------- metrics per machine
def cls_metric(outputs: Mapping[str, dict], keys: Sequence[str], classes: Sequence[Sequence[int]]) -> Metric:
    """Top-1 / top-5 accuracy over the kept images: prediction in the acceptable classes of the
    image's source (``classes[i]`` for ``keys[i]``)."""
    top1 = [outputs[k]['top5'][0] in set(c) for k, c in zip(keys, classes)]
    top5 = [bool(set(outputs[k]['top5']) & set(c)) for k, c in zip(keys, classes)]
    return mean_metric(dict(top1=top1, top5=top5))


def det_metric(outputs: Mapping[str, dict], keys: Sequence[str], references: Sequence[Reference],
               task: str, categories: Optional[Sequence] = None, max_dets: int = 100) -> Metric:
    """COCO AP / AP50 / AP75 over the kept images (:class:`~miqa.database.coco.CocoSubsetAP`).
    ``references[i]`` = the source annotations of ``keys[i]`` and the size they refer to; they are
    scaled to the image's size when it differs."""
    sizes, anns = [], []
    for key, (source_anns, (h0, w0)) in zip(keys, references):
        h, w = outputs[key]['hw']
        sizes.append((h, w))
        scaled = (h, w) != (h0, w0)
        anns.append(scale_coco(source_anns, w / w0, h / h0) if scaled else source_anns)
    return CocoSubsetAP(sizes, anns, [outputs[k]['dets'] for k in keys], categories, task_spec(task).iou_type,
                        max_dets)


def build_machines(specs: Sequence[Union[str, Mapping[str, Any], Machine]],
                   overrides: Optional[Mapping[str, Any]] = None) -> List[Machine]:
    """Machines from short forms / configs / instances; ``overrides`` (e.g. ``batch_size``,
    ``device``, ``num_threads``) fill keys a config does not set."""
    from miqa.database.machines import check_unique_names

    machines = []
    for spec in specs:
        if isinstance(spec, Machine):
            machines.append(spec)
            continue
        cfg = machine_config(spec)
        for key, value in (overrides or {}).items():
            if value is not None:
                cfg.setdefault(key, value)
        machines.append(build_machine(cfg))
    check_unique_names(machines)
    return machines


__all__ = ['OutputCache', 'build_machines', 'classes_of_name', 'cls_ground_truth', 'cls_metric', 'cls_output',
           'coco_ground_truth', 'data_root_of', 'det_metric', 'det_output', 'machine_config', 'machine_key',
           'run_machines']
