"""Human-vision (HVS) quality scorers, scored against machine-quality labels (spec §7).

``build_scorer('SSIM')`` builds one from the registry ``miqa.registry.SCORERS``; every scorer
implements :class:`~miqa.hvs.base.HVSScorer` (``score(distorted, reference=None)``).
"""
from typing import Any, Dict, Union

from miqa.registry import SCORERS

from .base import HVSScorer, scorer_status
from .classic import PSNR, SSIM, VSI
from .confidence import ClassifierConfidence, Lite0MSP
from .deep_fr import DISTS, LPIPS
from .hyperiqa import HyperIQA
from .maniqa import MANIQA, MANIQAKADID, MANIQAPIPAL


def build_scorer(cfg: Union[str, Dict[str, Any]], **kwargs) -> HVSScorer:
    """Build a scorer from its registered name (``'PSNR'``, or ``'psnr'``: names are matched
    regardless of case) or a config dict (``dict(type=...)``). An unknown name raises ``KeyError``
    with the closest registered names."""
    cfg = dict(type=cfg) if isinstance(cfg, str) else dict(cfg)
    cfg.update(kwargs)
    return SCORERS.build(cfg)


__all__ = ['HVSScorer', 'build_scorer', 'SCORERS', 'PSNR', 'SSIM', 'VSI', 'LPIPS', 'DISTS', 'scorer_status',
           'HyperIQA', 'MANIQA', 'MANIQAKADID', 'MANIQAPIPAL', 'ClassifierConfidence',
           'Lite0MSP']
