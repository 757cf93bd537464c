"""Models of miqa (registered in ``MODELS``).

Names are imported on first use, so ``import miqa.models.weights`` does not load timm. The
``MODELS`` registry lists the modules that register into it (:mod:`miqa.registry`), so building
any ``type`` from a config finds it. Weight files (tables, look-up, checksums): :mod:`miqa.hub`.
"""
from miqa.utils.lazy import lazy_exports

_EXPORTS = {
    'BACKBONES': 'backbones', 'build_backbone': 'backbones',
    'MIQABaseModel': 'base', 'sample_field': 'base', 'unbatch_samples': 'base',
    **dict.fromkeys(('CONVERSIONS', 'ConversionError', 'convert_baseline', 'convert_checkpoint',
                     'convert_ra_miqa',
                     'load_timm_vit', 'vit_to_timm'), 'converters'),
    'MIQADataPreprocessor': 'data_preprocessor',
    **dict.fromkeys(('L1Loss', 'MSELoss', 'PairwiseRankingLoss', 'PLCCLoss', 'SmoothL1Loss'), 'losses'),
    'RAMIQA': 'ra_miqa',
    'RegionTokenCache': 'region_cache',
    **dict.fromkeys(('CNNRegionEncoder', 'RegionEncoder', 'TimmViTRegionEncoder'), 'region_encoder'),
    'IQARegressor': 'regressor',
    **dict.fromkeys(('load_model_weights', 'load_strict'), 'weights'),
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
