"""MIQD-2.5M data: variant names, label index, splits, ``MIQDDataset`` and the transforms.

Importing this package registers ``MIQDDataset`` in ``DATASETS`` and the transforms in
``TRANSFORMS`` (both registries also import it on first use).
"""
from . import collate, transforms
from .index import TASKS, LabelIndex, TaskLayout, load_index, miqa_home, task_layout
from .miqd import LABEL_TYPES, MIQDDataset
from .naming import (
    DISTORTIONS,
    REGIONS,
    VARIANTS,
    VariantInfo,
    format_name,
    parse_name,
    parse_names,
    variant_names,
)
from .splits import SPLITS, SplitFile, make_split, official_split_path, read_split_file

__all__ = [
    'DISTORTIONS', 'LABEL_TYPES', 'REGIONS', 'SPLITS', 'TASKS', 'VARIANTS', 'LabelIndex', 'MIQDDataset',
    'SplitFile', 'TaskLayout', 'VariantInfo', 'collate', 'format_name', 'load_index', 'make_split',
    'miqa_home',
    'official_split_path', 'parse_name', 'parse_names', 'read_split_file', 'task_layout', 'transforms',
    'variant_names'
]
