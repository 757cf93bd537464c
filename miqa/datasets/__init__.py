"""MIQD-2.5M data: variant names, label index, splits, ``MIQDDataset`` and the transforms.

Names are imported on first use (:mod:`miqa.utils.lazy`), so ``import miqa.datasets.naming`` costs
numpy, not torch. The registries import ``miqd`` (``MIQDDataset`` in ``DATASETS``), ``transforms``
(``TRANSFORMS``) and ``collate`` (``FUNCTIONS``), their locations, on first use.
"""
from miqa.utils.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(('TASKS', 'LabelIndex', 'TaskLayout', 'load_index', 'miqa_home', 'task_layout'), 'index'),
    **dict.fromkeys(('LABEL_TYPES', 'MIQDDataset'), 'miqd'),
    **dict.fromkeys(('DISTORTIONS', 'REGIONS', 'VARIANTS', 'VariantInfo', 'format_name', 'parse_name',
                     'parse_names', 'variant_names'), 'naming'),
    **dict.fromkeys(('SPLITS', 'SplitFile', 'make_split', 'official_split_path', 'read_split_file'),
                    'splits'),
}
__all__ = [*_EXPORTS, 'collate', 'transforms']
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
