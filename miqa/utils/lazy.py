"""PEP 562 lazy exports: a package re-exports names that are imported on first use.

``import miqa.utils.io`` (or any light module) then costs only what that module imports, not what
its siblings do. Submodules stay reachable as attributes (``miqa.models.weights``) as with an
eager ``__init__``.
"""
import importlib
import sys
from typing import Any, Callable, List, Mapping, Tuple


def lazy_exports(package: str,
                 exports: Mapping[str, str]) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose name ``n`` lives in submodule ``exports[n]``.

    Use in a package ``__init__``: ``__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)``.
    """
    def __getattr__(name: str) -> Any:
        module = sys.modules[package]
        if name in exports:
            value = getattr(importlib.import_module(f'{package}.{exports[name]}'), name)
        elif not name.startswith('__'):
            try:
                value = importlib.import_module(f'{package}.{name}')
            except ModuleNotFoundError as err:
                if err.name != f'{package}.{name}':
                    raise
                raise AttributeError(f'module {package!r} has no attribute {name!r}') from None
        else:
            raise AttributeError(f'module {package!r} has no attribute {name!r}')
        setattr(module, name, value)
        return value

    def __dir__() -> List[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__


__all__ = ['lazy_exports']
