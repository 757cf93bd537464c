"""Closed-form full-reference scorers: PSNR, SSIM, VSI (``piq`` implementations, batched).

Inputs are ``N x 3 x H x W`` RGB in ``[0, 1]`` (``data_range=1``); every score is computed per
image (piq's ``reduction='none'``). Higher is better for all three.
"""
from typing import Optional

import piq
import torch

from miqa.registry import SCORERS

from .base import HVSScorer

#: PSNR (dB) given to a pair of identical images, whose PSNR is infinite.
PSNR_CAP = 100.0


@SCORERS.register_module(name='PSNR')
class PSNR(HVSScorer):
    """Peak signal-to-noise ratio ``10 log10(1 / MSE)`` in dB, MSE over all pixels and channels.

    piq adds ``1e-8`` to the MSE (so distinct 8-bit images stay below about 80 dB and values
    under 60 dB move by < 0.005 dB); identical images score :data:`PSNR_CAP` instead of ``inf``.
    """

    name = 'PSNR'

    def forward(self, distorted: torch.Tensor, reference: Optional[torch.Tensor] = None) -> torch.Tensor:
        x, y = distorted.clamp(0, 1), reference.clamp(0, 1)
        psnr = piq.psnr(x, y, data_range=1.0, reduction='none')
        identical = (x == y).flatten(1).all(dim=1)
        return torch.where(identical, torch.full_like(psnr, PSNR_CAP), psnr.clamp(max=PSNR_CAP))


@SCORERS.register_module(name='SSIM')
class SSIM(HVSScorer):
    """Structural similarity (Wang et al., IEEE TIP 2004), piq's variant: an 11x11 Gaussian window
    with sigma 1.5, K1 = 0.01, K2 = 0.03, valid (unpadded) filtering, the mean SSIM map of each RGB
    channel averaged over channels; images whose short side is >= 384 are first average-pooled by
    ``round(short side / 256)``, as in Wang et al.'s reference MATLAB code."""

    name = 'SSIM'

    def forward(self, distorted: torch.Tensor, reference: Optional[torch.Tensor] = None) -> torch.Tensor:
        return piq.ssim(distorted.clamp(0, 1), reference.clamp(0, 1), kernel_size=11, kernel_sigma=1.5,
                        data_range=1.0, reduction='none', downsample=True)


@SCORERS.register_module(name='VSI')
class VSI(HVSScorer):
    """Visual saliency-induced index (Zhang, Shen and Li, "VSI: A Visual Saliency-Induced Index for
    Perceptual Image Quality Assessment", IEEE TIP 23(10), 2014), piq's port of the authors' MATLAB
    code with its constants; 1 for identical images."""

    name = 'VSI'

    def forward(self, distorted: torch.Tensor, reference: Optional[torch.Tensor] = None) -> torch.Tensor:
        return piq.vsi(distorted.clamp(0, 1), reference.clamp(0, 1), data_range=1.0, reduction='none')
