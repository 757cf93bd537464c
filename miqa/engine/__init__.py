"""Runner-side components registered in miqa's registries."""
from .hooks import MultiValCheckpointHook
from .hvs_reference import HVSReferenceHook
from .loops import MultiValEpochBasedTrainLoop
from .optim import MIQAOptimWrapperConstructor

__all__ = ['HVSReferenceHook', 'MIQAOptimWrapperConstructor', 'MultiValCheckpointHook',
           'MultiValEpochBasedTrainLoop']
