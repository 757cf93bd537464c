"""The one reading of a ``device`` option (the API, the labelling machines, the HVS benchmark).

Standard library only at import; torch loads on the first call.
"""
from typing import TYPE_CHECKING, Optional, Union

if TYPE_CHECKING:
    import torch


def resolve_device(device: Optional[Union[str, 'torch.device']] = 'auto',
                   mps: bool = False) -> 'torch.device':
    """``'auto'``/``None``: CUDA when available, else Apple's MPS when ``mps`` and available,
    else the CPU; anything else is given to ``torch.device`` as it is.

    ``mps`` is off by default: the labelling machines' TFJS graphs compute in float64, which
    MPS lacks; the assessment API (:class:`miqa.apis.MIQAModel`) turns it on.
    """
    import torch

    if device is None or (isinstance(device, str) and device == 'auto'):
        if torch.cuda.is_available():
            return torch.device('cuda')
        backend = getattr(torch.backends, 'mps', None)
        if mps and backend is not None and backend.is_available():
            return torch.device('mps')
        return torch.device('cpu')
    return torch.device(device)
