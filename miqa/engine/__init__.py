"""Runner-side components registered in miqa's registries."""
from .loops import MultiValEpochBasedTrainLoop

__all__ = ['MultiValEpochBasedTrainLoop']
