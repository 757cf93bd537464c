"""The one place where miqa adapts mmengine 0.10.7 to torch >= 2.6 and to CPU-only machines.

Each fix answers a breakage measured with torch 2.14 (see README, "Runtime notes"):

1. checkpoint loading -- torch now loads with ``weights_only=True`` by default and
   mmengine's training checkpoints pickle a ``HistoryBuffer`` and numpy scalars, so
   ``--resume`` fails. We register a loader that tries ``weights_only=True`` first and
   falls back to a full unpickle *only* when every global the file references belongs to
   mmengine/numpy (i.e. the file is an mmengine training checkpoint). Weights a user hands
   in go through :func:`miqa.models.weights.load_state_dict`, always ``weights_only=True``.
2. torchrun on CPU -- mmengine's ``init_dist`` calls ``torch.cuda.set_device``; we open a
   ``gloo`` process group first, and the Runner then uses it.
3. DDP on CPU -- ``device_ids`` must be ``None`` for CPU modules.
4. collate -- mmengine's default ``pseudo_collate`` hands lists to the model; every miqa
   dataloader uses ``default_collate``.
"""
import os
import pickle
from typing import Iterable

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.registry import DefaultScope

_TRUSTED_GLOBAL_PREFIXES = ('mmengine.', 'numpy.', 'builtins.getattr', 'collections.', 'torch.')
_PATCHED = False


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every miqa module that registers components; optionally make ``miqa`` the default scope."""
    import miqa.datasets  # noqa: F401
    import miqa.engine  # noqa: F401
    import miqa.evaluation  # noqa: F401
    import miqa.models  # noqa: F401

    if init_default_scope and not DefaultScope.check_instance_created('miqa'):
        DefaultScope.get_instance('miqa', scope_name='miqa')


def _untrusted_globals(filename: str) -> Iterable[str]:
    names = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    return [n for n in names if not n.startswith(_TRUSTED_GLOBAL_PREFIXES)]


def load_training_checkpoint(filename: str, map_location=None):
    """Load an mmengine training checkpoint (weights, optimizer, message hub, meta).

    ``weights_only=True`` first (with the data classes mmengine pickles beside the weights,
    :func:`miqa.models.weights.training_checkpoint_globals`); if the file needs more, it is
    unpickled in full only when all the globals it references are mmengine/numpy/torch ones.
    Anything else is refused.
    """
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'checkpoint not found: {filename}')
    from miqa.models.weights import training_checkpoint_globals

    try:
        with torch.serialization.safe_globals(training_checkpoint_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        pass
    try:
        untrusted = _untrusted_globals(filename)
    except Exception as err:
        untrusted = [f'<unreadable pickle: {err}>']
    if untrusted:
        raise RuntimeError(
            f'{filename} is not an mmengine training checkpoint: it references {untrusted}. '
            'Load model weights through miqa.models.weights.load_state_dict (weights_only=True) '
            'or convert them with tools/convert_checkpoint.py.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def patch_checkpoint_loading() -> None:
    """Route mmengine's local-file checkpoint loading through :func:`load_training_checkpoint`."""
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes='', force=True)(load_training_checkpoint)


def init_cpu_distributed(launcher: str) -> None:
    """Open a gloo process group for ``torchrun`` on machines without CUDA (fix 2)."""
    if launcher == 'none' or torch.cuda.is_available() or not dist.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')


def adapt_config(cfg: Config, launcher: str = 'none') -> Config:
    """Apply the config-side fixes (3, 4) in place and return ``cfg``."""
    if launcher != 'none' and not torch.cuda.is_available():
        wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
        env_cfg = cfg.get('env_cfg') or {}
        env_cfg['dist_cfg'] = dict(env_cfg.get('dist_cfg') or {}, backend='gloo')
        cfg.env_cfg = env_cfg
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader and not loader.get('collate_fn'):
            loader['collate_fn'] = dict(type='default_collate')
    return cfg


def setup_runtime(cfg: Config, launcher: str = 'none') -> Config:
    """Everything a tool needs before ``Runner.from_cfg``: registration, fixes 1-4. Idempotent."""
    global _PATCHED
    if not _PATCHED:
        register_all_modules(init_default_scope=False)
        patch_checkpoint_loading()
        _PATCHED = True
    init_cpu_distributed(launcher)
    return adapt_config(cfg, launcher)
