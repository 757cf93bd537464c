"""Noise distortion: gaussian_noise.

After ImageNet-C (Hendrycks & Dietterich 2019, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations"). The table has 12
settings, mild -> severe; ImageNet-C's severities 1-5 sit at settings 1, 5, 8,
10, 12 (the PSNR ranks kept as MIQD levels).
"""
import numpy as np

from miqa.utils.image import to_uint8

from .core import as_float01, register_distortion


def noise_field(shape: tuple, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Float32 i.i.d. N(0, sigma^2) samples (scaled in place: one array of the image's size)."""
    field = rng.standard_normal(shape, dtype=np.float32)
    field *= np.float32(sigma)
    return field


# std of the additive noise in [0, 1] units (ImageNet-C: .08 .12 .18 .26 .38)
GAUSSIAN_NOISE = (0.08, 0.09, 0.10, 0.11, 0.12, 0.14, 0.16, 0.18, 0.22, 0.26, 0.32, 0.38)


@register_distortion(GAUSSIAN_NOISE, category='noise')
def gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add i.i.d. N(0, sigma^2) per pixel and channel, clip (ImageNet-C ``gaussian_noise``)."""
    x = as_float01(img)
    x += noise_field(x.shape, sigma, rng)
    return to_uint8(x)
