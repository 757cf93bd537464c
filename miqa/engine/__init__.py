"""Runner-side components registered in miqa's registries."""
from .hooks import MultiValCheckpointHook
from .loops import MultiValEpochBasedTrainLoop

__all__ = ['MultiValCheckpointHook', 'MultiValEpochBasedTrainLoop']
