"""Digital distortions: contrast, pixelate, jpeg_compression.

After ImageNet-C (Hendrycks & Dietterich 2019, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations"). Each table has 12
settings, mild -> severe; ImageNet-C's severities 1-5 sit at settings
1, 5, 8, 10, 12 (the PSNR ranks kept as MIQD levels), the others interpolate.
"""
import cv2
import numpy as np

from .core import register_distortion

# factor c on the deviation from the per-channel mean (ImageNet-C: .4 .3 .2 .1 .05)
CONTRAST = (0.40, 0.375, 0.35, 0.325, 0.30, 0.265, 0.23, 0.20, 0.15, 0.10, 0.075, 0.05)


@register_distortion(CONTRAST, category='digital')
def contrast(img: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Pull every channel towards its mean: ``(x - mean) * c + mean`` (ImageNet-C ``contrast``).

    A per-channel affine map of uint8 values, applied as a 256-entry look-up table.
    """
    means = np.array(cv2.mean(img)[:3])
    values = np.arange(256, dtype=np.float64)[:, None]
    lut = np.clip(np.rint(values * c + means * (1.0 - c)), 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut.reshape(1, 256, 3))


# side scale of the low-resolution image (ImageNet-C: .6 .5 .4 .3 .25)
PIXELATE = (0.60, 0.575, 0.55, 0.525, 0.50, 0.465, 0.43, 0.40, 0.35, 0.30, 0.275, 0.25)


@register_distortion(PIXELATE, category='digital')
def pixelate(img: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Downscale by ``c`` (area) and upscale back (nearest), as ImageNet-C ``pixelate`` (box/box)."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, int(w * c)), max(1, int(h * c))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


# libjpeg quality (ImageNet-C: 25 18 15 10 7); OpenCV's default 4:2:0 chroma subsampling, like PIL's
JPEG_QUALITY = (25, 23, 21, 19, 18, 17, 16, 15, 12, 10, 8, 7)


@register_distortion(JPEG_QUALITY, category='digital')
def jpeg_compression(img: np.ndarray, quality: int, rng: np.random.Generator) -> np.ndarray:
    """Encode and decode as JPEG at ``quality`` (ImageNet-C ``jpeg_compression``) with ``cv2.imencode``."""
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f'JPEG encoding failed for an image of shape {img.shape}')
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
