"""Assess images with a trained MIQA model: :class:`MIQAModel`.

``MIQAModel('ra-miqa', task='cls', label='composite')`` takes a published model from the zoo
(:mod:`miqa.apis.zoo`: its config, its weights in ``$MIQA_HOME/weights``, the authors' layout
converted by :mod:`miqa.models.converters`); ``MIQAModel(config=..., checkpoint=...)`` takes one
of this project's own (e.g. ``configs/demo/ra_miqa_mini.py`` and
``work_dirs/ra_miqa_mini/best_SRCC_iter_60.pth``).

Preprocessing is exactly the test pipeline of the model's config after ``LoadImage`` (for the
reference models: a square 288x288 warp, RA-MIQA's region view of that warp, a 224 centre
crop), then the model's ``MIQADataPreprocessor`` (normalisation on the device).

Inputs (:func:`load_image`):

- a path (``str`` / ``PathLike``): decoded as the training data loader does
  (:func:`miqa.utils.image.read_rgb`: grayscale -> 3 channels, alpha dropped, 16-bit
  scaled to 8-bit);
- a numpy array, **taken as BGR** (what ``cv2.imread`` returns): HxW (gray), HxWx3 (BGR),
  HxWx4 (BGRA, alpha dropped); uint8, uint16 (scaled by 1/257), bool or float in [0, 1] (NaN
  and infinity refused): the rules of :func:`miqa.utils.image.to_rgb_uint8`, which the dataset,
  the builder and the distortions share. Pass ``channel_order='rgb'`` for RGB arrays (e.g. from
  PIL, imageio, skimage);
- a PIL image (any mode; RGB after conversion);
- a torch tensor, **RGB**: 3xHxW or 1x3xHxW (also 1xHxW gray), uint8 or float in [0, 1].

Images whose longer side exceeds ``max_side`` (default 4096) are first shrunk to it with
``cv2.INTER_AREA`` (so a huge photo never fills memory; the reference warp to 288 would discard
that detail anyway); files whose header promises more than ~179 Mpx (PIL's decompression-bomb
limit, checked by :func:`~miqa.utils.image.read_rgb` before decoding, for every format) are
refused.
Unusable inputs raise ``ValueError`` / ``TypeError`` / ``OSError`` naming the input.
"""
import copy
import math
import os
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmengine.config import Config
from PIL import Image

from miqa.models.weights import load_model_weights
from miqa.registry import MODELS, TRANSFORMS
from miqa.utils.device import resolve_device
from miqa.utils.image import read_rgb, to_rgb_uint8
from miqa.utils.paths import resolve_config

from . import zoo

ImageInput = Union[str, os.PathLike, np.ndarray, Image.Image, torch.Tensor]
DEFAULT_MAX_SIDE = 4096


# --------------------------------------------------------------------------------------- images
def describe_input(image: Any) -> str:
    """A short human description of an input, for error messages."""
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    if isinstance(image, np.ndarray):
        return f'numpy array of shape {image.shape} and dtype {image.dtype}'
    if isinstance(image, torch.Tensor):
        return f'tensor of shape {tuple(image.shape)} and dtype {image.dtype}'
    if isinstance(image, Image.Image):
        return f'PIL image (mode {image.mode}, size {image.size})'
    return f'object of type {type(image).__name__}'


def _pil_to_rgb(img: Image.Image, what: str) -> np.ndarray:
    if img.mode.startswith('I;16') or img.mode in ('I', 'F'):
        arr = np.array(img)
        if arr.dtype != np.uint16 and img.mode.startswith('I;16'):
            arr = arr.astype(np.uint16)
        if img.mode == 'I':
            if arr.min() < 0 or arr.max() > 65535:
                raise ValueError(f'{what}: 32-bit integer pixels outside 0..65535')
            arr = arr.astype(np.uint16)
        return to_rgb_uint8(arr, 'rgb', what)
    return to_rgb_uint8(np.asarray(img.convert('RGB')), 'rgb', what)


def _tensor_to_rgb(t: torch.Tensor, what: str) -> np.ndarray:
    t = t.detach().cpu()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
        raise ValueError(f'{what}: expected a 3xHxW (or 1x3xHxW, 1xHxW) RGB tensor')
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return to_rgb_uint8(t.permute(1, 2, 0).numpy(), 'rgb', what)


def load_image(image: ImageInput, channel_order: str = 'bgr',
               max_side: Optional[int] = DEFAULT_MAX_SIDE) -> np.ndarray:
    """Any accepted input (see the module docstring) -> RGB uint8 HxWx3, longer side <= ``max_side``."""
    if channel_order not in ('bgr', 'rgb'):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    what = describe_input(image)
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.exists(path):
            raise FileNotFoundError(f'image not found: {path}')
        rgb = read_rgb(path)
    elif isinstance(image, np.ndarray):
        rgb = to_rgb_uint8(image, channel_order, what)
    elif isinstance(image, torch.Tensor):
        rgb = _tensor_to_rgb(image, what)
    elif isinstance(image, Image.Image):
        rgb = _pil_to_rgb(image, what)
    else:
        raise TypeError(f'cannot assess an {what}: pass a path, a numpy array (BGR, as cv2.imread '
                        'returns), a PIL image or an RGB torch tensor')
    h, w = rgb.shape[:2]
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return rgb


def _type_name(step: Mapping) -> str:
    t = step.get('type')
    return t.split('.')[-1] if isinstance(t, str) else getattr(t, '__name__', str(t))


class ImagePreprocessor:
    """The config's test pipeline after ``LoadImage``, for in-memory images (picklable, light:
    DataLoader workers receive this, never the model).

    ``__call__(image)`` -> ``dict(inputs=uint8 CxHxW tensor, region_inputs=tensor or None)``.
    """

    def __init__(self, pipeline: Sequence[Mapping], max_side: Optional[int] = DEFAULT_MAX_SIDE) -> None:
        steps = [dict(s) for s in pipeline]
        names = [_type_name(s) for s in steps]
        if 'LoadImage' not in names:
            raise ValueError(f'the test pipeline has no LoadImage step: {names}')
        self.pipeline = steps[names.index('LoadImage') + 1:]
        self.max_side = max_side
        self.transforms = [TRANSFORMS.build(copy.deepcopy(s)) for s in self.pipeline]

    def __call__(self, image: ImageInput, channel_order: str = 'bgr') -> Dict[str, Any]:
        return self.from_rgb(load_image(image, channel_order, self.max_side),
                             os.fspath(image) if isinstance(image, (str, os.PathLike)) else '')

    def from_rgb(self, rgb: np.ndarray, img_path: str = '') -> Dict[str, Any]:
        """Run the pipeline on an RGB uint8 HxWx3 array."""
        results: Optional[dict] = dict(img=rgb, img_path=img_path, img_shape=rgb.shape[:2],
                                       ori_shape=rgb.shape[:2], valid=True)
        for t in self.transforms:
            results = t(results)
            if results is None:
                raise ValueError(f'{t!r} dropped the image {img_path or "(in memory)"}')
        return dict(inputs=results['inputs'], region_inputs=results.get('region_inputs'))

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.transforms}, max_side={self.max_side})'


def collate(items: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """Stack :meth:`MIQAModel.preprocess` outputs into a batch for :meth:`MIQAModel.predict_batch`."""
    if not items:
        raise ValueError('collate: no items')
    regions = [it.get('region_inputs') for it in items]
    return dict(inputs=torch.stack([it['inputs'] for it in items]),
                region_inputs=None if regions[0] is None else torch.stack(regions))


# ----------------------------------------------------------------------------------- checkpoints
def _inference_model_cfg(model_cfg: Mapping) -> dict:
    """The model cfg with every ``pretrained`` switch off (the checkpoint brings all weights) and
    no feature cache (region tokens, frozen stem: each image at inference is new; a cache would
    only grow)."""
    def off(cfg: Any) -> Any:
        if isinstance(cfg, Mapping):
            return {k: False if k == 'pretrained' else off(v) for k, v in cfg.items()}
        return cfg

    cfg = off(model_cfg)
    if 'region_cache' in cfg:
        cfg['region_cache'] = False
    if isinstance(cfg.get('backbone'), Mapping) and 'stem_cache' in cfg['backbone']:
        cfg['backbone'] = dict(cfg['backbone'], stem_cache=False)
    return cfg


# ---------------------------------------------------------------------------------------- model
class MIQAModel:
    """A trained MIQA model ready to score images (higher = better for the machine).

    Args:
        name: a published model (``ra-miqa``, ``resnet18``, ``resnet50``, ``efficientnet-b1``,
            ``efficientnet-b5``, ``vit-small``; aliases such as ``RA-MIQA`` work), see
            :func:`miqa.list_models`. Ignored for weights when ``config`` is given (then only a
            display name, default the config's ``method``).
        task: downstream task the model was trained for: ``'cls'``, ``'det'`` or ``'ins'``.
        label: label type: ``'composite'``, ``'consistency'`` or ``'accuracy'``. With ``config``,
            both are read from the config's test dataset when it names them.
        checkpoint: a weight file; default: the zoo's (cached in ``$MIQA_HOME/weights``,
            downloaded when missing). With ``config``, required (``False``: random weights,
            for timing only).
        config: a config file (or ``mmengine.Config``) of this project's own model.
        device: ``'auto'`` (CUDA > MPS > CPU), or any torch device.
        sha256: pin the zoo file's SHA-256 (see :mod:`miqa.apis.zoo`).
        download: ``False`` never downloads (default: unless ``MIQA_OFFLINE=1``).
        bands: ``((name, lower bound), ...)`` from best to worst; default :attr:`BANDS`.
        max_side: longer side above which inputs are shrunk first (``None``: never).

    Attributes: ``cfg`` (mmengine ``Config``), ``model`` (the built ``MIQABaseModel``, eval mode,
    on ``device``), ``device``, ``preprocessor`` (:class:`ImagePreprocessor`), ``entry`` (the zoo
    row, or ``None``), ``checkpoint`` (the file loaded, or ``None``).
    """

    #: Quality bands (label units, which lie in [0, 1]): score >= 0.7 High, >= 0.4 Medium, else Low.
    BANDS: Tuple[Tuple[str, float], ...] = (('High', 0.7), ('Medium', 0.4), ('Low', -math.inf))

    def __init__(self, name: str = 'ra-miqa', task: str = 'cls', label: str = 'composite',
                 checkpoint: Union[str, os.PathLike, None, bool] = None,
                 config: Union[str, os.PathLike, Config, None] = None,
                 device: Union[str, torch.device] = 'auto', *, sha256: Optional[str] = None,
                 download: Optional[bool] = None,
                 bands: Optional[Sequence[Tuple[str, float]]] = None,
                 max_side: Optional[int] = DEFAULT_MAX_SIDE) -> None:
        from miqa.utils.setup_env import register_all_modules
        register_all_modules(init_default_scope=False)

        self.task, self.label = task, label
        self.entry: Optional[zoo.ZooEntry] = None
        if config is None:
            self.entry = zoo.get_model_entry(name, task, label)
            self.name = self.entry.name
            self.cfg = Config.fromfile(str(self.entry.config_path()))
            if checkpoint is None:
                checkpoint = zoo.fetch_weights(self.entry, sha256=sha256, download=download)
        else:
            self.cfg = config if isinstance(config, Config) else Config.fromfile(resolve_config(config))
            if checkpoint is None:
                raise ValueError('config= needs checkpoint= (a file saved by tools/train.py, e.g. '
                                 'work_dirs/<config>/best_SRCC_*.pth); checkpoint=False builds random '
                                 'weights (for timing only)')
            stem = None if isinstance(config, Config) else Path(os.fspath(config)).stem
            self.name = self.cfg.get('method') or stem or name
            dataset = self.cfg.get('test_dataloader', {}).get('dataset', {})
            self.task = dataset.get('task', task)
            self.label = dataset.get('label_type', label)
        self.config_file = getattr(self.cfg, 'filename', None)
        self.bands = tuple(bands) if bands is not None else self.BANDS
        self.device = resolve_device(device, mps=True)

        self.model = MODELS.build(_inference_model_cfg(self.cfg.model.to_dict()))
        self.checkpoint: Optional[str] = None
        if checkpoint is False:
            warnings.warn(f'MIQAModel: {self.name} has RANDOM weights (checkpoint=False): scores are '
                          'meaningless', stacklevel=2)
        else:
            load_model_weights(self.model, checkpoint, self.entry.arch if self.entry else None)
            self.checkpoint = os.fspath(checkpoint)
        self.model.to(self.device).eval()

        pipeline = self.cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline')
        if not pipeline:
            raise ValueError(f'config {self.config_file} has no test_dataloader.dataset.pipeline')
        self.preprocessor = ImagePreprocessor(pipeline, max_side=max_side)

    # ------------------------------------------------------------------------------ pieces
    def preprocess(self, image: ImageInput, channel_order: str = 'bgr') -> Dict[str, Any]:
        """One image -> ``dict(inputs=uint8 CxHxW, region_inputs=uint8 CxHxW or None)``:
        the config's test pipeline after ``LoadImage``."""
        return self.preprocessor(image, channel_order)

    collate = staticmethod(collate)

    @torch.inference_mode()
    def predict_batch(self, batch: Mapping[str, Any]) -> np.ndarray:
        """Stacked (or listed) :meth:`preprocess` outputs -> scores, float64 array (N,)."""
        inputs, region = batch['inputs'], batch.get('region_inputs')
        if isinstance(inputs, (list, tuple)):
            inputs = torch.stack(list(inputs))
        if isinstance(region, (list, tuple)):
            region = torch.stack(list(region))
        data = self.model.data_preprocessor(dict(inputs=inputs, region_inputs=region), False)
        scores = self.model(data['inputs'], region_inputs=data.get('region_inputs'), mode='tensor')
        return scores.detach().float().cpu().numpy().astype(np.float64).reshape(-1)

    def band(self, score: float) -> str:
        """The quality band of ``score`` (see :attr:`BANDS`); ``'Unknown'`` for NaN."""
        if score is None or math.isnan(score):
            return 'Unknown'
        return next((name for name, low in self.bands if score >= low), self.bands[-1][0])

    def identity(self) -> Dict[str, Any]:
        """The model identity reported with each result."""
        out = dict(model=self.name, task=self.task, label=self.label, config=self.config_file,
                   checkpoint=self.checkpoint, device=str(self.device))
        if self.entry is not None:
            out.update(reference_srcc=self.entry.srcc, reference_plcc=self.entry.plcc)
        return out

    # ------------------------------------------------------------------------------ public
    def assess(self, image: ImageInput, return_dict: bool = False,
               channel_order: str = 'bgr') -> Union[float, Dict[str, Any]]:
        """Quality score of one image (numpy arrays are BGR unless ``channel_order='rgb'``).

        Returns a float, or with ``return_dict=True``
        ``dict(score, band, model, task, label, config, checkpoint, device, ...)``.
        """
        score = float(self.predict_batch(collate([self.preprocess(image, channel_order)]))[0])
        if not return_dict:
            return score
        out = dict(score=score, band=self.band(score), **self.identity())
        if isinstance(image, (str, os.PathLike)):
            out['image'] = os.fspath(image)
        return out

    __call__ = assess

    def assess_many(self, images: Iterable[ImageInput], batch_size: int = 16,
                    channel_order: str = 'bgr') -> np.ndarray:
        """Scores of in-memory images or paths, in order, in batches (no worker processes; for
        many files use :func:`miqa.batch_assess`)."""
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        scores: List[np.ndarray] = []
        chunk: List[Dict[str, Any]] = []
        for image in images:
            chunk.append(self.preprocess(image, channel_order))
            if len(chunk) == batch_size:
                scores.append(self.predict_batch(collate(chunk)))
                chunk = []
        if chunk:
            scores.append(self.predict_batch(collate(chunk)))
        return np.concatenate(scores) if scores else np.zeros(0, np.float64)

    def __repr__(self) -> str:
        return (f'MIQAModel(name={self.name!r}, task={self.task!r}, label={self.label!r}, '
                f'checkpoint={self.checkpoint!r}, device={str(self.device)!r})')
