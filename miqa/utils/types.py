"""Type aliases shared across layers (standard library only; torch is named, never imported)."""
import os
from typing import TYPE_CHECKING, Dict, Union

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: A file system path as the functions of miqa accept it.
PathLike = Union[str, os.PathLike]
#: A model's parameters and buffers by name (``module.state_dict()``).
StateDict = Dict[str, 'torch.Tensor']

__all__ = ['PathLike', 'StateDict']
