"""Any detector or instance segmenter (mmdet, ultralytics, your own) as a det / ins machine."""
import importlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
from torch import Tensor

from miqa.registry import MACHINES

from .machines import COCO80_TO_91, Detections, Image, Machine, batches, check_image

#: Named label maps for :class:`DetectorAdapter`.
LABEL_MAPS: Dict[str, Sequence[int]] = {'coco80': COCO80_TO_91}


def _numpy(value: Any) -> Optional[np.ndarray]:
    if value is None:
        return None
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _import(path: str) -> Any:
    module, sep, attr = path.partition(':')
    if not sep:
        module, _, attr = path.rpartition('.')
    obj = importlib.import_module(module)
    for part in attr.split('.'):
        obj = getattr(obj, part)
    return obj


@MACHINES.register_module()
class DetectorAdapter(Machine):
    """Any detector or instance segmenter as a det / ins machine.

    ``fn(images) -> [dict(boxes, scores, labels, masks), ...]``: one dict per input image
    (uint8 RGB ``HxWx3`` numpy), ``boxes`` (K, 4) xyxy pixels, ``scores`` (K,), ``labels`` (K,)
    ints, ``masks`` (K, H, W) bool at the image size or ``None`` (required for ``task='ins'``);
    numpy arrays or torch tensors. ``label_map`` turns the detector's labels into the
    ``category_id`` of the annotations: ``None`` (already ids), ``'coco80'`` (contiguous 0..79 ->
    COCO ids, :data:`COCO80_TO_91`), a list (label -> id) or a dict.

    Example (mmdet 3.x, instance segmentation)::

        from mmdet.apis import inference_detector, init_detector
        model = init_detector('mask-rcnn_r50_fpn_1x_coco.py', 'mask_rcnn.pth', device='cpu')

        def mmdet_fn(images):
            results = inference_detector(model, [im[..., ::-1] for im in images])  # mmdet wants BGR
            return [dict(boxes=r.pred_instances.bboxes, scores=r.pred_instances.scores,
                         labels=r.pred_instances.labels, masks=r.pred_instances.masks) for r in results]

        machine = DetectorAdapter(mmdet_fn, task='ins', label_map='coco80', name='mask_rcnn_r50')

    Example (ultralytics, detection)::

        from ultralytics import YOLO
        yolo = YOLO('yolov8n.pt')

        def yolo_fn(images):
            results = yolo([im[..., ::-1] for im in images], verbose=False)  # numpy input is BGR
            return [dict(boxes=r.boxes.xyxy, scores=r.boxes.conf, labels=r.boxes.cls.int(),
                         masks=None) for r in results]

        machine = DetectorAdapter(yolo_fn, task='det', label_map='coco80', name='yolov8n')

    In a config, ``fn`` may be a dotted path (``'my_pkg.detectors:make_yolo'``); with
    ``build_kwargs`` it names a factory called once as ``fn(**build_kwargs)`` to get the callable.

    Args:
        fn: the callable, or its dotted path.
        task: ``'det'`` (boxes) or ``'ins'`` (masks).
        name: short name (default: the callable's name).
        label_map: see above.
        min_score: detections below this score are dropped on the way in.
        build_kwargs: see above.
        batch_size: images per ``fn`` call.
    """

    def __init__(self, fn: Union[Callable, str], task: str = 'det', name: Optional[str] = None,
                 label_map: Union[None, str, Sequence[int], Mapping[int, int]] = None, min_score: float = 0.0,
                 build_kwargs: Optional[Mapping[str, Any]] = None, batch_size: int = 8,
                 device: Optional[str] = 'auto', num_threads: Optional[int] = 1, tf32: bool = False) -> None:
        if task not in ('det', 'ins'):
            raise ValueError(f"DetectorAdapter task must be 'det' or 'ins', got {task!r}")
        origin = fn if isinstance(fn, str) else getattr(fn, '__qualname__', type(fn).__name__)
        fn = _import(fn) if isinstance(fn, str) else fn
        if build_kwargs is not None:
            fn = fn(**build_kwargs)
        if not callable(fn):
            raise TypeError(f'DetectorAdapter needs a callable, got {type(fn).__name__}')
        super().__init__(name or str(origin).rsplit('.', 1)[-1].rsplit(':', 1)[-1], batch_size, device,
                         num_threads, tf32)
        self.task, self.fn, self.origin, self.min_score = task, fn, str(origin), float(min_score)
        if isinstance(label_map, str):
            if label_map not in LABEL_MAPS:
                raise KeyError(f'label_map {label_map!r} unknown; choose from {sorted(LABEL_MAPS)}')
            self.label_map_name: Optional[str] = label_map
            label_map = LABEL_MAPS[label_map]
        else:
            self.label_map_name = None if label_map is None else 'custom'
        self.label_map = None if label_map is None else (
            dict(label_map) if isinstance(label_map, Mapping) else dict(enumerate(label_map)))

    def _convert(self, raw: Mapping[str, Any], image: np.ndarray, index: int) -> Detections:
        boxes = _numpy(raw.get('boxes'))
        scores, labels = _numpy(raw.get('scores')), _numpy(raw.get('labels'))
        masks = _numpy(raw.get('masks'))
        boxes = np.zeros((0, 4)) if boxes is None or boxes.size == 0 else boxes.astype(np.float64)
        k = len(boxes)
        scores = np.zeros(0) if scores is None else scores.astype(np.float64).reshape(-1)
        labels = np.zeros(0, np.int64) if labels is None else labels.astype(np.int64).reshape(-1)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or len(scores) != k or len(labels) != k:
            raise ValueError(f'{self.name}: image {index}: boxes must be (K, 4) with K scores and labels; '
                             f'got {boxes.shape}, {scores.shape}, {labels.shape}')
        if masks is not None:
            masks = masks.astype(bool).reshape(-1, *masks.shape[-2:]) if masks.size else \
                np.zeros((0, *image.shape[:2]), bool)
            if len(masks) != k or masks.shape[1:] != image.shape[:2]:
                raise ValueError(f'{self.name}: image {index}: masks must be (K, H, W) = ({k}, '
                                 f'{image.shape[0]}, {image.shape[1]}), got {masks.shape}')
        elif self.task == 'ins':
            raise ValueError(f'{self.name}: task ins needs masks; image {index} has none')
        if self.label_map is not None:
            unknown = sorted({int(v) for v in labels} - set(self.label_map))
            if unknown:
                raise ValueError(f'{self.name}: labels {unknown[:10]} are not in label_map')
            labels = np.array([self.label_map[int(v)] for v in labels], np.int64)
        keep = scores >= self.min_score
        return Detections(boxes=boxes[keep], scores=scores[keep], labels=labels[keep],
                          masks=None if masks is None else masks[keep])

    def predict(self, images: Sequence[Image]) -> List[Detections]:
        images = [check_image(im, i) for i, im in enumerate(images)]
        out: List[Detections] = []
        with self.running():
            for chunk in batches(images, self.batch_size):
                raw = list(self.fn(list(chunk)))
                if len(raw) != len(chunk):
                    raise ValueError(f'{self.name}: fn returned {len(raw)} results for {len(chunk)} images')
                out.extend(self._convert(r, im, len(out) + j) for j, (r, im) in enumerate(zip(raw, chunk)))
        return out

    def describe(self) -> Dict[str, Any]:
        return dict(super().describe(), fn=self.origin, label_map=self.label_map_name,
                    min_score=self.min_score)


__all__ = ['DetectorAdapter', 'LABEL_MAPS']
