"""Data transforms of the MIQA pipelines (docs/CONTRACTS.md, spec §6).

Reference train pipeline: ``LoadImage -> Resize(288) -> [RegionView(288) ->] RandomCrop(224) ->
PackMIQAInputs``; eval uses ``CenterCrop(224)``. Tensors leave the pipeline as uint8 and the
model's ``MIQADataPreprocessor`` normalises them on the device (``Normalize`` does it on the CPU
for code that wants float tensors from the pipeline). Each transform is a plain class
whose ``__call__(results) -> results`` mmengine's ``Compose`` chains; they reproduce the
reference torchvision pipeline on PIL images (PIL's bilinear warp, torchvision crop rounding,
ToTensor + Normalize arithmetic).

The warp (``WARPS``): ``'torch'`` (default) is PIL's bilinear filter -- a triangle filter widened
by the scale factor when downscaling, i.e. antialiased -- as ``torch.nn.functional.interpolate
(mode='bilinear', antialias=True)`` computes it on uint8 (the fixed-point port of Pillow-SIMD's
resampler): at most 1/255 from PIL on any pixel (tests/test_transforms.py), 4-5x faster on one
core at 500x375 -> 288x288 (benchmarks/bench_dataloader.py). ``'pil'`` is the reference itself.

Deterministic geometric steps record what they did (``results['img_ops']``), so ``RegionView``
can key its view by content and, when the model already holds that image's region token, not
build the view at all (:mod:`miqa.models.region_cache`).
"""
import json
import logging
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
import xxhash
from mmengine.logging import print_log
from PIL import Image

from miqa.registry import TRANSFORMS
from miqa.utils.image import read_rgb
from miqa.utils.shared_keys import shared_key_index
from miqa.vocab import IMAGENET_MEAN, IMAGENET_STD

VIT_MEAN = (0.5, 0.5, 0.5)
VIT_STD = (0.5, 0.5, 0.5)

Size = Union[int, Sequence[int]]


def _hw(size: Size) -> Tuple[int, int]:
    """``(h, w)`` of an int (square) or a ``(h, w)`` pair."""
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


@TRANSFORMS.register_module()
class LoadImage:
    """Read ``results['img_path']`` into ``results['img']`` (RGB uint8 HxWx3).

    Args:
        on_error: what an unreadable, missing or empty file does. ``'skip'``: return None
            and log a warning with the path and a running count (training: mmengine refetches
            another index). ``'flag'``: a black image of ``flag_size`` and
            ``results['valid'] = False`` (evaluation: the sample keeps its place and the
            metric excludes it). ``'error'``: raise ``OSError`` naming the file.
        flag_size: ``(h, w)`` of the black image of ``'flag'``.
    """

    def __init__(self, on_error: str = 'skip', flag_size: Size = (288, 288)) -> None:
        if on_error not in ('skip', 'flag', 'error'):
            raise ValueError(f"on_error must be 'skip', 'flag' or 'error', got {on_error!r}")
        self.on_error = on_error
        self.flag_size = _hw(flag_size)
        self.num_failed = 0

    def __call__(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        try:
            img = read_rgb(path)
            results.setdefault('valid', True)
        except OSError as err:
            if self.on_error == 'error':
                raise
            self.num_failed += 1
            print_log(f'LoadImage: {err} ({self.num_failed} unreadable so far, on_error={self.on_error!r})',
                      logger='current', level=logging.WARNING)
            if self.on_error == 'skip':
                return None
            img = np.zeros((*self.flag_size, 3), np.uint8)
            results['valid'] = False
        results['img'] = img
        results['img_shape'] = results['ori_shape'] = img.shape[:2]
        _record(results, None, img)  # the op trail starts at the decoded file
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(on_error={self.on_error!r})'


def _warp_pil(img: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """PIL's bilinear warp, as torchvision's ``Resize`` does on PIL images (the reference)."""
    return np.array(Image.fromarray(np.ascontiguousarray(img)).resize((hw[1], hw[0]), Image.BILINEAR))


def _warp_torch(img: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """PIL's bilinear filter (antialiased when downscaling) computed by torch on uint8.

    Returns an HxWx3 view of a planar (CHW-contiguous) array: the crops slice it and the CHW
    tensors of ``PackMIQAInputs``/``RegionView`` are then plain copies, not transpositions.
    """
    if not img.flags.writeable:  # torch.from_numpy warns on read-only arrays (e.g. an API caller's)
        img = img.copy()
    x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0)
    out = F.interpolate(x, size=hw, mode='bilinear', align_corners=False, antialias=True)
    return out[0].numpy().transpose(1, 2, 0)


#: warp backend name -> fn(HxWx3 uint8, (h, w)) -> HxWx3 uint8
WARPS: Dict[str, Callable[[np.ndarray, Tuple[int, int]], np.ndarray]] = {'torch': _warp_torch,
                                                                         'pil': _warp_pil}


def _resize(img: np.ndarray, hw: Tuple[int, int], backend: str = 'torch') -> np.ndarray:
    """Bilinear warp to ``hw`` (:data:`WARPS`); the image itself when it has that size."""
    if img.shape[:2] == hw:
        return img
    return WARPS[backend](img, hw)


def _check_backend(backend: str) -> str:
    if backend not in WARPS:
        raise ValueError(f'unknown warp backend {backend!r}; one of {sorted(WARPS)}')
    return backend


def _record(results: dict, op: Optional[list], img: np.ndarray) -> None:
    """Append a deterministic step to the op trail (``None`` starts it) and remember its output.
    A step that does not record (a foreign transform) breaks the trail: ``RegionView`` then
    never skips a view (see :func:`_trail`)."""
    results['img_ops'] = [] if op is None else [*results.get('img_ops', ()), op]
    results['img_ops_out'] = img


def _trail(results: dict) -> Optional[list]:
    """The recorded steps from the decoded file to ``results['img']``, or ``None`` when the
    trail is missing or another transform changed the image after the last recorded step."""
    if 'img_ops' not in results or results.get('img_ops_out') is not results.get('img'):
        return None
    return results['img_ops']


def image_digest(img: np.ndarray) -> str:
    """XXH3-128 of the image's pixels with its shape and memory layout, without a copy when the
    pixels lie contiguous as HWC (PIL, the decoder) or as CHW (the torch warp): a pipeline always
    hands on the same layout, and two layouts only make two keys (a miss, never a wrong hit)."""
    shape = 'x'.join(map(str, img.shape))
    chw = img.transpose(2, 0, 1)
    if chw.flags.c_contiguous:
        return f'{xxhash.xxh3_128_hexdigest(chw)}:chw:{shape}'
    return f'{xxhash.xxh3_128_hexdigest(np.ascontiguousarray(img))}:hwc:{shape}'


def _to_uint8_tensor(img: np.ndarray) -> torch.Tensor:
    """CHW uint8 tensor (normalised later on the device by ``MIQADataPreprocessor``)."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def _to_normalized_tensor(img: np.ndarray, mean: Optional[Sequence[float]],
                          std: Optional[Sequence[float]]) -> torch.Tensor:
    """CHW float32 ``(img / 255 - mean) / std``, the arithmetic of ToTensor + Normalize;
    with ``mean=None`` the uint8 tensor itself."""
    if mean is None:
        return _to_uint8_tensor(img)
    tensor = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).to(torch.float32).div(255)
    mean_t = torch.as_tensor(mean, dtype=torch.float32)[:, None, None]
    std_t = torch.as_tensor(std, dtype=torch.float32)[:, None, None]
    return tensor.sub_(mean_t).div_(std_t).contiguous()


@TRANSFORMS.register_module()
class Resize:
    """Square warp (aspect ratio not kept) of ``results['img']`` to ``size`` = int or ``(h, w)``
    with PIL's bilinear filter (``backend``: :data:`WARPS`); with ``keep_ratio`` the short side
    becomes ``size`` (an int) and the aspect ratio is kept (torchvision's ``Resize(int)``, the
    geometry of the classifier machines that label MIQD-mini)."""

    def __init__(self, size: Size = 288, backend: str = 'torch', keep_ratio: bool = False) -> None:
        if keep_ratio and not isinstance(size, int):
            raise ValueError(f'Resize(keep_ratio=True) needs an int size (the short side), got {size!r}')
        self.size = _hw(size)
        self.backend = _check_backend(backend)
        self.keep_ratio = keep_ratio

    def _target(self, img: np.ndarray) -> Tuple[int, int]:
        if not self.keep_ratio:
            return self.size
        h, w = img.shape[:2]
        short = self.size[0]
        return (short, max(short, int(short * w / h))) if h <= w else (max(short, int(short * h / w)), short)

    def __call__(self, results: dict) -> dict:
        img = results['img']
        hw = self._target(img)
        results['img'] = _resize(img, hw, self.backend)
        results['img_shape'] = hw
        if results.get('img_ops_out') is img:
            _record(results, ['resize', *hw, self.backend], results['img'])
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, backend={self.backend!r}, '
                f'keep_ratio={self.keep_ratio})')


@TRANSFORMS.register_module()
class RegionView:
    """The region encoder's input (spec §4): the whole warped image in ``results['region_inputs']``;
    resizes only if the image is not ``size``. By default a CHW uint8 tensor that the model's
    ``MIQADataPreprocessor`` normalises on the device (ImageNet statistics); with ``mean``/``std``
    given, a normalised float32 tensor instead.

    Also writes ``results['region_key']`` (the view's content key: a digest of the image it is
    made from plus this transform's parameters; ``''`` for a flagged image) and
    ``results['region_recipe']`` (how to remake it from the file). With ``skip_cached`` (default),
    a sample whose key the model's region-token cache already holds gets no view at all
    (:class:`~miqa.models.region_cache.SharedKeyIndex`): after the first epoch the loader does
    no region-view work. Skipping needs ``collate_fn=dict(type='miqa.miqa_collate')``, which batches
    samples with and without a view; under any other collate nothing is skipped.
    """

    def __init__(self, size: Size = 288, mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None, backend: str = 'torch',
                 skip_cached: bool = True) -> None:
        if (mean is None) != (std is None):
            raise ValueError('RegionView: give both mean and std, or neither')
        self.size = _hw(size)
        self.mean = None if mean is None else tuple(mean)
        self.std = None if std is None else tuple(std)
        self.backend = _check_backend(backend)
        self.skip_cached = skip_cached
        self._step = ['view', *self.size, self.backend, self.mean, self.std]
        self._spec = json.dumps(self._step)
        if skip_cached:
            self._index = shared_key_index()  # made here, in the main process, before workers fork
        else:
            self._index = None

    def view(self, img: np.ndarray) -> torch.Tensor:
        """The view of an image (what ``__call__`` puts in ``results['region_inputs']``)."""
        return _to_normalized_tensor(_resize(img, self.size, self.backend), self.mean, self.std)

    def __call__(self, results: dict) -> dict:
        img = results['img']
        trail = _trail(results)
        key = f'{image_digest(img)}|{self._spec}' if results.get('valid', True) else ''
        results['region_key'] = key
        results['region_recipe'] = '' if trail is None or not key else json.dumps([*trail, self._step])
        index = self._index
        if results['region_recipe'] and index is not None and index.ready and key in index:
            results.pop('region_inputs', None)  # the model holds this token: no view
            return results
        results['region_inputs'] = self.view(img)
        return results

    def __getstate__(self) -> dict:
        return {**self.__dict__, '_index': None}  # a spawned worker attaches its own (empty) index

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.skip_cached:
            self._index = shared_key_index()

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, mean={self.mean}, std={self.std}, '
                f'backend={self.backend!r}, skip_cached={self.skip_cached})')


def rebuild_region_view(img_path: str, recipe: str, key: str) -> torch.Tensor:
    """Remake a view the loader skipped: decode ``img_path``, replay ``recipe`` (the recorded
    steps, then the view) and check that the image matches ``key``; raises ``ValueError``
    naming the file when it does not (the file or the pipeline changed since)."""
    *steps, view = json.loads(recipe)
    img = read_rgb(img_path)
    for name, *args in steps:
        img = _REPLAY[name](img, *args)
    if f'{image_digest(img)}|{json.dumps(view)}' != key:
        raise ValueError(f'cannot remake the region view of {img_path}: the image no longer gives the '
                         'key the loader computed (file or pipeline changed during the run)')
    _, h, w, backend, mean, std = view
    return RegionView((h, w), mean, std, backend, skip_cached=False).view(img)


def _crop(results: dict, top: int, left: int, hw: Tuple[int, int], op: Optional[list] = None) -> dict:
    src = results['img']
    results['img'] = src[top:top + hw[0], left:left + hw[1]]
    results['img_shape'] = hw
    if results.get('img_ops_out') is src:
        _record(results, op or ['crop', top, left, *hw], results['img'])
    return results


@TRANSFORMS.register_module()
class RandomCrop:
    """Crop of ``size`` at a position drawn with ``np.random.randint`` (numpy's global RNG, so
    mmengine's seeding makes it reproducible), like torchvision's ``RandomCrop``."""

    def __init__(self, size: Size = 224) -> None:
        self.size = _hw(size)

    def __call__(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        th, tw = self.size
        if h < th or w < tw:
            raise ValueError(f'RandomCrop{self.size} is larger than the {h}x{w} image '
                             f'{results.get("img_path")}; put Resize first')
        return _crop(results, np.random.randint(0, h - th + 1), np.random.randint(0, w - tw + 1), self.size)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size})'


def _center_crop(img: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """torchvision's ``CenterCrop``: zero padding when smaller, ``top = int(round((h - th) / 2.))``."""
    h, w = img.shape[:2]
    th, tw = hw
    if h < th or w < tw:
        pad_h, pad_w = max(th - h, 0), max(tw - w, 0)
        img = np.pad(img, ((pad_h // 2, (pad_h + 1) // 2), (pad_w // 2, (pad_w + 1) // 2), (0, 0)))
        h, w = img.shape[:2]
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    return img[top:top + th, left:left + tw]


@TRANSFORMS.register_module()
class CenterCrop:
    """Centre crop with torchvision's rounding ``top = int(round((h - th) / 2.))``; an image
    smaller than ``size`` is first zero-padded as torchvision does."""

    def __init__(self, size: Size = 224) -> None:
        self.size = _hw(size)

    def __call__(self, results: dict) -> dict:
        src = results['img']
        results['img'] = _center_crop(src, self.size)
        results['img_shape'] = self.size
        if results.get('img_ops_out') is src:
            _record(results, ['center_crop', *self.size], results['img'])
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size})'


#: recorded step name -> fn(img, *args) that replays it (:func:`rebuild_region_view`)
_REPLAY: Dict[str, Callable[..., np.ndarray]] = {
    'resize': lambda img, h, w, backend: _resize(img, (h, w), backend),
    'crop': lambda img, top, left, h, w: img[top:top + h, left:left + w],
    'center_crop': lambda img, h, w: _center_crop(img, (h, w)),
}


@TRANSFORMS.register_module()
class Normalize:
    """``results['inputs']``: CHW float32 tensor ``(img / 255 - mean) / std`` (mean/std in [0, 1]
    units, as torchvision's ToTensor + Normalize)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, results: dict) -> dict:
        results['inputs'] = _to_normalized_tensor(results['img'], self.mean, self.std)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(mean={self.mean}, std={self.std})'


@TRANSFORMS.register_module()
class PackMIQAInputs:
    """``dict(inputs, data_samples[, region_inputs])`` for ``miqa_collate`` (or ``default_collate``).

    ``inputs`` is what ``Normalize`` wrote, or else the image as a CHW uint8 tensor: the
    reference configs normalise on the device, in the model's ``MIQADataPreprocessor`` (per
    backbone, spec §6), which also moves 4x fewer bytes than float32.

    ``data_samples`` carries the fields of docs/CONTRACTS.md, never None: an unlabelled image
    gets ``gt_score=nan``, ``sample_idx=-1``, empty strings and levels 0.
    """
    #: data_samples key -> (type, value when the results lack it)
    META = dict(gt_score=(float, float('nan')), sample_idx=(int, -1), valid=(bool, True),
                distortion=(str, ''), region=(str, ''), src_id=(str, ''), img_path=(str, ''),
                fg_level=(int, 0), bg_level=(int, 0))
    #: written only when ``RegionView`` ran (its content key and how to remake a skipped view)
    REGION_META = ('region_key', 'region_recipe')

    def __call__(self, results: dict) -> dict:
        if 'inputs' not in results:
            results['inputs'] = _to_uint8_tensor(results['img'])
        data_samples = {}
        for key, (kind, default) in self.META.items():
            value = results.get(key)
            data_samples[key] = default if value is None else kind(value)
        if 'region_key' in results:
            data_samples.update((key, results[key]) for key in self.REGION_META)
        packed = dict(inputs=results['inputs'], data_samples=data_samples)
        if 'region_inputs' in results:
            packed['region_inputs'] = results['region_inputs']
        return packed

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'
