"""The loaders: user weight files and training checkpoints, never a full unpickle.

- :func:`load_state_dict_file`: any user-provided weight file, ``torch.load(weights_only=True,
  map_location='cpu')`` (or ``safetensors``), unwrapped (``state_dict`` / ``model`` / ``module``
  containers, ``module.`` prefixes); :func:`load_weight` finds, verifies and loads a table file.
- :func:`load_training_checkpoint`: an mmengine training checkpoint with exactly the data classes
  it pickles (:func:`training_checkpoint_globals`). It lives in :mod:`miqa.utils.checkpoint`,
  below the hub, because the runtime fixes route every checkpoint mmengine opens through it.
"""
import argparse
import pickle
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

import numpy as np
import torch

from miqa.utils.checkpoint import (  # noqa: F401  (the hub's training-checkpoint loader)
    _NP_CORE,
    UnsafeCheckpointError,
    load_training_checkpoint,
    training_checkpoint_globals,
)
from miqa.utils.types import PathLike, StateDict

from .checksums import verify
from .lookup import find_weights
from .table import WeightFile

# Plain Python objects that research checkpoints commonly carry next to the tensors
# (argparse namespaces, numpy scalars); allowing them keeps ``weights_only=True`` usable.
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


def load_file(path: PathLike) -> Any:
    """The object stored in a weight file, as stored: ``safetensors``, or ``torch.load(weights_only=True)``
    on CPU (tensors, containers and :data:`_SAFE_GLOBALS` only)."""
    path = Path(path)
    if path.suffix == '.safetensors':
        from safetensors.torch import load_file as load_safetensors
        return load_safetensors(str(path), device='cpu')
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        raise RuntimeError(
            f'{path} cannot be loaded with weights_only=True ({type(err).__name__}: {err}). '
            'It holds arbitrary Python objects; if you trust it, re-save only its state dict '
            '(torch.save(ckpt["state_dict"], new_file)) and pass the new file.') from err


def load_state_dict_file(path: PathLike, strip_prefixes: Iterable[str] = ('module.',)) -> StateDict:
    """Load a user-provided weight file safely (``weights_only=True``, CPU) and unwrap it."""
    return unwrap_state_dict(load_file(path), strip_prefixes)


def load_weight(key: Union[str, WeightFile], path: Optional[PathLike] = None, hint: str = '') -> Any:
    """Find (``path`` if given), verify and load ``key``'s file.

    A mapping comes back as a state dict (unwrapped as :func:`load_state_dict_file` does); other
    containers (piq's LPIPS file is a list of tensors) as stored.
    """
    file = find_weights(key, path, hint)
    verify(key, file)
    obj = load_file(file)
    return unwrap_state_dict(obj) if isinstance(obj, Mapping) else obj


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
        return unwrap_state_dict(load_training_checkpoint(path, 'cpu', extra=_SAFE_GLOBALS))


__all__ = ['UnsafeCheckpointError', 'load_checkpoint_state_dict', 'load_file', 'load_state_dict_file',
           'load_training_checkpoint', 'load_weight', 'training_checkpoint_globals', 'unwrap_state_dict']
