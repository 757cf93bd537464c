r"""Label formulas: machine outputs -> consistency and accuracy in [0, 1] (spec §1, §3).

The paper does not publish its formulas; these are the framework's explicit, configurable
choices (names in the tables below; ``MachineLabeller(consistency=..., accuracy=...)``).

Classification (``p`` = a machine's softmax output on the pristine source, ``q`` = on the
degraded image, ``G`` = the acceptable ImageNet classes of the photo):

:data:`CLS_CONSISTENCY`

- ``'prob_overlap'`` (**default**): :math:`\sum_k \min(p_k, q_k) = 1 - \mathrm{TV}(p, q)`.
  The probability mass the two predictions share; equivalently the clean prediction's
  retained probability :math:`\min(1, q_k / p_k)` averaged over classes weighted by
  :math:`p_k`. 1 for identical outputs, 0 for disjoint ones; symmetric and continuous.
- ``'retained_top1'``: :math:`\min(1, q_c / p_c)` with :math:`c = \arg\max p` (how much of the
  clean top-1 confidence survives).
- ``'js_similarity'``: :math:`1 - \mathrm{JS}(p, q) / \ln 2` (Jensen-Shannon divergence in nats,
  normalised to [0, 1]).
- ``'top1_agreement'``: :math:`[\arg\max q = \arg\max p]`.

Worked case (``tests/test_labels.py``): :math:`p = (.8, .2, 0)`, :math:`q = (.2, .8, 0)` (the top
class flipped) gives overlap 0.4, retained_top1 0.25, agreement 0.

:data:`CLS_ACCURACY`

- ``'gt_mass'`` (**default**): :math:`\sum_{k \in G} q_k`, the probability that the machine's
  answer is acceptable (equals :math:`q_g` for one ground-truth class).
- ``'gt_max'``: :math:`\max_{k \in G} q_k`.
- ``'top1_hit'``, ``'top5_hit'``: :math:`[\arg\max q \in G]`, :math:`[\mathrm{top5}(q) \cap G \ne \emptyset]`.

Detection / instance segmentation (:func:`coco_ap`, ``pycocotools``; boxes for det, masks
for ins): ``metric`` = ``'ap'`` (**default**, AP@[.5:.95]), ``'ap50'`` or ``'ap75'`` (the paper's
filtering plots) over one image, 101-point interpolated, at most ``max_dets`` = 100 detections.

- consistency = AP of the degraded predictions against the clean predictions of the same
  machine with score >= ``score_thr`` (default 0.5) taken as ground truth;
- accuracy = AP of the degraded predictions against the annotations (crowd regions ignored).

As in COCO, the AP averages over the categories present in the reference; detections of other
categories do not lower it (``use_cats=False``: class-agnostic matching instead). A reference
without (non-crowd) objects makes AP undefined; the label is then 1.0 if the prediction has no
detection with score >= ``score_thr`` either (agreement on "nothing here"), else 0.0. A
non-empty reference with no predictions gives 0.0. In a :class:`MachineLabeller`,
``empty_reference='skip'`` instead leaves a machine whose clean predictions are empty out of that
source's consistency (NaN for it; the aggregates then run over the machines with a reference), so
a detector that saw nothing on the clean photo does not add a 0/1 "still nothing" vote.

Without annotations, ``pseudo_gt=dict(type='agreement', ...)`` makes the accuracy reference from
the machines' own clean predictions (:mod:`miqa.database.pseudo_gt`: the boxes the detectors
agree on, other confident boxes as ignore regions); a source where they agree on nothing gets
consistency-only labels (accuracy NaN). The builder asks :meth:`MachineLabeller.inspect_source`
for it before labelling (and records it), and, with ``exclude_without_reference=True``, leaves
out a source on which no machine has a clean detection with score >= ``score_thr`` (no
consistency reference either).

Aggregation over the M machines (:func:`aggregate`): ``weighted_*`` =
:math:`\sum_m w_m x_m / \sum_m w_m` (``weights``: ``None`` = uniform, a list in machine
order, or a dict name -> weight); ``mean_*`` and ``std_*`` are the plain mean and the
population std (ddof=0). A machine without a label for an image (NaN) drops out of that image's
sums; an image no machine labels stays NaN.

:func:`build_labeller` makes the builder's labeller from a config (``labeller=dict(
type='MachineLabeller', task='cls', machines=[...], ...)``); ``label(source, variants,
annotation)`` scores every variant, ``describe()`` feeds the manifest.
"""
import hashlib
import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from miqa.registry import LABELLERS
from miqa.vocab import TASKS

from .coco import CocoSubsetAP, detection_results, detections_to_annotations
from .machines import Detections, Machine, build_machine, check_unique_names, package_version
from .pseudo_gt import build_pseudo_gt, has_objects
from .tasks import LABEL_KEYS, task_spec

_EPS = 1e-12


# ---------------------------------------------------------------- classification
def prob_overlap(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """:math:`\\sum_k \\min(p_k, q_k)` (= 1 - total variation); ``p`` (C,), ``q`` (N, C) -> (N,)."""
    return np.minimum(p[None], q).sum(-1)


def retained_top1(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """:math:`\\min(1, q_c / p_c)`, ``c`` = the clean top-1 class."""
    c = int(np.argmax(p))
    return np.minimum(1.0, q[:, c] / max(p[c], _EPS))


def js_similarity(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """:math:`1 - \\mathrm{JS}(p, q) / \\ln 2`."""
    p = p[None]
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide='ignore', invalid='ignore'):
            terms = np.where(a > 0, a * (np.log(np.maximum(a, _EPS)) - np.log(np.maximum(b, _EPS))), 0.0)
        return terms.sum(-1)

    return 1.0 - (0.5 * kl(p, m) + 0.5 * kl(q, m)) / math.log(2)


def top1_agreement(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """:math:`[\\arg\\max q = \\arg\\max p]`."""
    return (q.argmax(-1) == int(np.argmax(p))).astype(np.float64)


#: cls consistency formulas: ``f(p (C,), q (N, C)) -> (N,)``.
CLS_CONSISTENCY: Dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    'prob_overlap': prob_overlap, 'retained_top1': retained_top1, 'js_similarity': js_similarity,
    'top1_agreement': top1_agreement}


def gt_mass(q: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """:math:`\\sum_{k \\in G} q_k`; ``q`` (N, C) -> (N,)."""
    return q[:, list(classes)].sum(-1)


def gt_max(q: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """:math:`\\max_{k \\in G} q_k`."""
    return q[:, list(classes)].max(-1)


def _topk_hit(k: int) -> Callable[[np.ndarray, Sequence[int]], np.ndarray]:
    def hit(q: np.ndarray, classes: Sequence[int]) -> np.ndarray:
        top = np.argsort(-q, axis=-1, kind='stable')[:, :k]
        return np.isin(top, list(classes)).any(-1).astype(np.float64)
    hit.__name__ = f'top{k}_hit'
    hit.__doc__ = f'1 if one of the top-{k} classes is acceptable, else 0.'
    return hit


#: cls accuracy formulas: ``f(q (N, C), classes) -> (N,)``.
CLS_ACCURACY: Dict[str, Callable[[np.ndarray, Sequence[int]], np.ndarray]] = {
    'gt_mass': gt_mass, 'gt_max': gt_max, 'top1_hit': _topk_hit(1), 'top5_hit': _topk_hit(5)}


def cls_classes(annotation: Any, num_classes: int) -> List[int]:
    """The acceptable class indices of a cls annotation (an int or a list of ints)."""
    values = [annotation] if isinstance(annotation, (int, np.integer)) else list(annotation)
    classes = sorted({int(v) for v in values})
    if not classes or any(not 0 <= c < num_classes for c in classes):
        raise ValueError(f'cls annotation must hold class indices in 0..{num_classes - 1}, '
                         f'got {annotation!r}')
    return classes


# ---------------------------------------------------------------- detection / instance segmentation
#: AP variants: name -> IoU threshold (``None`` = the mean over .50:.05:.95).
#: AP variants: name -> the :class:`~miqa.database.coco.CocoSubsetAP` key.
DET_METRICS: Dict[str, str] = {'ap': 'AP', 'ap50': 'AP50', 'ap75': 'AP75'}


def coco_ap(reference: Optional[Sequence[Mapping[str, Any]]], prediction: Detections,
            image_size: Sequence[int], iou_type: str = 'bbox', metric: str = 'ap', score_thr: float = 0.5,
            use_cats: bool = True, max_dets: int = 100) -> float:
    """COCO AP of one image's ``prediction`` against ``reference`` annotations (module doc;
    :class:`~miqa.database.coco.CocoSubsetAP` on one image).

    Args:
        reference: COCO annotation dicts (``bbox`` xywh, ``category_id``, ``iscrowd``, ``area``,
            ``segmentation`` for ``'segm'``).
        prediction: :class:`~miqa.database.machines.Detections`.
        image_size: ``(H, W)`` (polygon / RLE decoding).
        iou_type: ``'bbox'`` or ``'segm'``.
        metric: a key of :data:`DET_METRICS`.
        score_thr: only used when the reference is empty (see the module doc).
    """
    if metric not in DET_METRICS:
        raise KeyError(f'metric {metric!r} unknown; choose from {sorted(DET_METRICS)}')
    reference = list(reference or [])
    if not has_objects(reference):
        return float(not np.any(prediction['scores'] >= score_thr))
    results = detection_results(prediction, iou_type, max_dets)
    if not results:
        return 0.0
    ap = CocoSubsetAP([image_size[:2]], [reference], [results], iou_type=iou_type, max_dets=max_dets,
                      use_cats=use_cats)(np.zeros(1, np.int64))[DET_METRICS[metric]]
    return 0.0 if ap is None else ap


# What a det/ins machine's consistency is on a source where its clean predictions are empty.
EMPTY_REFERENCE = {
    'agree': '1 if no prediction has score >= {thr}, else 0',
    'skip': 'undefined (NaN): the machine is left out of the aggregates for that source',
}


# ---------------------------------------------------------------- aggregation
def normalise_weights(weights: Union[None, Sequence[float], Mapping[str, float]],
                      names: Sequence[str]) -> np.ndarray:
    """Machine weights summing to 1 (``None``: uniform; list in machine order; dict name -> weight)."""
    if weights is None:
        w = np.ones(len(names))
    elif isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(names))
        missing = [n for n in names if n not in weights]
        if unknown or missing:
            raise ValueError(f'weights: unknown machines {unknown}, missing {missing} '
                             f'(machines: {list(names)})')
        w = np.array([float(weights[n]) for n in names])
    else:
        w = np.asarray(list(weights), dtype=np.float64)
        if w.shape != (len(names),):
            raise ValueError(f'weights: {len(w)} values for {len(names)} machines')
    if np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f'weights must be finite, >= 0 and not all 0, got {w.tolist()}')
    return w / w.sum()


def aggregate(values: np.ndarray, weights: np.ndarray) -> Dict[str, np.ndarray]:
    """``values`` (M machines, N images) -> ``weighted``, ``mean``, ``std`` (ddof=0), each (N,).

    NaN entries (a machine without a label for that image) drop out of the image's sums.
    """
    values = np.asarray(values, dtype=np.float64)
    defined = ~np.isnan(values)
    w = np.where(defined, np.asarray(weights, dtype=np.float64)[:, None], 0.0)
    count, total = defined.sum(0), w.sum(0)
    with np.errstate(invalid='ignore', divide='ignore'):
        weighted = np.where(defined, values * w, 0.0).sum(0) / total
        mean = np.where(defined, values, 0.0).sum(0) / count
        std = np.sqrt(np.where(defined, (values - mean) ** 2, 0.0).sum(0) / count)
    return dict(weighted=weighted, mean=mean, std=std)


# ---------------------------------------------------------------- the labeller
@LABELLERS.register_module()
class MachineLabeller:
    """Scores degraded images with a set of machines (the builder's labeller interface).

    Args:
        task: ``'cls'``, ``'det'`` or ``'ins'``.
        machines: machine configs (``dict(type='EfficientNetLite', variant='lite1')``, built from
            ``miqa.registry.MACHINES``) or :class:`~miqa.database.machines.Machine` instances,
            all of this task.
        consistency: cls: a key of :data:`CLS_CONSISTENCY` (default ``'prob_overlap'``);
            det/ins: a key of :data:`DET_METRICS` (default ``'ap'``).
        accuracy: cls: a key of :data:`CLS_ACCURACY` (default ``'gt_mass'``); det/ins: a key of
            :data:`DET_METRICS` (default ``'ap'``).
        weights: machine weights of the ``weighted_*`` labels (module doc).
        score_thr: det/ins: clean detections with this score or more are the consistency reference.
        use_cats, max_dets: det/ins: :func:`coco_ap` options.
        num_classes: cls: the class count annotations are checked against.
        missing_annotation: ``'error'`` (default): ``label`` raises without an annotation;
            ``'nan'``: accuracy labels are NaN (consistency only; always so with ``pseudo_gt`` for
            a source where the detectors agree on nothing).
        pseudo_gt: det: a rule of :mod:`miqa.database.pseudo_gt` (``dict(type='agreement', ...)``)
            making the annotation of a source that has none from the machines' clean predictions
            (:meth:`inspect_source`); ``None``: no pseudo ground truth.
        exclude_without_reference: det/ins: :meth:`inspect_source` asks the builder to leave out
            a source on which no machine has a clean detection with score >= ``score_thr``.
        empty_reference: det/ins, a machine with no clean detection >= ``score_thr`` on a source:
            ``'agree'`` (default): its consistency is :func:`coco_ap`'s empty-reference value (1 if
            the degraded image has none either, else 0); ``'skip'``: NaN, so the source's
            consistency aggregates over the machines that have a reference.
    """

    def __init__(self, task: str = 'cls', machines: Sequence[Union[Machine, Mapping[str, Any]]] = (),
                 consistency: Optional[str] = None, accuracy: Optional[str] = None,
                 weights: Union[None, Sequence[float], Mapping[str, float]] = None, score_thr: float = 0.5,
                 use_cats: bool = True, max_dets: int = 100, num_classes: int = 1000,
                 missing_annotation: str = 'error', pseudo_gt: Optional[Mapping[str, Any]] = None,
                 exclude_without_reference: bool = False, empty_reference: str = 'agree') -> None:
        if task not in TASKS:
            raise ValueError(f'task must be one of {TASKS}, got {task!r}')
        if not machines:
            raise ValueError('MachineLabeller needs at least one machine')
        if missing_annotation not in ('error', 'nan'):
            raise ValueError(f"missing_annotation must be 'error' or 'nan', got {missing_annotation!r}")
        if empty_reference not in EMPTY_REFERENCE:
            raise ValueError(f'empty_reference must be one of {sorted(EMPTY_REFERENCE)}, '
                             f'got {empty_reference!r}')
        det_only = pseudo_gt is not None or exclude_without_reference or empty_reference != 'agree'
        if task == 'cls' and det_only:
            raise ValueError('pseudo_gt, exclude_without_reference and empty_reference are for det/ins '
                             'labellers')
        if empty_reference == 'skip' and not exclude_without_reference:
            raise ValueError("empty_reference='skip' needs exclude_without_reference=True (a source no "
                             'machine has a reference for would get no consistency label)')
        if pseudo_gt is not None and task != 'det':
            raise ValueError('pseudo_gt makes boxes: det labellers only')
        self.task = task
        self.machines = [build_machine(m) for m in machines]
        wrong = [m.name for m in self.machines if m.task != task]
        if wrong:
            raise ValueError(f'machines {wrong} are not {task} machines')
        self.names = check_unique_names(self.machines)
        cls = task == 'cls'
        cons_table, acc_table = (CLS_CONSISTENCY, CLS_ACCURACY) if cls else (DET_METRICS, DET_METRICS)
        self.consistency = consistency or ('prob_overlap' if task == 'cls' else 'ap')
        self.accuracy = accuracy or ('gt_mass' if task == 'cls' else 'ap')
        for kind, name, table in (('consistency', self.consistency, cons_table),
                                  ('accuracy', self.accuracy, acc_table)):
            if name not in table:
                raise KeyError(f'{task} {kind} {name!r} unknown; choose from {sorted(table)}')
        self.weights = normalise_weights(weights, self.names)
        if empty_reference == 'skip' and not (self.weights > 0).all():
            raise ValueError("empty_reference='skip' needs every machine weighted above 0 (a source only a "
                             'zero-weight machine has a reference for would get no weighted label)')
        self.score_thr, self.use_cats, self.max_dets = float(score_thr), bool(use_cats), int(max_dets)
        self.num_classes, self.missing_annotation = int(num_classes), missing_annotation
        self.pseudo_gt = build_pseudo_gt(pseudo_gt)
        self.exclude_without_reference = bool(exclude_without_reference)
        self.empty_reference = empty_reference
        self._clean: Optional[tuple] = None  # (image digest, {machine name: clean Detections})

    # per machine: (consistency (N,), accuracy (N,)) of the variants
    def _score_cls(self, machine: Machine, source: np.ndarray, images: List[np.ndarray],
                   classes: Optional[List[int]]) -> tuple:
        probs = machine.predict([source] + images)
        p, q = probs[0], probs[1:]
        cons = CLS_CONSISTENCY[self.consistency](p, q)
        acc = CLS_ACCURACY[self.accuracy](q, classes) if classes is not None else np.full(len(q), np.nan)
        return cons, acc

    def _clean_predictions(self, source: np.ndarray) -> Dict[str, Detections]:
        """Every machine's predictions on the pristine ``source`` (kept for the next call with the
        same image, so :meth:`inspect_source` and :meth:`label` run the machines on it once)."""
        digest = hashlib.blake2b(np.ascontiguousarray(source).tobytes(), digest_size=16)
        digest.update(repr(source.shape).encode())
        if self._clean is None or self._clean[0] != digest.digest():
            self._clean = (digest.digest(), {m.name: m.predict([source])[0] for m in self.machines})
        return self._clean[1]

    def inspect_source(self, source: np.ndarray, annotation: Any) -> Dict[str, Any]:
        """What the builder needs before labelling a source (det/ins; cls: nothing).

        Returns ``dict(exclude=None | reason, annotation=<for label()>, record=<fields for the
        source's record>)``: the annotation is ``annotation`` when given, else the pseudo ground
        truth (``pseudo_gt``; recorded with ``annotation_source='pseudo_gt'`` even when it holds
        only ignore regions, in which case :meth:`label` gets ``None``: accuracy NaN).
        """
        if self.task == 'cls':
            return dict(exclude=None, annotation=annotation, record={})
        clean = self._clean_predictions(source)
        boxes = {name: int(np.count_nonzero(det['scores'] >= self.score_thr)) for name, det in clean.items()}
        record: Dict[str, Any] = dict(reference_boxes=boxes)
        if self.exclude_without_reference and not any(boxes.values()):
            return dict(exclude=f'no clean detection with score >= {self.score_thr} by any machine',
                        annotation=None, record=record)
        if annotation is None and self.pseudo_gt is not None:
            pseudo = self.pseudo_gt([clean[m.name] for m in self.machines])
            record.update(annotation=pseudo, annotation_source='pseudo_gt',
                          pseudo_gt_objects=sum(not a['iscrowd'] for a in pseudo))
            annotation = pseudo if has_objects(pseudo) else None
        return dict(exclude=None, annotation=annotation, record=record)

    def _score_det(self, machine: Machine, source: np.ndarray, images: List[np.ndarray],
                   annotation: Optional[Sequence[Mapping]]) -> tuple:
        iou_type = task_spec(self.task).iou_type
        clean = self._clean_predictions(source)[machine.name]
        dets = machine.predict(images)
        reference = detections_to_annotations(clean, self.score_thr, iou_type)
        kw = dict(iou_type=iou_type, score_thr=self.score_thr, use_cats=self.use_cats, max_dets=self.max_dets)
        skip = self.empty_reference == 'skip' and not has_objects(reference)
        cons, acc = [], []
        for image, det in zip(images, dets):
            cons.append(np.nan if skip else coco_ap(reference, det, image.shape, metric=self.consistency,
                                                    **kw))
            acc.append(np.nan if annotation is None else coco_ap(annotation, det, image.shape,
                                                                 metric=self.accuracy, **kw))
        return np.array(cons), np.array(acc)

    def label(self, source: np.ndarray, variants: Mapping[str, np.ndarray], annotation: Any
              ) -> Dict[str, Dict[str, float]]:
        """The six ``LABEL_KEYS`` for every variant file name (values in [0, 1])."""
        names = list(variants)
        if not names:
            return {}
        if annotation is None and self.missing_annotation == 'error' and self.pseudo_gt is None:
            raise ValueError(f'{self.task} accuracy needs an annotation (ImageNet class indices for cls, '
                             'COCO annotations for det/ins); set missing_annotation="nan" for consistency '
                             'only')
        if self.task == 'cls':
            reference = None if annotation is None else cls_classes(annotation, self.num_classes)
            score = self._score_cls
        else:
            reference, score = annotation, self._score_det
        images = [variants[n] for n in names]
        per_machine = [score(m, source, images, reference) for m in self.machines]
        cons = np.clip(np.stack([c for c, _ in per_machine]), 0.0, 1.0)
        if np.isnan(cons).all(0).any():  # only with empty_reference='skip'
            raise ValueError('no machine has a clean detection >= score_thr on this source, so its '
                             'consistency is undefined: leave it out (exclude_without_reference=True and '
                             'inspect_source, as the builder does)')
        acc = np.clip(np.stack([a for _, a in per_machine]), 0.0, 1.0)
        c, a = aggregate(cons, self.weights), aggregate(acc, self.weights)
        columns = dict(weighted_consistency=c['weighted'], weighted_accuracy=a['weighted'],
                       mean_consistency=c['mean'], std_consistency=c['std'],
                       mean_accuracy=a['mean'], std_accuracy=a['std'])
        return {name: {k: float(columns[k][i]) for k in LABEL_KEYS} for i, name in enumerate(names)}

    def describe(self) -> Dict[str, Any]:
        """Machines, formulas, weights and versions (recorded in the database manifest)."""
        if self.task == 'cls':
            formulas = dict(consistency=_doc(CLS_CONSISTENCY[self.consistency]),
                            accuracy=_doc(CLS_ACCURACY[self.accuracy]))
        else:
            ap = 'COCO AP ({}) of the degraded predictions against {}'
            clean = f'the clean predictions with score >= {self.score_thr}'
            formulas = dict(
                consistency=ap.format(self.consistency, clean),
                accuracy=ap.format(self.accuracy, 'the annotations'),
                empty_reference=EMPTY_REFERENCE[self.empty_reference].format(thr=self.score_thr))
        return dict(
            type=type(self).__name__, task=self.task, consistency=self.consistency, accuracy=self.accuracy,
            formulas=formulas, weights=dict(zip(self.names, self.weights.tolist())),
            aggregation='weighted_* = sum_m w_m x_m (weights sum to 1); mean_*, std_* (ddof=0) over machines',
            score_thr=self.score_thr, use_cats=self.use_cats, max_dets=self.max_dets,
            **({} if self.task == 'cls' else dict(
                pseudo_gt=None if self.pseudo_gt is None else _describe_rule(self.pseudo_gt),
                exclude_without_reference=self.exclude_without_reference,
                empty_reference=self.empty_reference)),
            machines=[m.describe() for m in self.machines],
            versions={p: package_version(p) for p in ('torch', 'numpy', 'pycocotools', 'timm')})


def _describe_rule(rule: Any) -> Any:
    describe = getattr(rule, 'describe', None)
    return describe() if describe else getattr(rule, '__name__', type(rule).__name__)


def _doc(fn: Callable) -> str:
    return (fn.__doc__ or fn.__name__).strip().splitlines()[0]


def build_labeller(cfg: Union[Mapping[str, Any], Any]) -> Any:
    """The builder's labeller from ``cfg`` (``type`` registered in ``miqa.registry.LABELLERS``,
    default ``'MachineLabeller'``); an object that already has ``label`` is returned as is."""
    if hasattr(cfg, 'label') and not isinstance(cfg, Mapping):
        return cfg
    cfg = _plain_cfg(cfg)
    return LABELLERS.build(dict(cfg, type=cfg.get('type', 'MachineLabeller')))


def _plain_cfg(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """mmengine ConfigDicts (nested) -> plain dicts / lists."""
    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value
    return plain(cfg)


__all__ = ['CLS_CONSISTENCY', 'CLS_ACCURACY', 'DET_METRICS', 'MachineLabeller',
           'aggregate', 'build_labeller', 'coco_ap', 'normalise_weights',
           'prob_overlap', 'retained_top1', 'js_similarity', 'top1_agreement', 'gt_mass', 'gt_max']
