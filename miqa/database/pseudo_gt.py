r"""Pseudo ground truth for detection: the boxes that independent detectors agree on.

Photos without human boxes (MIQD-mini) still need an accuracy reference for the det labels
(spec §1: accuracy = AP against the ground truth). :class:`DetectorAgreement` takes the clean
predictions of M >= 2 detectors on the *stored* (downscaled) pristine image, the frame every
label uses, and keeps an object when they agree on it:

1. **candidates**: every box with score >= ``low_score``;
2. **seeds**, by score (descending; ties: machine order, then index): a box with score >=
   ``high_score`` not yet used. For each *other* machine the unused candidate of the same class
   (any class with ``class_agnostic=True``) with the largest IoU >= ``iou_thr`` (ties: higher
   score, then lower index) joins the seed, as COCO's evaluation matches a detection to its best
   ground truth;
3. the cluster is **accepted** when it holds boxes of at least ``min_machines`` machines (default:
   all): its members are used, the pseudo box is the mean of their corners, its class the seed's,
   its ``score`` the mean of their scores. A rejected seed stays unused;
4. **ignore regions**: every box with score >= ``ignore_score`` that is in no accepted cluster (one
   detector is sure, the others are not) becomes a crowd annotation (``iscrowd=1``) of its class:
   COCO's evaluation neither rewards nor penalises detections inside it.

With two detectors this is "same class, IoU >= 0.5, one score >= 0.4 and the other >= 0.3, the
averaged box" (the defaults). Measured on the 341 MIQD-mini photos at a 320 px short side with
CenterNet and NanoDet (:mod:`miqa.database.detectors`): 92 boxes in 58 photos, mostly person
(44), bird, horse and cow; paired boxes overlap with IoU 0.80-0.87 on average; class-agnostic at
0.3 / 0.2: 152 photos. It is a *pseudo* ground truth: objects neither detector finds are missing
and both detectors' shared mistakes are in it; a user with real annotations passes a COCO file
instead (the builder's ``annotations``), which always wins.

Output: COCO annotation dicts in pixels of the image the detections refer to (``bbox`` xywh
rounded to 1/1000 px, ``category_id``, ``iscrowd``, ``area``, plus ``score`` and ``machines``:
how many detectors agreed). Rules are configured from data: ``dict(type='agreement', ...)``
(registry ``miqa.registry.PSEUDO_GT_RULES``, :func:`build_pseudo_gt`).
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from miqa.registry import PSEUDO_GT_RULES

#: COCO 2017's 80 object categories (``instances_*.json``): id, name, supercategory.
COCO_CATEGORIES: Tuple[Dict[str, Any], ...] = tuple(
    dict(id=i, name=name, supercategory=sup) for i, name, sup in (
        (1, 'person', 'person'), (2, 'bicycle', 'vehicle'), (3, 'car', 'vehicle'),
        (4, 'motorcycle', 'vehicle'), (5, 'airplane', 'vehicle'), (6, 'bus', 'vehicle'),
        (7, 'train', 'vehicle'), (8, 'truck', 'vehicle'), (9, 'boat', 'vehicle'),
        (10, 'traffic light', 'outdoor'), (11, 'fire hydrant', 'outdoor'), (13, 'stop sign', 'outdoor'),
        (14, 'parking meter', 'outdoor'), (15, 'bench', 'outdoor'), (16, 'bird', 'animal'),
        (17, 'cat', 'animal'), (18, 'dog', 'animal'), (19, 'horse', 'animal'), (20, 'sheep', 'animal'),
        (21, 'cow', 'animal'), (22, 'elephant', 'animal'), (23, 'bear', 'animal'), (24, 'zebra', 'animal'),
        (25, 'giraffe', 'animal'), (27, 'backpack', 'accessory'), (28, 'umbrella', 'accessory'),
        (31, 'handbag', 'accessory'), (32, 'tie', 'accessory'), (33, 'suitcase', 'accessory'),
        (34, 'frisbee', 'sports'), (35, 'skis', 'sports'), (36, 'snowboard', 'sports'),
        (37, 'sports ball', 'sports'), (38, 'kite', 'sports'), (39, 'baseball bat', 'sports'),
        (40, 'baseball glove', 'sports'), (41, 'skateboard', 'sports'), (42, 'surfboard', 'sports'),
        (43, 'tennis racket', 'sports'), (44, 'bottle', 'kitchen'), (46, 'wine glass', 'kitchen'),
        (47, 'cup', 'kitchen'), (48, 'fork', 'kitchen'), (49, 'knife', 'kitchen'), (50, 'spoon', 'kitchen'),
        (51, 'bowl', 'kitchen'), (52, 'banana', 'food'), (53, 'apple', 'food'), (54, 'sandwich', 'food'),
        (55, 'orange', 'food'), (56, 'broccoli', 'food'), (57, 'carrot', 'food'), (58, 'hot dog', 'food'),
        (59, 'pizza', 'food'), (60, 'donut', 'food'), (61, 'cake', 'food'), (62, 'chair', 'furniture'),
        (63, 'couch', 'furniture'), (64, 'potted plant', 'furniture'), (65, 'bed', 'furniture'),
        (67, 'dining table', 'furniture'), (70, 'toilet', 'furniture'), (72, 'tv', 'electronic'),
        (73, 'laptop', 'electronic'), (74, 'mouse', 'electronic'), (75, 'remote', 'electronic'),
        (76, 'keyboard', 'electronic'), (77, 'cell phone', 'electronic'), (78, 'microwave', 'appliance'),
        (79, 'oven', 'appliance'), (80, 'toaster', 'appliance'), (81, 'sink', 'appliance'),
        (82, 'refrigerator', 'appliance'), (84, 'book', 'indoor'), (85, 'clock', 'indoor'),
        (86, 'vase', 'indoor'), (87, 'scissors', 'indoor'), (88, 'teddy bear', 'indoor'),
        (89, 'hair drier', 'indoor'), (90, 'toothbrush', 'indoor')))


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with ``others`` (K, 4); 0 where the union is empty."""
    box, others = np.asarray(box, np.float64), np.asarray(others, np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = iw * ih
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    areas = np.clip(others[:, 2] - others[:, 0], 0, None) * np.clip(others[:, 3] - others[:, 1], 0, None)
    union = area + areas - inter
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _annotation(box: Sequence[float], category: int, crowd: int, score: float,
                machines: int) -> Dict[str, Any]:
    x0, y0, x1, y1 = (round(float(v), 3) for v in box)
    w, h = round(x1 - x0, 3), round(y1 - y0, 3)
    return dict(bbox=[x0, y0, w, h], category_id=int(category), iscrowd=int(crowd),
                area=round(max(w, 0.0) * max(h, 0.0), 3), score=round(float(score), 4),
                machines=int(machines))


@PSEUDO_GT_RULES.register_module(name='agreement')
class DetectorAgreement:
    """Pseudo ground truth from the agreement of detectors (module doc).

    Args:
        iou_thr: two boxes agree at IoU >= ``iou_thr``.
        high_score: a seed (one detector) needs this score.
        low_score: every other member needs this score.
        min_machines: detectors an object needs (default: all of them, at least 2).
        class_agnostic: boxes of different classes may agree (the seed's class is kept).
        ignore_score: unmatched boxes with this score or more become ignore (crowd) regions;
            ``None``: no ignore regions.
    """

    def __init__(self, iou_thr: float = 0.5, high_score: float = 0.4, low_score: float = 0.3,
                 min_machines: Optional[int] = None, class_agnostic: bool = False,
                 ignore_score: Optional[float] = 0.5) -> None:
        if not 0 < iou_thr <= 1:
            raise ValueError(f'iou_thr must be in (0, 1], got {iou_thr}')
        if not 0 <= low_score <= high_score <= 1:
            raise ValueError(f'need 0 <= low_score <= high_score <= 1, got {low_score}, {high_score}')
        if ignore_score is not None and not 0 <= ignore_score <= 1:
            raise ValueError(f'ignore_score must be in [0, 1] or None, got {ignore_score}')
        if min_machines is not None and int(min_machines) < 2:
            raise ValueError(f'min_machines must be >= 2 (agreement of detectors), got {min_machines}')
        self.iou_thr, self.high_score, self.low_score = float(iou_thr), float(high_score), float(low_score)
        self.min_machines = None if min_machines is None else int(min_machines)
        self.class_agnostic = bool(class_agnostic)
        self.ignore_score = None if ignore_score is None else float(ignore_score)

    def __call__(self, detections: Sequence[Mapping[str, np.ndarray]]) -> List[Dict[str, Any]]:
        """COCO annotations (accepted objects first, by seed score; then ignore regions) from
        the detections (``boxes`` xyxy, ``scores``, ``labels``) of each machine on one image."""
        need = len(detections) if self.min_machines is None else self.min_machines
        if len(detections) < 2 or need > len(detections):
            raise ValueError(f'pseudo ground truth needs at least {max(need, 2)} detectors\' predictions, '
                             f'got {len(detections)}')
        boxes = [np.asarray(d['boxes'], np.float64).reshape(-1, 4) for d in detections]
        scores = [np.asarray(d['scores'], np.float64).reshape(-1) for d in detections]
        labels = [np.asarray(d['labels']).reshape(-1).astype(np.int64) for d in detections]
        used = [np.zeros(len(s), bool) for s in scores]
        seeds = sorted(((-float(s), m, i) for m, ss in enumerate(scores) for i, s in enumerate(ss)
                        if s >= self.high_score))
        objects = []
        for _, m, i in seeds:
            if used[m][i]:
                continue
            members = [(m, i)]
            for other in range(len(detections)):
                if other == m:
                    continue
                ok = (~used[other]) & (scores[other] >= self.low_score)
                if not self.class_agnostic:
                    ok &= labels[other] == labels[m][i]
                iou = np.where(ok, box_iou(boxes[m][i], boxes[other]), -1.0)
                best = np.flatnonzero(iou >= self.iou_thr).tolist()
                if best:  # largest IoU, then higher score, then lower index
                    members.append((other, min(best, key=lambda j: (-iou[j], -scores[other][j], j))))
            if len(members) >= need:
                for a, b in members:
                    used[a][b] = True
                box = np.mean([boxes[a][b] for a, b in members], axis=0)
                score = float(np.mean([scores[a][b] for a, b in members]))
                objects.append(_annotation(box, labels[m][i], 0, score, len(members)))
        ignore = []
        if self.ignore_score is not None:
            for m in range(len(detections)):
                for i in np.flatnonzero(~used[m] & (scores[m] >= self.ignore_score)):
                    ignore.append((-scores[m][i], m, int(i)))
        return objects + [_annotation(boxes[m][i], labels[m][i], 1, -s, 1) for s, m, i in sorted(ignore)]

    def describe(self) -> Dict[str, Any]:
        """Parameters and the rule in words (recorded in the database manifest)."""
        cls = 'any class' if self.class_agnostic else 'the same class'
        who = 'all detectors' if self.min_machines is None else f'{self.min_machines} detectors'
        rule = (f'objects that {who} find with {cls} and IoU >= {self.iou_thr} (one score >= '
                f'{self.high_score}, the others >= {self.low_score}; greedy by score, best IoU), box = mean '
                'of the corners')
        if self.ignore_score is not None:
            rule += f'; other boxes with score >= {self.ignore_score} are ignore (crowd) regions'
        return dict(type='agreement', rule=rule, iou_thr=self.iou_thr, high_score=self.high_score,
                    low_score=self.low_score, min_machines=self.min_machines,
                    class_agnostic=self.class_agnostic, ignore_score=self.ignore_score)


def build_pseudo_gt(cfg: Union[None, Mapping[str, Any], Any]) -> Optional[Any]:
    """A rule from ``dict(type=<registered in PSEUDO_GT_RULES>, **options)`` (default type
    ``'agreement'``; ``None`` -> ``None``; a callable is returned as is)."""
    if cfg is None or (callable(cfg) and not isinstance(cfg, Mapping)):
        return cfg
    return PSEUDO_GT_RULES.build(dict(cfg, type=cfg.get('type', 'agreement')))


def has_objects(annotations: Optional[Sequence[Mapping[str, Any]]]) -> bool:
    """Whether ``annotations`` hold an object that is not an ignore (crowd) region."""
    return any(not a.get('iscrowd', 0) for a in annotations or ())


__all__ = ['COCO_CATEGORIES', 'DetectorAgreement', 'box_iou', 'build_pseudo_gt',
           'has_objects']
