"""The project's vocabulary: the names and constants every layer shares, defined once.

This module is the bottom of the layering (``docs/ARCHITECTURE.md``): it imports only the
standard library, so any module (a CLI parser, a pure metric function, a tool) can use it
for free. A constant that two packages need lives here, not in either of them.

* tasks, label types and split files of MIQD-2.5M (spec §2);
* the ten distortions, the three region types, the five levels and the 25 variants of a
  distortion (:mod:`miqa.datasets.naming` formats and parses the file names built from them);
* the metric columns of every results table;
* the normalisation statistics of ImageNet-trained networks;
* the image file extensions miqa reads.
"""
from typing import Dict, Tuple

# ---------------------------------------------------------------- tasks and labels
#: The three machine tasks a label is measured with: classification, detection, instance segmentation.
TASKS: Tuple[str, ...] = ('cls', 'det', 'ins')
#: Their titles in tables (the model zoo, the README).
TASK_TITLES: Dict[str, str] = {'cls': 'Image Classification', 'det': 'Object Detection',
                               'ins': 'Instance Segmentation'}
#: The three label types of each task (spec §2): consistency, accuracy and their composite.
LABEL_TYPES: Tuple[str, ...] = ('composite', 'consistency', 'accuracy')

#: The two splits of the official split files (spec §2).
SPLITS: Tuple[str, ...] = ('train', 'val')


def split_task(task: str) -> str:
    """The task whose split files ``task`` uses: ins uses det's (spec §2)."""
    return 'det' if task == 'ins' else task


def split_file_name(task: str, split: str) -> str:
    """The official split file of ``task`` and ``split``: ``miqa_<cls|det>_<train|val>.csv``."""
    if split not in SPLITS:
        raise ValueError(f'unknown split {split!r}; expected one of {SPLITS}')
    return f'miqa_{split_task(task)}_{split}.csv'


# ---------------------------------------------------------------- distortions and variants
#: The ten distortions in spec order, with their categories (spec §2).
DISTORTIONS: Dict[str, str] = {
    'contrast': 'digital',
    'pixelate': 'digital',
    'jpeg_compression': 'digital',
    'motion_blur': 'blur',
    'defocus_blur': 'blur',
    'glass_blur': 'blur',
    'fog': 'environmental',
    'snow': 'environmental',
    'darkness': 'environmental',
    'gaussian_noise': 'noise',
}
DISTORTION_CATEGORIES: Tuple[str, ...] = ('digital', 'blur', 'environmental', 'noise')
#: Uniform, ROI-dominated, background-dominated.
REGIONS: Tuple[str, ...] = ('UD', 'ROI', 'BG')
#: Region code -> the name reports use (uniform, ROI-dominated, background-dominated).
REGION_NAMES: Dict[str, str] = {'UD': 'UD', 'ROI': 'ROI-DD', 'BG': 'BG-DD'}
LEVELS: Tuple[int, ...] = (1, 2, 3, 4, 5)
#: The 25 (region, fg_level, bg_level) variants of one distortion, in official order:
#: 5 uniform, 10 ROI-dominated (fg > bg), 10 background-dominated (bg > fg).
VARIANTS: Tuple[Tuple[str, int, int], ...] = (
    tuple(('UD', lv, lv) for lv in LEVELS)
    + tuple(('ROI', i, j) for i in LEVELS for j in LEVELS if i > j)
    + tuple(('BG', i, j) for i in LEVELS for j in LEVELS if j > i))

# ---------------------------------------------------------------- metrics
#: The columns of every results table, in report order (correlations, then the error).
METRIC_COLUMNS: Tuple[str, ...] = ('SRCC', 'PLCC', 'KRCC', 'RMSE')
#: The mappings fitted before PLCC/RMSE (``--fit``; ``miqa.evaluation.functional.FITS``, VQEG).
FIT_CHOICES: Tuple[str, ...] = ('none', 'linear', 'logistic4', 'logistic5')

# ---------------------------------------------------------------- normalisation
#: Per-channel RGB mean and std (0-1 range) of the ImageNet-trained backbones, encoders and scorers.
IMAGENET_MEAN: Tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: Tuple[float, float, float] = (0.229, 0.224, 0.225)

# ---------------------------------------------------------------- files
#: The 8-bit photo formats a database is built from (source photos and their masks).
SOURCE_EXTENSIONS: Tuple[str, ...] = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
#: Every format the assessment reads from a folder (``miqa assess <folder>``): the source
#: formats, PNM, JPEG 2000 and the float HDR formats (OpenCV decodes them all).
IMAGE_EXTENSIONS: Tuple[str, ...] = SOURCE_EXTENSIONS + ('.ppm', '.pgm', '.pbm', '.jp2', '.exr', '.hdr')

__all__ = ['TASKS', 'TASK_TITLES', 'LABEL_TYPES', 'SPLITS', 'split_task', 'split_file_name', 'DISTORTIONS',
           'DISTORTION_CATEGORIES', 'REGIONS', 'REGION_NAMES', 'LEVELS', 'VARIANTS', 'METRIC_COLUMNS',
           'FIT_CHOICES', 'IMAGENET_MEAN', 'IMAGENET_STD', 'SOURCE_EXTENSIONS', 'IMAGE_EXTENSIONS']
