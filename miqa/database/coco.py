"""COCO I/O and COCO AP, shared by the database builder, the labeller and the analysis.

* Reading: :func:`load_coco` (an instances JSON) and :func:`coco_by_source` (each image's entry
  and annotations, keyed as the builder names sources: by the 12-digit image id and by the file
  stem); :func:`read_coco_annotations` is the builder's ``annotations`` reader for det/ins.
* Resizing: :func:`scale_coco` (boxes, polygons, RLE masks, keypoints, area of an image resized
  by ``(sx, sy)``).
* Detections: :func:`detections_to_annotations` (as ground truth, e.g. the clean predictions of
  a consistency label) and :func:`detection_results` (as COCO results).
* AP: :class:`CocoSubsetAP` (pycocotools ``COCOeval`` over an image set, on any subset); the
  labeller's per-image AP (:func:`miqa.database.labels.coco_ap`) and the filtering experiment's
  metric (:func:`miqa.analysis.downstream.det_metric`) both use it.
* Writing: :func:`write_coco_subset` (``miqa_det/additional_info/instances_val2017.json`` of a
  built database).
"""
import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from miqa.utils.io import atomic_write_text

IOU_TYPES = ('bbox', 'segm')


# ---------------------------------------------------------------- reading
def load_coco(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """The parsed COCO instances JSON at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'COCO annotations not found: {path} (MIQD det/ins: '
                                'miqa_det/additional_info/instances_val2017.json; or pass --annotations)')
    return json.loads(path.read_text())


def coco_by_source(coco: Mapping[str, Any]) -> Dict[str, Tuple[dict, list]]:
    """``{key: (image entry, its annotations)}`` of a COCO instances dict, keyed by the 12-digit
    image id (numeric ids) and by the file stem (else the id): the names the builder gives
    sources of a COCO image folder."""
    per_image: Dict[Any, list] = {img['id']: [] for img in coco.get('images', [])}
    for ann in coco.get('annotations', []):
        per_image.setdefault(ann['image_id'], []).append(ann)
    out: Dict[str, Tuple[dict, list]] = {}
    for img in coco.get('images', []):
        entry = (img, per_image[img['id']])
        if isinstance(img['id'], int) or str(img['id']).isdigit():
            out[f'{int(img["id"]):012d}'] = entry
        out[Path(img.get('file_name', '')).stem or str(img['id'])] = entry
    return out


def read_coco_annotations(path: Union[str, os.PathLike]) -> Dict[str, list]:
    """The builder's det/ins ``annotations``: per source key (:func:`coco_by_source`) its annotations."""
    return {key: anns for key, (_, anns) in coco_by_source(load_coco(path)).items()}


# ---------------------------------------------------------------- resizing
def scale_coco(annotations: Optional[list], sx: float, sy: float) -> Optional[list]:
    """COCO annotations of an image resized by (sx, sy): boxes, polygons, RLE masks, keypoints, area."""
    if annotations is None or (sx == 1.0 and sy == 1.0):
        return annotations
    out = []
    for ann in annotations:
        ann = dict(ann)
        if 'bbox' in ann:
            x, y, w, h = ann['bbox']
            ann['bbox'] = [x * sx, y * sy, w * sx, h * sy]
        seg = ann.get('segmentation')
        if isinstance(seg, list):
            ann['segmentation'] = [[v * (sx, sy)[i % 2] for i, v in enumerate(poly)] for poly in seg]
        elif isinstance(seg, dict):
            ann['segmentation'] = _scale_rle(seg, sx, sy)
        if 'keypoints' in ann:
            ann['keypoints'] = [v * (sx, sy, 1)[i % 3] for i, v in enumerate(ann['keypoints'])]
        if 'area' in ann:
            ann['area'] = ann['area'] * sx * sy
        out.append(ann)
    return out


def _scale_rle(rle: dict, sx: float, sy: float) -> dict:
    import cv2
    from pycocotools import mask as mask_utils

    h, w = rle['size']
    if isinstance(rle['counts'], list):
        rle = mask_utils.frPyObjects(rle, h, w)
    binary = mask_utils.decode(rle)
    size = (max(1, round(w * sx)), max(1, round(h * sy)))
    return rle_encode(cv2.resize(binary, size, interpolation=cv2.INTER_NEAREST))


# ---------------------------------------------------------------- detections
def rle_encode(mask: np.ndarray) -> dict:
    """A binary mask as COCO RLE with ASCII ``counts`` (JSON-ready)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return dict(size=[int(v) for v in rle['size']], counts=rle['counts'].decode('ascii'))


def _xywh(box: Sequence[float]) -> List[float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


def detections_to_annotations(det: Mapping[str, Any], score_thr: float, iou_type: str) -> List[dict]:
    """Detections (:class:`~miqa.database.machines.Detections`) with score >= ``score_thr`` as
    COCO ground-truth annotations (xywh boxes; ``'segm'``: RLE masks, mask area)."""
    anns = []
    for i in np.flatnonzero(det['scores'] >= score_thr):
        bbox = _xywh(det['boxes'][i])
        ann = dict(bbox=bbox, category_id=int(det['labels'][i]), iscrowd=0,
                   area=max(0.0, bbox[2]) * max(0.0, bbox[3]))
        if iou_type == 'segm':
            ann['segmentation'] = rle_encode(det['masks'][i])
            ann['area'] = float(det['masks'][i].sum())
        anns.append(ann)
    return anns


def detection_results(det: Mapping[str, Any], iou_type: str = 'bbox', max_dets: int = 100,
                      rounded: bool = False) -> List[dict]:
    """Detections as COCO results (no ``image_id``): the top ``max_dets`` by score (ties in
    input order), ``bbox`` xywh, ``score``, ``category_id``, ``segmentation`` RLE for ``'segm'``.
    ``rounded``: boxes to 1/1000 px and scores to 1e-6 (compact JSON caches)."""
    scores = np.asarray(det['scores'])
    out = []
    for i in np.argsort(-scores, kind='stable')[:max_dets]:
        bbox, score = _xywh(det['boxes'][i]), float(scores[i])
        if rounded:
            bbox, score = [round(v, 3) for v in bbox], round(score, 6)
        res = dict(bbox=bbox, score=score, category_id=int(det['labels'][i]))
        if iou_type == 'segm':
            res['segmentation'] = rle_encode(det['masks'][i])
        out.append(res)
    return out


# ---------------------------------------------------------------- AP
class CocoSubsetAP:
    """COCO AP (pycocotools ``COCOeval``) of a fixed image set's detections, on any subset.

    The matching (``evaluate``) runs once over all images; a subset's AP accumulates only the
    per-image results of its images, which is exactly what ``COCOeval`` gives on a ground truth
    and detections restricted to the subset (categories without an object in the subset do not
    count, as in COCO). Area range ``all``, at most ``max_dets`` detections per image and category.

    Args:
        images: per image ``(height, width)``.
        annotations: per image its COCO annotations (``bbox`` xywh, ``category_id``, ``iscrowd``,
            ``area``, ``segmentation`` for ``'segm'``).
        results: per image its detections in COCO result form (``bbox``, ``score``,
            ``category_id``, ``segmentation`` RLE for ``'segm'``; no ``image_id``).
        categories: COCO category ids (or dicts with ``id``); default: those in the data.
        iou_type: ``'bbox'`` (det) or ``'segm'`` (ins).
        use_cats: ``False``: class-agnostic matching.

    ``__call__(kept)`` -> ``{'AP': AP@[.5:.95], 'AP50': ..., 'AP75': ...}`` (``None`` when the
    kept images hold no annotated object).
    """

    NAMES = {'AP': None, 'AP50': 0.5, 'AP75': 0.75}

    def __init__(self, images: Sequence[Sequence[int]], annotations: Sequence[Sequence[Mapping]],
                 results: Sequence[Sequence[Mapping]], categories: Optional[Sequence] = None,
                 iou_type: str = 'bbox', max_dets: int = 100, use_cats: bool = True) -> None:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        if not len(images) == len(annotations) == len(results):
            raise ValueError(f'images, annotations and results differ in length: '
                             f'{len(images)}, {len(annotations)}, {len(results)}')
        if iou_type not in IOU_TYPES:
            raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
        gt_anns, dets = [], []
        for i, (anns, res) in enumerate(zip(annotations, results), 1):
            for ann in anns:
                ann = dict(ann, id=len(gt_anns) + 1, image_id=i)
                ann.setdefault('iscrowd', 0)
                ann.setdefault('area', float(ann['bbox'][2] * ann['bbox'][3]))
                gt_anns.append(ann)
            dets.extend(dict(r, image_id=i) for r in res)
        if categories is None:
            cat_ids = sorted({a['category_id'] for a in gt_anns} | {d['category_id'] for d in dets})
        else:
            cat_ids = sorted({int(c['id']) if isinstance(c, Mapping) else int(c) for c in categories})
        self.n, self.has_dets = len(images), bool(dets)
        self._eval: Optional[COCOeval] = None
        if not dets:  # pycocotools cannot load an empty result list: every AP is 0 (or n/a)
            self._gt_per_image = np.bincount([a['image_id'] - 1 for a in gt_anns if not a['iscrowd']],
                                             minlength=self.n)
            return
        gt = COCO()
        gt.dataset = dict(images=[dict(id=i, height=int(h), width=int(w))
                                  for i, (h, w) in enumerate(images, 1)],
                          annotations=gt_anns, categories=[dict(id=c, name=str(c)) for c in cat_ids])
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
            ev = COCOeval(gt, gt.loadRes(dets), iou_type)
            ev.params.imgIds = list(range(1, self.n + 1))
            ev.params.catIds = cat_ids
            ev.params.useCats = int(use_cats)
            ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ['all']
            ev.params.maxDets = [int(max_dets)]
            ev.evaluate()
        self._eval = ev
        self._per_image = np.array(ev.evalImgs, dtype=object).reshape(-1, self.n)  # [category, image]

    def __call__(self, kept: np.ndarray) -> Dict[str, Optional[float]]:
        kept = np.asarray(kept, dtype=np.int64)
        mask = np.zeros(self.n, bool)
        mask[kept] = True
        if self._eval is None:
            value = 0.0 if self._gt_per_image[mask].sum() else None
            return dict.fromkeys(self.NAMES, value)
        ev = self._eval
        ev.evalImgs = np.where(mask[None], self._per_image, None).ravel().tolist()
        with contextlib.redirect_stdout(io.StringIO()):
            ev.accumulate()
        precision = ev.eval['precision'][:, :, :, 0, 0]  # [iou, recall, category]
        out: Dict[str, Optional[float]] = {}
        for name, iou in self.NAMES.items():
            values = precision if iou is None else precision[np.isclose(ev.params.iouThrs, iou)]
            valid = values[values > -1]
            out[name] = float(valid.mean()) if valid.size else None
        return out


# ---------------------------------------------------------------- writing
def write_coco_subset(path: Union[str, os.PathLike], src_ext: str, records: Mapping[str, Mapping],
                      annotations_file: Optional[str] = None) -> None:
    """The COCO file of a built det/ins database (``miqa_det/additional_info/instances_val2017.json``):
    the sources of ``records`` (builder records with ``size`` and ``annotation`` at the stored
    size) named ``<src_id><src_ext>``, with the categories of ``annotations_file`` (else COCO's
    80). Image and annotation ids of the file are kept; sources without them get new ids after
    the largest one (in ``src_id`` order)."""
    from .pseudo_gt import COCO_CATEGORIES

    image_ids: Dict[str, Any] = {}
    for src_id, record in records.items():
        src_anns = record.get('annotation') or []
        if src_anns and 'image_id' in src_anns[0]:
            image_ids[src_id] = src_anns[0]['image_id']
        elif src_id.isdigit():
            image_ids[src_id] = int(src_id)
    next_image = 1 + max((i for i in image_ids.values() if isinstance(i, int)), default=0)
    next_ann = 1 + max((a['id'] for r in records.values() for a in r.get('annotation') or []
                        if isinstance(a.get('id'), int)), default=0)
    images, anns = [], []
    for src_id in sorted(records):
        record = records[src_id]
        if src_id not in image_ids:
            image_ids[src_id], next_image = next_image, next_image + 1
        images.append(dict(id=image_ids[src_id], file_name=f'{src_id}{src_ext}',
                           height=record['size'][0], width=record['size'][1]))
        for ann in record.get('annotation') or []:
            if 'id' not in ann:
                ann, next_ann = dict(ann, id=next_ann, image_id=image_ids[src_id]), next_ann + 1
            anns.append(ann)
    categories = (load_coco(annotations_file).get('categories', []) if annotations_file
                  else list(COCO_CATEGORIES))
    atomic_write_text(str(path), json.dumps(dict(images=images, annotations=anns, categories=categories)))


__all__ = ['CocoSubsetAP', 'coco_by_source', 'detection_results', 'detections_to_annotations', 'load_coco',
           'read_coco_annotations', 'rle_encode', 'scale_coco', 'write_coco_subset']
