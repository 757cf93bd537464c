"""The seed README's import name: ``from machine_iqa import MIQAModel, batch_assess, VideoMIQA,
RealTimeIQA, list_models`` (the same objects as ``miqa``'s, imported on first use)."""
from typing import Any

from miqa import __version__  # noqa: F401

_API = ('MIQAModel', 'batch_assess', 'VideoMIQA', 'RealTimeIQA', 'list_models')
__all__ = ['__version__', *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import miqa.apis
        return getattr(miqa.apis, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(list(globals()) + list(_API))
