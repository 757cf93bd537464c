"""Models of miqa (registered in ``MODELS``, whose location is this package).

Every module that registers something is imported here, so building any ``type`` from a
config finds it.
"""
from .backbones import BACKBONES, build_backbone
from .base import MIQABaseModel, sample_field, unbatch_samples
from .converters import (
    CONVERSIONS,
    ConversionError,
    convert_baseline,
    convert_checkpoint,
    convert_ra_miqa,
    load_timm_vit,
    vit_to_timm,
)
from .data_preprocessor import MIQADataPreprocessor
from .losses import L1Loss, MSELoss, PairwiseRankingLoss, PLCCLoss, SmoothL1Loss
from .ra_miqa import RAMIQA
from .region_cache import RegionTokenCache
from .region_encoder import CNNRegionEncoder, RegionEncoder, TimmViTRegionEncoder
from .regressor import IQARegressor
from .weights import WEIGHT_SOURCES, load_state_dict_file, miqa_home, resolve_weights

__all__ = [
    'BACKBONES', 'build_backbone', 'MIQABaseModel', 'sample_field', 'unbatch_samples', 'CONVERSIONS',
    'ConversionError', 'convert_baseline', 'convert_checkpoint', 'convert_ra_miqa', 'load_timm_vit',
    'vit_to_timm', 'MIQADataPreprocessor', 'L1Loss', 'MSELoss', 'PairwiseRankingLoss', 'PLCCLoss',
    'SmoothL1Loss', 'RAMIQA', 'RegionTokenCache', 'CNNRegionEncoder', 'RegionEncoder',
    'TimmViTRegionEncoder', 'IQARegressor', 'WEIGHT_SOURCES', 'load_state_dict_file', 'miqa_home',
    'resolve_weights',
]
