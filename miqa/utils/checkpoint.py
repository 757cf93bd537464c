"""Safe loading of mmengine training checkpoints: ``torch.load(weights_only=True)`` with exactly
the data classes those checkpoints pickle beside their tensors, never a full unpickle.

The weight hub's training-checkpoint loader (:mod:`miqa.hub.loading` re-exports it), kept on the
ground floor because :mod:`miqa.utils.setup_env` routes every checkpoint mmengine opens through
:func:`load_training_checkpoint`. torch and mmengine are imported on first use, so importing this
module is free.
"""
import os
import pickle
import re
from typing import Any, Iterable

import numpy as np

from miqa.utils.types import PathLike

_NP_CORE = getattr(np, '_core', None) or np.core


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint references a global outside :func:`training_checkpoint_globals`: refused, unread."""


def _history_buffer_method(owner: Any, name: str) -> Any:
    """The only ``getattr`` a training checkpoint may call: mmengine's ``HistoryBuffer`` pickles its
    statistics methods (``min``, ``max``, ``current``, ``mean`` and registered ones) by name."""
    from mmengine.logging.history_buffer import HistoryBuffer

    names = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if owner is HistoryBuffer and isinstance(name, str) and name in names:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'builtins.getattr({getattr(owner, "__qualname__", type(owner).__name__)}, '
                                 f'{name!r}) is not allowed (only HistoryBuffer statistics methods)')


def training_checkpoint_globals() -> list:
    """The exact globals an mmengine 0.10.7 training checkpoint pickles beside its tensors.

    Found by saving real checkpoints through the Runner (epoch-, iteration-based and best
    checkpoints of ``tools/train.py``) and listing ``torch.serialization.get_unsafe_globals_in_checkpoint``:
    the message hub's ``HistoryBuffer`` (numpy arrays of float64 values and int64 counts, its
    statistics methods pickled as ``getattr(HistoryBuffer, name)``) and numpy scalars in ``meta``.
    ``builtins.getattr`` maps to :func:`_history_buffer_method`, which resolves nothing else; numpy 1.x
    names of the same functions are accepted for checkpoints saved there. No module prefixes.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    return [HistoryBuffer, np.ndarray, np.dtype, type(np.dtype('f8')), type(np.dtype('i8')),
            _NP_CORE.multiarray._reconstruct, _NP_CORE.multiarray.scalar,
            (_NP_CORE.multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
            (_NP_CORE.multiarray.scalar, 'numpy.core.multiarray.scalar'),
            (_history_buffer_method, 'builtins.getattr')]


def _allowed_names(allowed: Iterable[Any]) -> set:
    return {item[1] if isinstance(item, tuple) else f'{item.__module__}.{item.__qualname__}'
            for item in allowed}


def refusal(path: PathLike, err: Exception, allowed: Iterable[Any] = ()) -> UnsafeCheckpointError:
    """The error for a file that ``weights_only=True`` refused: names the file and the globals it
    references beyond ``allowed`` (read from the pickle's opcodes, nothing is executed)."""
    import torch

    try:
        names = sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
                       - _allowed_names(allowed))
    except Exception:  # not a zip checkpoint, or opcodes torch's scanner does not know
        names = []
    detail = re.search(r'WeightsUnpickler error:\s*(.+)', str(err))
    what = (f'it references {", ".join(names)}' if names else 'the restricted unpickler refused it ('
            + (detail.group(1) if detail else str(err).strip().splitlines()[0])[:300] + ')')
    return UnsafeCheckpointError(
        f'{path} is not an mmengine training checkpoint that loads with torch.load(weights_only=True) '
        f'without running code: {what}. '
        'Only tensors, containers and the exact data classes of '
        'miqa.utils.checkpoint.training_checkpoint_globals are allowed. Nothing was executed. '
        'If you trust the file, re-save its weights '
        '(torch.save(ckpt["state_dict"], new_file)) in a trusted environment and pass the new file.')


def load_training_checkpoint(path: PathLike, map_location: Any = None, extra: Iterable[Any] = ()) -> Any:
    """An mmengine training checkpoint (weights, optimizer, message hub, meta) or a plain state
    dict, with ``torch.load(weights_only=True)`` and exactly :func:`training_checkpoint_globals`
    (plus the exact classes in ``extra``).

    Anything else raises :class:`UnsafeCheckpointError` naming the file and the globals; there is
    no full-unpickle fallback.
    """
    import torch

    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    allowed = [*extra, *training_checkpoint_globals()]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise refusal(path, err, allowed) from None


__all__ = ['UnsafeCheckpointError', 'load_training_checkpoint', 'refusal', 'training_checkpoint_globals']
