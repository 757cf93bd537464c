"""Runtime set-up and config helpers."""
from .config import apply_overrides
from .setup_env import load_training_checkpoint, register_all_modules, setup_runtime

__all__ = ['apply_overrides', 'load_training_checkpoint', 'register_all_modules', 'setup_runtime']
