"""Score many image files: :func:`batch_assess`.

Files are decoded and run through the model's test pipeline in DataLoader worker processes
(each worker gets the light :class:`~miqa.apis.inference.ImagePreprocessor`, never the model)
while the main process runs the model; scores come back in input order. An unreadable file
scores NaN and all of them are listed in one warning at the end (``strict=True`` raises on the
first instead).

Workers start from a ``forkserver`` (where the platform has one) rather than by forking this
process: a process that has run OpenCV (or OpenMP) code holds thread pools whose locks a forked
child inherits in whatever state they were, and we saw such a worker hang for good in its first
OpenCV call. The server imports this module once (``set_forkserver_preload``), so each worker
then starts in a fraction of a second.
"""
import math
import multiprocessing
import os
import warnings
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from miqa.utils.types import PathLike

from .inference import ImagePreprocessor, MIQAModel, collate

_MAX_LISTED = 20  # failed files named in the warning


class ImageFileDataset(Dataset):
    """Paths -> preprocessed items; a file that cannot be read gives a placeholder and its error."""

    def __init__(self, paths: Sequence[str], preprocessor: ImagePreprocessor) -> None:
        self.paths = list(paths)
        self.preprocessor = preprocessor
        self.placeholder = preprocessor.from_rgb(np.zeros((8, 8, 3), np.uint8))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        try:
            item = dict(self.preprocessor(self.paths[i]), error='')
        except (OSError, ValueError) as err:
            item = dict(self.placeholder, error=f'{type(err).__name__}: {err}')
        item['index'] = i
        return item


def _collate(items: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    batch = collate(items)
    batch['index'] = [it['index'] for it in items]
    batch['error'] = [it['error'] for it in items]
    return batch


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)  # workers share the cores with the model


def worker_context() -> Optional[multiprocessing.context.BaseContext]:
    """The ``forkserver`` context (preloading this module) where available, else ``None`` (the
    platform default, i.e. ``spawn`` on macOS and Windows)."""
    if 'forkserver' not in multiprocessing.get_all_start_methods():
        return None
    ctx = multiprocessing.get_context('forkserver')
    ctx.set_forkserver_preload([__name__])
    return ctx


def batch_assess(paths: Union[PathLike, Iterable[PathLike]], name: Optional[str] = None, task: str = 'cls',
                 label: str = 'composite', *, model: Optional[MIQAModel] = None,
                 config: Optional[PathLike] = None, checkpoint: Union[PathLike, bool, None] = None,
                 device: str = 'auto', batch_size: int = 32, num_workers: int = 2, strict: bool = False,
                 progress: bool = True, **model_kwargs: Any) -> np.ndarray:
    """Quality scores of image files, float64 array in the order of ``paths`` (NaN: unreadable).

    Args:
        paths: image files (a single path is accepted too).
        name (default ``'ra-miqa'``), task, label, config, checkpoint, device, **model_kwargs: build the
            :class:`~miqa.apis.inference.MIQAModel` (ignored when ``model`` is given);
            ``model_name=`` is the deprecated spelling of ``name=``.
        model: an already built model.
        batch_size: images per forward pass.
        num_workers: DataLoader worker processes that decode and preprocess (0: in this process).
        strict: raise ``OSError`` naming the first unreadable file instead of scoring it NaN.
        progress: show a tqdm progress bar.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    if batch_size < 1 or num_workers < 0:
        raise ValueError(f'batch_size must be >= 1 and num_workers >= 0, got {batch_size}, {num_workers}')
    if 'model_name' in model_kwargs:  # the seed README's spelling
        if name is not None:
            raise TypeError('batch_assess: pass name= or model_name=, not both')
        warnings.warn('batch_assess(model_name=) is deprecated: use name= (as MIQAModel, VideoMIQA and '
                      'RealTimeIQA do)', DeprecationWarning, stacklevel=2)
        name = model_kwargs.pop('model_name')
    if model is None:
        model = MIQAModel(name or 'ra-miqa', task, label, checkpoint=checkpoint, config=config, device=device,
                          **model_kwargs)
    scores = np.full(len(paths), np.nan, dtype=np.float64)
    if not paths:
        return scores
    workers = min(num_workers, math.ceil(len(paths) / batch_size))
    loader = DataLoader(ImageFileDataset(paths, model.preprocessor), batch_size=batch_size, shuffle=False,
                        num_workers=workers, collate_fn=_collate, pin_memory=model.device.type == 'cuda',
                        worker_init_fn=_worker_init if workers else None,
                        multiprocessing_context=worker_context() if workers else None)
    failed: List[str] = []
    with tqdm(total=len(paths), unit='img', disable=not progress, desc=f'MIQA {model.name}') as bar:
        for batch in loader:
            ok = [j for j, err in enumerate(batch['error']) if not err]
            for j, err in enumerate(batch['error']):
                if err:
                    path = paths[batch['index'][j]]
                    if strict:
                        raise OSError(f'cannot assess {path}: {err}')
                    failed.append(f'{path} ({err})')
            if ok:
                if len(ok) < len(batch['index']):
                    sel = torch.as_tensor(ok)
                    batch = dict(batch, inputs=batch['inputs'][sel],
                                 region_inputs=None if batch['region_inputs'] is None
                                 else batch['region_inputs'][sel])
                scores[[batch['index'][j] for j in ok]] = model.predict_batch(batch)
            bar.update(len(batch['index']))
    if failed:
        more = f' ... and {len(failed) - _MAX_LISTED} more' if len(failed) > _MAX_LISTED else ''
        warnings.warn(f'{len(failed)} of {len(paths)} images could not be read and score NaN: '
                      + '; '.join(failed[:_MAX_LISTED]) + more, stacklevel=2)
    return scores
