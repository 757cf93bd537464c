"""Plain helpers (``io``, ``paths``, ``types``, ``image_header``, ``checkpoint``) and the runtime
set-up (``setup_env``, ``config``).

Names are imported on first use (:mod:`miqa.utils.lazy`), so ``import miqa.utils.io`` costs only
the standard library; ``from miqa.utils import setup_runtime`` loads torch and mmengine.
"""
from .lazy import lazy_exports

_EXPORTS = {'apply_overrides': 'config', 'load_training_checkpoint': 'checkpoint',
            'register_all_modules': 'setup_env', 'setup_runtime': 'setup_env'}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
