"""The user-facing API: score images, folders, videos and camera streams with a MIQA model.

- :class:`MIQAModel` (``inference.py``): one model, ``assess(image)`` / ``assess_many(images)``;
- :func:`batch_assess` (``batch.py``): many files through a DataLoader with workers;
- :class:`VideoMIQA` (``video.py``) and :class:`RealTimeIQA` (``realtime.py``);
- :func:`list_models` (``zoo.py``): the published models (``model_zoo.csv``).

Names are imported on first use, so ``import miqa.apis.zoo`` stays light.
"""
from miqa.utils.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(('MIQAModel', 'load_image', 'ImagePreprocessor'), 'inference'),
    'batch_assess': 'batch',
    'VideoMIQA': 'video',
    'RealTimeIQA': 'realtime',
    **dict.fromkeys(('list_models', 'ZooEntry', 'get_model_entry', 'fetch_weights', 'markdown_table'), 'zoo'),
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
