"""The 10 MIQD-2.5M distortion types, registered in ``miqa.registry.DISTORTIONS``.

ImageNet-C-style corruptions (Hendrycks & Dietterich 2019, "Benchmarking Neural
Network Robustness to Common Corruptions and Perturbations"), each with 12
candidate settings; :func:`apply_distortion` ranks the candidates by PSNR and
keeps ranks 1, 5, 8, 10, 12 as levels 1-5 (MIQA spec §3).

- digital: contrast, pixelate, jpeg_compression (``digital.py``)
- blur: motion_blur, defocus_blur, glass_blur (``blur.py``)
- environmental: fog, snow, darkness (``weather.py``)
- noise: gaussian_noise (``noise.py``)

The public names below live in ``core.py`` (``to_rgb_uint8`` comes from :mod:`miqa.utils.image`).
"""
from . import blur, digital, noise, weather  # noqa: F401  (registers the 10 types; they import core)
from .core import (
    LEVEL_RANKS,
    NUM_CANDIDATES,
    apply_distortion,
    candidates,
    distortion_levels,
    distortion_names,
    get_distortion,
    psnr,
    rank_by_psnr,
    to_rgb_uint8,
)

__all__ = ['apply_distortion', 'distortion_levels', 'candidates', 'distortion_names', 'get_distortion',
           'psnr', 'rank_by_psnr', 'to_rgb_uint8', 'LEVEL_RANKS', 'NUM_CANDIDATES']
