"""The one place where miqa adapts mmengine 0.10.7 to torch >= 2.6 and to CPU-only machines.

Each fix answers a breakage measured with torch 2.14 (see README, "Runtime notes"):

1. checkpoint loading -- torch now loads with ``weights_only=True`` by default and
   mmengine's training checkpoints pickle a ``HistoryBuffer`` and numpy scalars, so
   ``--resume`` fails. Every checkpoint mmengine opens (``load_from``, ``--resume`` path or
   auto, ``tools/test.py``; local files and http(s) URLs) loads through
   :func:`miqa.utils.checkpoint.load_training_checkpoint`: ``weights_only=True`` with exactly the
   data classes those checkpoints hold, never a full unpickle. Checkpoint writes are atomic
   (temporary file + ``os.replace`` in the same folder): a crash never leaves a torn file.
2. torchrun on CPU -- mmengine's ``init_dist`` calls ``torch.cuda.set_device``; we open a
   ``gloo`` process group first, and the Runner then uses it.
3. DDP on CPU -- ``device_ids`` must be ``None`` for CPU modules.
4. collate -- mmengine's default ``pseudo_collate`` hands lists to the model; every miqa
   dataloader uses ``default_collate``.
5. torchrun workers outlive a killed agent -- each rank watches its parent and stops when the
   agent is gone.
"""
import os
import pickle
import urllib.parse

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.registry import DefaultScope

from miqa.utils.checkpoint import load_training_checkpoint, refusal, training_checkpoint_globals
from miqa.utils.io import atomic_write_bytes

_PATCHED = False


#: The registries a training or test run builds from: their ``locations`` are imported.
RUNNER_REGISTRIES = ('DATASETS', 'TRANSFORMS', 'FUNCTIONS', 'DATA_SAMPLERS', 'MODELS', 'METRICS', 'EVALUATOR',
                     'LOOPS', 'HOOKS', 'OPTIM_WRAPPER_CONSTRUCTORS')


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every miqa module that registers runner components (each registry's ``locations``,
    :mod:`miqa.registry`); optionally make ``miqa`` the default scope.

    The ground floor names no upper package: the registries know where their modules are.
    """
    from miqa import registry

    for name in RUNNER_REGISTRIES:
        getattr(registry, name).import_from_location()

    if init_default_scope and not DefaultScope.check_instance_created('miqa'):
        DefaultScope.get_instance('miqa', scope_name='miqa')


def _load_url(url: str, model_dir=None, map_location=None, progress: bool = False, **kwargs):
    """mmengine's http(s) loader (``load_from=https://...``, also behind ``torchvision://``,
    ``open-mmlab://``): torch.hub's download and cache, then :func:`load_training_checkpoint`'s
    restricted unpickler instead of torch.hub's full one."""
    allowed = training_checkpoint_globals()
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.hub.load_state_dict_from_url(url, model_dir=model_dir, map_location=map_location,
                                                      progress=progress, weights_only=True)
    except pickle.UnpicklingError as err:
        folder = model_dir or os.path.join(torch.hub.get_dir(), 'checkpoints')
        cached = os.path.join(folder, os.path.basename(urllib.parse.urlparse(url).path))
        raise refusal(cached if os.path.isfile(cached) else url, err, allowed) from None


def _atomic_put(self, obj: bytes, filepath) -> None:
    """``LocalBackend.put`` (every checkpoint, ``last_checkpoint`` and mmengine dump) made atomic."""
    atomic_write_bytes(str(filepath), obj, fsync=True)


def _atomic_put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
    atomic_write_bytes(str(filepath), obj.encode(encoding), fsync=True)


def patch_checkpoint_io() -> None:
    """Route mmengine's checkpoint reads through :func:`load_training_checkpoint` (local files and
    http(s)) and make its local writes atomic."""
    from mmengine.fileio.backends import LocalBackend
    from mmengine.runner import checkpoint

    checkpoint.CheckpointLoader.register_scheme(prefixes='', force=True)(load_training_checkpoint)
    checkpoint.load_url = _load_url  # load_from_http's download-and-load (torch.hub, weights_only=False)
    LocalBackend.put = _atomic_put
    LocalBackend.put_text = _atomic_put_text


def stop_with_launcher(launcher: str) -> None:
    """A torchrun worker stops when its elastic agent dies (a ``kill -9`` of torchrun would
    otherwise leave the ranks training, and writing checkpoints, on their own; fix 5)."""
    if launcher == 'pytorch' and 'TORCHELASTIC_RUN_ID' in os.environ:
        from miqa.utils.processes import exit_with_parent

        exit_with_parent(f'torchrun rank {os.environ.get("RANK", "?")}')


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
    """Everything a tool needs before ``Runner.from_cfg``: registration, fixes 1-5. Idempotent."""
    global _PATCHED
    if not _PATCHED:
        register_all_modules(init_default_scope=False)
        patch_checkpoint_io()
        _PATCHED = True
    stop_with_launcher(launcher)
    init_cpu_distributed(launcher)
    return adapt_config(cfg, launcher)
