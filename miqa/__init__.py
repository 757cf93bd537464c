"""miqa: image quality assessment for machines (RA-MIQA, MIQD-2.5M).

The assessment API (``MIQAModel``, ``batch_assess``, ``VideoMIQA``, ``RealTimeIQA``,
``list_models``; :mod:`miqa.apis`) is imported on first use, so ``import miqa`` stays light.
"""
from typing import Any

from .version import __version__

_API = ('MIQAModel', 'batch_assess', 'VideoMIQA', 'RealTimeIQA', 'list_models')
__all__ = ['__version__', *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import apis
        return getattr(apis, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(list(globals()) + list(_API))
