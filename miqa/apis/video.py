"""Video assessment: per-frame MIQA scores over time, their summary and degradation segments.

:class:`VideoMIQA` decodes a video with OpenCV (one frame in ``every_n``, streamed in batches so
memory stays flat), scores the frames with an image model (:class:`~miqa.apis.inference.MIQAModel`
or any object with its ``assess_many``), and reports

- per-frame scores with timestamps ``t = frame_index / fps``;
- ``mean_score`` / ``min_score`` / ``max_score`` / ``std_score`` (population std, ddof=0);
- per-second aggregation (frames grouped by ``floor(t)``);
- degradation segments: runs of the smoothed score below ``threshold`` lasting at least
  ``min_duration_s`` seconds (:func:`find_segments`);
- with ``save_dir``: a JSON report and a PNG plot (raw and smoothed scores, threshold, segments);
  with ``annotate=True`` also an MP4 with each assessed frame and its score drawn on it.

The arithmetic lives in pure functions on arrays (:func:`frame_times`, :func:`summary_stats`,
:func:`per_second`, :func:`smooth_scores`, :func:`find_segments`), usable without a model.
MIQA scores are predictions of labels in [0, 1] (spec §1), higher = better for the machine.
"""
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from miqa.utils.image_header import identify
from miqa.utils.io import atomic_write_bytes, atomic_write_text, unique_path
from miqa.utils.types import PathLike

#: Degradation threshold for scorers without quality bands: the upper edge of the 'Low' band of
#: ``MIQAModel.BANDS`` (labels lie in [0, 1]).
DEFAULT_THRESHOLD = 0.4


# ----------------------------------------------------------------------------- pure functions
def frame_times(indices: Sequence[int], fps: float) -> np.ndarray:
    """Timestamps in seconds of frames ``indices`` of a constant-rate video: ``index / fps``."""
    if not fps > 0:
        raise ValueError(f'fps must be positive, got {fps}')
    return np.asarray(indices, dtype=np.float64) / float(fps)


def summary_stats(scores: Sequence[float]) -> Dict[str, float]:
    """``mean_score``, ``min_score``, ``max_score``, ``std_score`` (population std, ddof=0)
    of the finite scores (NaN when there are none)."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return dict(mean_score=math.nan, min_score=math.nan, max_score=math.nan, std_score=math.nan)
    return dict(mean_score=float(s.mean()), min_score=float(s.min()), max_score=float(s.max()),
                std_score=float(s.std()))


def per_second(times: Sequence[float], scores: Sequence[float]) -> List[Dict[str, float]]:
    """Scores grouped by whole second ``floor(t)``: one dict per second that has frames, in
    time order, with ``second``, ``mean``, ``min``, ``max`` and ``num_frames``."""
    t = np.asarray(times, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if t.shape != s.shape:
        raise ValueError(f'{t.size} timestamps for {s.size} scores')
    seconds = np.floor(t + 1e-9).astype(np.int64)  # 1e-9: 3 / 3.0 style rounding stays in its second
    out = []
    for sec in np.unique(seconds):
        v = s[seconds == sec]
        out.append(dict(second=int(sec), mean=float(v.mean()), min=float(v.min()), max=float(v.max()),
                        num_frames=int(v.size)))
    return out


def smooth_scores(scores: Sequence[float], window: int) -> np.ndarray:
    """Centred moving average over ``window`` samples (an odd count; an even one is raised by 1):
    each value is the mean of the finite samples within ``window // 2`` of it, so the ends (and
    NaN gaps) average fewer samples instead of being padded. ``window <= 1`` returns the scores."""
    s = np.asarray(scores, dtype=np.float64)
    if window <= 1 or s.size == 0:
        return s.copy()
    half = int(window) // 2
    idx = np.arange(s.size)
    lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, s.size)
    finite = np.isfinite(s)
    total = np.concatenate([[0.0], np.cumsum(np.where(finite, s, 0.0))])
    count = np.concatenate([[0], np.cumsum(finite)])
    n = count[hi] - count[lo]
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(n > 0, (total[hi] - total[lo]) / np.maximum(n, 1), np.nan)


def smoothing_window(smooth_s: float, sample_period_s: float) -> int:
    """Samples in a ``smooth_s``-second window at one sample every ``sample_period_s`` (odd, >= 1)."""
    if smooth_s <= 0:
        return 1
    n = max(1, int(round(smooth_s / sample_period_s)))
    return n if n % 2 else n + 1


def find_segments(times: Sequence[float], scores: Sequence[float], threshold: float,
                  min_duration_s: float, sample_period_s: float,
                  values: Optional[Sequence[float]] = None) -> List[Dict[str, float]]:
    """Degradation segments: maximal runs of consecutive samples with ``scores < threshold``.

    Sample ``i`` stands for the interval ``[t_i, t_i + sample_period_s)``, so a run of samples
    ``i..j`` spans ``start = t_i`` to ``end = t_j + sample_period_s``; it is kept when
    ``end - start >= min_duration_s``. Each segment reports ``start``, ``end``, ``duration`` (s),
    ``first``/``last`` (sample positions in the arrays), and ``min_score``/``mean_score`` of
    ``values`` over the run (default: ``scores`` themselves; pass the raw scores when ``scores``
    are smoothed).
    """
    t = np.asarray(times, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    v = s if values is None else np.asarray(values, dtype=np.float64)
    if not t.shape == s.shape == v.shape:
        raise ValueError(f'times, scores and values differ in length: {t.size}, {s.size}, {v.size}')
    below = s < threshold  # NaN compares False: an unscored sample ends a run
    edges = np.diff(np.concatenate([[0], below.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # stop is exclusive
    segments = []
    for first, stop in zip(starts, stops):
        last = stop - 1
        start, end = float(t[first]), float(t[last] + sample_period_s)
        if end - start + 1e-9 < min_duration_s:
            continue
        run = v[first:stop]
        segments.append(dict(start=start, end=end, duration=end - start, first=int(first), last=int(last),
                             min_score=float(np.nanmin(run)), mean_score=float(np.nanmean(run))))
    return segments


# ----------------------------------------------------------------------------- video reading
class VideoReadError(OSError):
    """A video that cannot be opened or holds no decodable frame (the message names the file)."""


def _open(path: str) -> cv2.VideoCapture:
    if not os.path.exists(path):
        raise FileNotFoundError(f'video not found: {path}')
    if os.path.isdir(path):
        raise VideoReadError(f'cannot read video {path}: it is a folder, not a video file')
    if os.path.getsize(path) == 0:
        raise VideoReadError(f'cannot read video {path}: the file is empty (0 bytes)')
    with open(path, 'rb') as f:
        still = identify(f.read(64))
    if still is not None and still != 'GIF':  # OpenCV would play a still image as a 1-frame video
        raise VideoReadError(f'{path} is a still image ({still}), not a video: score it with `miqa assess` '
                             '(MIQAModel.assess)')
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()
        raise VideoReadError(f'cannot open video {path}: not a video file, an empty or truncated video (no '
                             'frames written), or a codec that this OpenCV build '
                             f'({cv2.__version__}, FFmpeg backend) cannot decode; re-encode it, e.g. '
                             '`ffmpeg -i IN -c:v libx264 OUT.mp4`')
    return cap


def read_frames(path: PathLike, every_n: int = 1, max_frames: Optional[int] = None,
                fps: Optional[float] = None) -> Tuple[float, int, Iterator[Tuple[int, np.ndarray]]]:
    """Open ``path`` and return ``(fps, reported_frame_count, frames)``; ``frames`` yields
    ``(frame_index, BGR uint8 HxWx3)`` for every ``every_n``-th frame (index 0, n, 2n, ...),
    at most ``max_frames`` of them. Skipped frames are only grabbed (``cap.grab()``: no colour
    conversion or copy). Timestamps assume a constant frame rate (for variable-rate videos they
    are nominal).

    ``fps`` overrides the container's frame rate (needed when it reports none).
    Raises :class:`FileNotFoundError` / :class:`VideoReadError` naming the file; the iterator
    raises :class:`VideoReadError` when the video yields no frame at all.
    """
    if every_n < 1:
        raise ValueError(f'every_n must be >= 1, got {every_n}')
    if max_frames is not None and max_frames < 1:
        raise ValueError(f'max_frames must be >= 1 or None, got {max_frames}')
    path = os.fspath(path)
    cap = _open(path)
    rate = float(fps) if fps else cap.get(cv2.CAP_PROP_FPS)
    if not (math.isfinite(rate) and rate > 0):
        cap.release()
        raise VideoReadError(f'video {path} reports no frame rate; pass fps= to set it')
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def frames() -> Iterator[Tuple[int, np.ndarray]]:
        index = yielded = 0
        try:
            while max_frames is None or yielded < max_frames:
                if index % every_n:
                    ok = cap.grab()
                    frame = None
                else:
                    ok, frame = cap.read()
                if not ok:
                    break
                if frame is not None:
                    if frame.ndim == 2:
                        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
                    yield index, frame
                    yielded += 1
                index += 1
        finally:
            cap.release()
        if yielded == 0:
            raise VideoReadError(f'video {path} has no decodable frames (empty or corrupt file; '
                                 f'the container reports {count} frames)')

    return rate, count, frames()


# ----------------------------------------------------------------------------- outputs
def _json_safe(obj: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python numbers, so the JSON is strict."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def plot_scores(report: Dict[str, Any], title: str = '') -> bytes:
    """PNG (bytes) of the raw and smoothed scores over time, the threshold and the segments.
    Uses matplotlib's object API with the Agg canvas (no pyplot state, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    t = np.asarray(report['timestamps'], dtype=float)
    raw = np.asarray([np.nan if v is None else v for v in report['scores']], dtype=float)
    smooth = np.asarray([np.nan if v is None else v for v in report['smoothed_scores']], dtype=float)
    for i, seg in enumerate(report['segments']):
        ax.axvspan(seg['start'], seg['end'], color='tab:red', alpha=0.15,
                   label='degraded segment' if i == 0 else None)
    ax.plot(t, raw, color='tab:blue', lw=0.8, alpha=0.5, marker='.', ms=2, label='score (per frame)')
    ax.plot(t, smooth, color='tab:blue', lw=2.0, label=f'smoothed ({report["smooth_s"]:g} s window)')
    ax.axhline(report['threshold'], color='tab:red', ls='--', lw=1,
               label=f'threshold {report["threshold"]:g}')
    ax.set_xlabel('time (s)')
    ax.set_ylabel('MIQA score')
    ax.set_title(title or os.path.basename(report['video']))
    ax.grid(alpha=0.3)
    ax.legend(loc='best', fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    return buf.getvalue()


def draw_score(frame: np.ndarray, score: float, threshold: float,
               time_s: Optional[float] = None) -> np.ndarray:
    """Draw ``score`` (green at or above ``threshold``, red below) and a bar for it in [0, 1] on the
    BGR ``frame`` (modified in place and returned)."""
    h, w = frame.shape[:2]
    ok = math.isfinite(score) and score >= threshold
    color = (0, 200, 0) if ok else (0, 0, 255)
    scale = max(0.4, min(h, w) / 480)
    thick = max(1, int(round(2 * scale)))
    text = f'MIQA {score:.3f}' + (f'  t={time_s:.2f}s' if time_s is not None else '')
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(frame, (0, 0), (min(w, tw + 12), th + base + 12), (0, 0, 0), -1)
    cv2.putText(frame, text, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)
    bar = int(round((w - 1) * float(np.clip(score if math.isfinite(score) else 0.0, 0.0, 1.0))))
    cv2.rectangle(frame, (0, h - max(4, h // 40)), (bar, h - 1), color, -1)
    return frame


class _AnnotatedWriter:
    """MP4 ('mp4v') written to a temporary file beside ``path`` and moved there on :meth:`close`."""

    def __init__(self, path: str, fps: float) -> None:
        self.path, self.fps = path, fps
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.tmp = os.path.join(folder, f'.tmp_{os.getpid()}_{os.path.basename(path)}')
        self.writer: Optional[cv2.VideoWriter] = None

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            h, w = frame.shape[:2]
            self.writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*'mp4v'), self.fps, (w, h))
            if not self.writer.isOpened():
                raise OSError(f'cannot write the annotated video {self.path} (OpenCV has no mp4v encoder?)')
        self.writer.write(frame)

    def close(self, keep: bool = True) -> None:
        if self.writer is not None:
            self.writer.release()
        if keep and os.path.exists(self.tmp):
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.unlink(self.tmp)


# ----------------------------------------------------------------------------- the assessor
class VideoMIQA:
    """Frame-by-frame MIQA of a video file.

    Args:
        name, task, label, checkpoint, config, device, **model_kwargs (``sha256``, ``download``,
            ``bands``, ``max_side``): as for :class:`~miqa.apis.inference.MIQAModel`, which is
            built from them unless ``model`` is given.
        model: an existing scorer to use instead: a ``MIQAModel``, or any object with
            ``assess_many(frames, batch_size=...) -> array of scores`` taking a list of BGR uint8
            HxWx3 arrays (OpenCV's frame layout), e.g. a classical sharpness measure.

    Example::

        video_iqa = VideoMIQA('ra-miqa')
        results = video_iqa.assess_video('path/to/video.mp4', save_dir='out/')
        print(results['mean_score'], results['segments'])
    """

    def __init__(self, name: str = 'ra-miqa', task: str = 'cls', label: str = 'composite',
                 checkpoint: Optional[PathLike] = None, config: Optional[PathLike] = None,
                 device: str = 'auto', model: Any = None, **model_kwargs: Any) -> None:
        if model is None:
            from .inference import MIQAModel
            model = MIQAModel(name, task, label, checkpoint=checkpoint, config=config, device=device,
                              **model_kwargs)
        if not callable(getattr(model, 'assess_many', None)):
            raise TypeError('model must have assess_many(frames, batch_size=...), '
                            f'got {type(model).__name__}')
        self.model = model

    def _identity(self) -> Dict[str, Any]:
        describe = getattr(self.model, 'identity', None)  # MIQAModel.identity()
        return dict(describe()) if callable(describe) else dict(model=type(self.model).__name__)

    def default_threshold(self) -> float:
        """Upper edge of the model's lowest quality band (``MIQAModel.BANDS``: 0.4, below which a
        score is 'Low'); :data:`DEFAULT_THRESHOLD` for a scorer without bands."""
        bands = getattr(self.model, 'bands', None)
        return float(bands[-2][1]) if bands and len(bands) > 1 else DEFAULT_THRESHOLD

    def assess_video(self, path: PathLike, every_n: int = 1, max_frames: Optional[int] = None,
                     batch_size: int = 16, threshold: Optional[float] = None, min_duration_s: float = 1.0,
                     smooth: float = 1.0, save_dir: Optional[PathLike] = None, annotate: bool = False,
                     fps: Optional[float] = None) -> Dict[str, Any]:
        """Score one frame in ``every_n`` (at most ``max_frames``) of the video at ``path``.

        Args:
            batch_size: frames per model call (frames are decoded and scored in chunks).
            threshold: a smoothed score below it counts as degraded; default
                :meth:`default_threshold` (0.4 for ``MIQAModel``: the 'Low' band).
            min_duration_s: shortest degraded run reported as a segment, in seconds.
            smooth: width in seconds of the centred moving average (:func:`smooth_scores`) used
                for the plot and the segments; ``0`` uses the raw scores.
            save_dir: folder for ``<stem>_miqa.json`` and ``<stem>_miqa.png`` (and, with
                ``annotate``, ``<stem>_miqa.mp4``); existing files are never overwritten (a
                timestamped name is used instead). Paths are in ``results['outputs']``.
            annotate: write the annotated MP4 (needs ``save_dir``): each assessed frame with its
                score, at ``fps / every_n`` frames per second.
            fps: override the frame rate the container reports.

        Returns:
            a JSON-ready dict: ``video``, ``fps``, ``frame_count`` (as reported by the
            container), ``num_frames`` (assessed), ``every_n``, ``duration_s``, ``mean_score``,
            ``min_score``, ``max_score``, ``std_score``, the per-frame columns ``frame_indices``,
            ``timestamps``, ``scores``, ``smoothed_scores``, ``per_second``, ``segments``
            (:func:`find_segments`), ``threshold``, ``min_duration_s``, ``smooth_s``, ``model``
            and ``outputs``.

        Raises:
            FileNotFoundError / VideoReadError (an ``OSError``) naming the file when it is missing,
            not a decodable video, or holds no frame.
        """
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        if annotate and save_dir is None:
            raise ValueError('annotate=True writes a video: give save_dir')
        threshold = self.default_threshold() if threshold is None else float(threshold)
        for name, value in (('threshold', threshold), ('min_duration_s', min_duration_s), ('smooth', smooth)):
            if not math.isfinite(value) or (name != 'threshold' and value < 0):
                raise ValueError(f'{name} must be a finite number' + (' >= 0' if name != 'threshold' else '')
                                 + f', got {value}')
        path = os.fspath(path)
        rate, count, frames = read_frames(path, every_n=every_n, max_frames=max_frames, fps=fps)
        period = every_n / rate

        outputs: Dict[str, str] = {}
        stem = Path(path).stem
        writer = None
        if annotate:
            outputs['video'] = unique_path(os.path.join(os.fspath(save_dir), f'{stem}_miqa.mp4'))
            writer = _AnnotatedWriter(outputs['video'], rate / every_n)

        indices: List[int] = []
        scores: List[float] = []
        try:
            chunk: List[Tuple[int, np.ndarray]] = []
            for item in frames:
                chunk.append(item)
                if len(chunk) == batch_size:
                    self._score_chunk(chunk, indices, scores, rate, threshold, writer)
                    chunk = []
            if chunk:
                self._score_chunk(chunk, indices, scores, rate, threshold, writer)
        except BaseException:
            if writer is not None:
                writer.close(keep=False)
            raise
        if writer is not None:
            writer.close()

        times = frame_times(indices, rate)
        raw = np.asarray(scores, dtype=np.float64)
        smoothed = smooth_scores(raw, smoothing_window(smooth, period))
        report: Dict[str, Any] = dict(
            video=os.path.abspath(path), fps=rate, frame_count=count, num_frames=len(indices),
            every_n=every_n, duration_s=float(times[-1] + period),
            **summary_stats(raw),
            frame_indices=indices, timestamps=times.tolist(), scores=raw.tolist(),
            smoothed_scores=smoothed.tolist(),
            per_second=per_second(times, raw),
            segments=find_segments(times, smoothed, threshold, min_duration_s, period, values=raw),
            threshold=float(threshold), min_duration_s=float(min_duration_s), smooth_s=float(smooth),
            model=self._identity(), outputs=outputs)
        report = _json_safe(report)
        if save_dir is not None:
            save_dir = os.fspath(save_dir)
            outputs['json'] = unique_path(os.path.join(save_dir, f'{stem}_miqa.json'))
            outputs['plot'] = unique_path(os.path.join(save_dir, f'{stem}_miqa.png'))
            report['outputs'] = outputs
            atomic_write_bytes(outputs['plot'], plot_scores(report))
            atomic_write_text(outputs['json'], json.dumps(report, indent=1, allow_nan=False) + '\n')
        return report

    def _score_chunk(self, chunk: List[Tuple[int, np.ndarray]], indices: List[int], scores: List[float],
                     rate: float, threshold: float, writer: Optional[_AnnotatedWriter]) -> None:
        frames = [frame for _, frame in chunk]
        values = np.asarray(self.model.assess_many(frames, batch_size=len(frames)), np.float64).reshape(-1)
        if values.size != len(frames):
            raise RuntimeError(f'the model returned {values.size} scores for {len(frames)} frames')
        for (index, frame), value in zip(chunk, values):
            indices.append(index)
            scores.append(float(value))
            if writer is not None:
                writer.write(draw_score(frame, float(value), threshold, index / rate))
