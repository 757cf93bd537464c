"""Real-time assessment of camera or stream frames: :class:`RealTimeIQA`.

Built once: the model (:class:`~miqa.apis.inference.MIQAModel`, eval mode, on its device), the
RGB frame buffer and, on an accelerator, page-locked host buffers and device buffers of the
batch-of-one inputs (the host-to-device copy is then asynchronous). Per frame:

1. BGR -> RGB with ``cv2.cvtColor`` into the reused buffer (the channel flip ``MIQAModel`` does
   for BGR arrays);
2. the config's test pipeline after ``LoadImage`` (``MIQAModel.preprocessor``: for the reference
   models a 288x288 PIL-bilinear warp, the region view of that warp and a 224 centre crop), so
   a frame gets exactly the preprocessing the model was evaluated with -- a cheaper OpenCV
   resize would change the pixels (``cv2.INTER_LINEAR`` aliases on downscaling: up to 48 grey
   levels off on a 640x480 photo) and, for a model that judges sharpness, the score;
3. the model's ``MIQADataPreprocessor`` (normalisation) and forward, under ``inference_mode``.

Frames that are not C-contiguous uint8 BGR HxWx3 (gray, BGRA, 16-bit, float, a flipped view,
larger than ``max_side``) take ``MIQAModel.preprocess`` instead, so they are scored as
``MIQAModel.assess`` scores them.

Options for camera loops: ``skip=k`` scores one frame and returns that score for the next ``k``
frames; ``ema=alpha`` returns the exponential moving average
``s_t = alpha * x_t + (1 - alpha) * s_{t-1}`` (``s_0 = x_0``) of the scored frames.
"""
import math
import time
from typing import Any, Dict, Optional, Union

import cv2
import numpy as np
import torch

from miqa.utils.types import PathLike


class RealTimeIQA:
    """Score a stream of frames one at a time (``assess_frame``), with frame skipping and smoothing.

    Args:
        name, task, label, checkpoint, config, device, **model_kwargs (``sha256``, ``download``,
            ``bands``, ``max_side``): as for :class:`~miqa.apis.inference.MIQAModel`, built from
            them unless ``model`` is given.
        model: an existing ``MIQAModel`` to use instead (shared, not copied).
        skip: frames to skip after each scored one (``0``: score every frame); a skipped frame
            returns the last score.
        ema: smoothing factor ``alpha`` in (0, 1] of the exponential moving average of scores
            (``None``: no smoothing; ``1`` is the same as ``None``).

    Attributes: ``model`` (the ``MIQAModel``, as :class:`~miqa.apis.video.VideoMIQA` keeps it),
    ``last_score`` (what the last call returned), ``last_raw_score`` (the model's
    last output), ``frames_seen``, ``frames_scored``, ``last_latency_s`` (preprocessing +
    forward of the last scored frame).

    Example (a webcam loop; see ``demo/realtime_camera.py``)::

        rt = RealTimeIQA('ra-miqa', skip=2, ema=0.3)
        ok, frame = cap.read()
        score = rt.assess_frame(frame)   # BGR, as OpenCV returns it
    """

    def __init__(self, name: str = 'ra-miqa', task: str = 'cls', label: str = 'composite',
                 checkpoint: Union[PathLike, None, bool] = None, config: Any = None,
                 device: Union[str, torch.device] = 'auto', model: Any = None, skip: int = 0,
                 ema: Optional[float] = None, **model_kwargs: Any) -> None:
        if int(skip) != skip or skip < 0:
            raise ValueError(f'skip must be an integer >= 0, got {skip}')
        if ema is not None and not 0 < ema <= 1:
            raise ValueError(f'ema must lie in (0, 1] (the weight of the newest score), got {ema}')
        if model is None:
            from .inference import MIQAModel
            model = MIQAModel(name, task, label, checkpoint=checkpoint, config=config, device=device,
                              **model_kwargs)
        for attr in ('model', 'preprocessor', 'preprocess', 'device'):
            if not hasattr(model, attr):
                raise TypeError(f'model must be a MIQAModel (it lacks .{attr}), got {type(model).__name__}')
        self.model = model
        self.skip, self.ema = int(skip), ema
        self.device = torch.device(model.device)
        self._rgb: Optional[np.ndarray] = None  # reused BGR -> RGB buffer
        self._host: Dict[str, torch.Tensor] = {}  # pinned batch-of-one buffers (accelerators only)
        self._dev: Dict[str, torch.Tensor] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the smoothing state and the skip counter (e.g. when the stream changes)."""
        self.last_score = math.nan
        self.last_raw_score = math.nan
        self.frames_seen = self.frames_scored = 0
        self.last_latency_s = math.nan
        self._countdown = 0

    # ------------------------------------------------------------------------------ pieces
    def _prepare(self, frame: Any) -> Dict[str, Any]:
        """One frame -> ``dict(inputs, region_inputs)`` (uint8 CxHxW tensors), see the module doc."""
        pre = self.model.preprocessor
        fast = (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3
                and frame.shape[2] == 3 and frame.size > 0 and frame.flags.c_contiguous
                and not (pre.max_side and max(frame.shape[:2]) > pre.max_side))
        if not fast:
            return self.model.preprocess(frame)
        if self._rgb is None or self._rgb.shape != frame.shape:
            self._rgb = np.empty_like(frame)
        cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=self._rgb)
        return pre.from_rgb(self._rgb)

    def _batch_of_one(self, item: Dict[str, Any]) -> Dict[str, Optional[torch.Tensor]]:
        """The item as a batch of one on the model's device. On the CPU the pipeline's tensors are
        used as they are (a view, no copy); on an accelerator they are copied once into pinned
        host buffers, then asynchronously into device buffers, all allocated on first use."""
        batch: Dict[str, Optional[torch.Tensor]] = {}
        for key in ('inputs', 'region_inputs'):
            t = item.get(key)
            if t is None:
                batch[key] = None
                continue
            if self.device.type == 'cpu':
                batch[key] = t.unsqueeze(0)
                continue
            host = self._host.get(key)
            if host is None or host.shape[1:] != t.shape or host.dtype != t.dtype:
                host = torch.empty((1, *t.shape), dtype=t.dtype, pin_memory=self.device.type == 'cuda')
                self._host[key] = host
                self._dev[key] = torch.empty_like(host, device=self.device)
            host[0].copy_(t)
            self._dev[key].copy_(host, non_blocking=True)
            batch[key] = self._dev[key]
        return batch

    @torch.inference_mode()
    def _score(self, frame: Any) -> float:
        batch = self._batch_of_one(self._prepare(frame))
        net = self.model.model
        data = net.data_preprocessor(batch, False)
        return float(net(data['inputs'], region_inputs=data.get('region_inputs'), mode='tensor')[0])

    # ------------------------------------------------------------------------------ public
    def assess_frame(self, frame: Any) -> float:
        """Score of a frame (a BGR uint8 HxWx3 array as ``cv2.VideoCapture.read`` returns it, or
        anything ``MIQAModel.assess`` accepts), smoothed when ``ema`` is set; a skipped frame
        returns the previous score."""
        self.frames_seen += 1
        if self._countdown > 0 and self.frames_scored:
            self._countdown -= 1
            return self.last_score
        start = time.perf_counter()
        raw = self._score(frame)
        self.last_latency_s = time.perf_counter() - start
        self.frames_scored += 1
        self._countdown = self.skip
        self.last_raw_score = raw
        if self.ema is None or self.frames_scored == 1 or not math.isfinite(self.last_score):
            self.last_score = raw
        else:
            self.last_score = self.ema * raw + (1.0 - self.ema) * self.last_score
        return self.last_score

    __call__ = assess_frame

    def __repr__(self) -> str:
        return f'RealTimeIQA({self.model!r}, skip={self.skip}, ema={self.ema})'
