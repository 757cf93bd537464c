"""The user-facing API: score images, folders, videos and camera streams with a MIQA model.

- :class:`MIQAModel` (``inference.py``): one model, ``assess(image)`` / ``assess_many(images)``;
- :func:`batch_assess` (``batch.py``): many files through a DataLoader with workers;
- :class:`VideoMIQA` (``video.py``) and :class:`RealTimeIQA` (``realtime.py``);
- :func:`list_models` (``zoo.py``): the published models (``model_zoo.csv``).

Names are imported on first use, so ``import miqa.apis.zoo`` stays light.
"""
import importlib
from typing import Any

_EXPORTS = {
    'MIQAModel': 'inference', 'load_image': 'inference', 'ImagePreprocessor': 'inference',
    'batch_assess': 'batch',
    'VideoMIQA': 'video',
    'RealTimeIQA': 'realtime',
    'list_models': 'zoo', 'ZooEntry': 'zoo', 'get_model_entry': 'zoo', 'fetch_weights': 'zoo',
    'markdown_table': 'zoo',
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(list(globals()) + __all__)
