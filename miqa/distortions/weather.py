"""Environmental distortions: fog, snow, darkness.

Fog and snow after ImageNet-C (Hendrycks & Dietterich 2019, "Benchmarking
Neural Network Robustness to Common Corruptions and Perturbations"), sized to
the image and without Wand; darkness is a low-light model (ImageNet-C has only
``brightness``, the opposite direction). Each table has 12 settings, mild ->
severe; for fog and snow ImageNet-C's severities 1-5 sit at settings 1, 5, 8,
10, 12 (the PSNR ranks kept as MIQD levels), the others interpolate.
"""
import math

import cv2
import numpy as np

from miqa.utils.image import to_uint8

from .blur import motion_blur_array
from .core import as_float01, register_distortion
from .noise import noise_field as _noise

# Larger maps are made at this size and resized (bilinear): the octave this drops has a std of about
# 0.001 of the map (measured at decay 1.4, the roughest), under a quarter of a grey level in the output.
FRACTAL_MAX_SIZE = 512


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Square ``size`` x ``size`` (a power of two) diamond-square height map in [0, 1], float64.

    ImageNet-C's generator: on a torus, each octave sets square centres, then
    edge midpoints, to the mean of their 4 neighbours plus uniform noise of
    amplitude ``wibble ** 2``; ``wibble`` starts at 100 and is divided by
    ``decay`` per octave (smaller decay = rougher fog). Vectorised per octave.
    """
    if size < 2 or size & (size - 1):
        raise ValueError(f'size must be a power of two >= 2, got {size}')
    grid = np.zeros((size, size), np.float64)
    step, wibble = size, 100.0
    while step >= 2:
        half, amp = step // 2, wibble ** 2
        corners = grid[0::step, 0::step]
        sums = corners + np.roll(corners, -1, axis=0)
        sums += np.roll(sums, -1, axis=1)
        grid[half::step, half::step] = sums / 4 + amp * rng.uniform(-1.0, 1.0, sums.shape)
        centres = grid[half::step, half::step]
        # midpoints of horizontal edges: left/right corners and the centres above/below
        top = corners + np.roll(corners, -1, axis=1) + centres + np.roll(centres, 1, axis=0)
        grid[0::step, half::step] = top / 4 + amp * rng.uniform(-1.0, 1.0, top.shape)
        # midpoints of vertical edges: upper/lower corners and the centres left/right
        left = corners + np.roll(corners, -1, axis=0) + centres + np.roll(centres, 1, axis=1)
        grid[half::step, 0::step] = left / 4 + amp * rng.uniform(-1.0, 1.0, left.shape)
        step, wibble = half, wibble / decay
    grid -= grid.min()
    peak = grid.max()
    return grid / peak if peak > 0 else grid


def fog_layer(height: int, width: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Float32 H x W fog: the top-left corner of a map of the next power of two >= max(H, W).

    ImageNet-C crops a 256 map for 224 px images; maps above
    ``FRACTAL_MAX_SIZE`` are made at that size and resized (bilinear).
    """
    full = 1 << max(1, math.ceil(math.log2(max(height, width))))
    size = min(full, FRACTAL_MAX_SIZE)
    crop_h, crop_w = max(1, math.ceil(height * size / full)), max(1, math.ceil(width * size / full))
    layer = plasma_fractal(size, decay, rng)[:crop_h, :crop_w].astype(np.float32)
    if (crop_h, crop_w) != (height, width):
        layer = cv2.resize(layer, (width, height), interpolation=cv2.INTER_LINEAR)
    return layer


# (fog strength, fractal decay) (ImageNet-C: (1.5,2) (2,2) (2.5,1.7) (2.5,1.5) (3,1.4))
FOG = ((1.5, 2.0), (1.6, 2.0), (1.75, 2.0), (1.9, 2.0), (2.0, 2.0), (2.15, 1.9),
       (2.35, 1.8), (2.5, 1.7), (2.5, 1.6), (2.5, 1.5), (2.75, 1.45), (3.0, 1.4))


@register_distortion(FOG, category='environmental')
def fog(img: np.ndarray, param: tuple, rng: np.random.Generator) -> np.ndarray:
    """Add ``strength`` x a plasma fractal, rescale to the image's peak (ImageNet-C ``fog``)."""
    strength, decay = param
    x = as_float01(img)
    peak = float(x.max())
    x += np.float32(strength) * fog_layer(img.shape[0], img.shape[1], decay, rng)[..., None]
    x *= np.float32(peak / (peak + strength))
    return to_uint8(x)


def _clipped_zoom(layer: np.ndarray, zoom: float) -> np.ndarray:
    """Zoom a 2-D array by ``zoom`` about its centre, keeping its size (bilinear; crop >= 1 px)."""
    h, w = layer.shape
    ch, cw = max(1, math.ceil(h / zoom)), max(1, math.ceil(w / zoom))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = layer[top:top + ch, left:left + cw]
    zh, zw = max(h, math.ceil(ch * zoom)), max(w, math.ceil(cw * zoom))
    big = cv2.resize(crop, (zw, zh), interpolation=cv2.INTER_LINEAR)
    top, left = (zh - h) // 2, (zw - w) // 2
    return big[top:top + h, left:left + w]


# (flake mean, flake std, flake zoom, threshold, blur radius, blur sigma, image weight)
# ImageNet-C: (.1,.3,3,.5,10,4,.8) (.2,.3,2,.5,12,4,.7) (.55,.3,4,.9,12,8,.7)
#             (.55,.3,4.5,.85,12,8,.65) (.55,.3,2.5,.85,12,12,.55); settings between them interpolate
SNOW = ((0.10, 0.3, 3.0, 0.50, 10, 4, 0.80),
        (0.125, 0.3, 2.75, 0.50, 10.5, 4, 0.775),
        (0.15, 0.3, 2.5, 0.50, 11, 4, 0.75),
        (0.175, 0.3, 2.25, 0.50, 11.5, 4, 0.725),
        (0.20, 0.3, 2.0, 0.50, 12, 4, 0.70),
        (0.32, 0.3, 2.65, 0.63, 12, 5.3, 0.70),
        (0.43, 0.3, 3.35, 0.77, 12, 6.7, 0.70),
        (0.55, 0.3, 4.0, 0.90, 12, 8, 0.70),
        (0.55, 0.3, 4.25, 0.875, 12, 8, 0.675),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 3.5, 0.85, 12, 10, 0.60),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55))


@register_distortion(SNOW, category='environmental')
def snow(img: np.ndarray, param: tuple, rng: np.random.Generator) -> np.ndarray:
    """Falling snow (ImageNet-C ``snow``): thresholded zoomed noise, motion-blurred, added twice.

    The flake layer is Gaussian noise zoomed about the centre, zeroed below the
    threshold, motion-blurred at an angle in [-135, -45) degrees; the image is
    whitened towards ``1.5 * gray + 0.5`` by ``1 - weight``; the layer and its
    180-degree rotation are added.
    """
    loc, scale, zoom, threshold, radius, sigma, weight = param
    h, w = img.shape[:2]
    layer = rng.standard_normal((h, w), dtype=np.float32)
    layer *= np.float32(scale)
    layer += np.float32(loc)
    layer = _clipped_zoom(layer, zoom)
    layer[layer < threshold] = 0
    np.clip(layer, 0.0, 1.0, out=layer)
    layer = motion_blur_array(layer, radius, sigma, rng.uniform(-135.0, -45.0))
    x = as_float01(img)
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
    gray *= 1.5
    gray += 0.5
    whitened = np.maximum(x, gray[..., None])
    whitened *= np.float32(1.0 - weight)
    x *= np.float32(weight)
    x += whitened
    del whitened
    x += (layer + layer[::-1, ::-1])[..., None]
    return to_uint8(x)


# (gain, gamma, noise std in [0, 1] units): V' = gain * V ** gamma on HSV value, hue and saturation
# kept; then mild Gaussian sensor noise
DARKNESS = ((0.85, 1.1, 0.0), (0.78, 1.2, 0.0), (0.72, 1.3, 0.004), (0.66, 1.4, 0.006),
            (0.60, 1.5, 0.008), (0.54, 1.6, 0.010), (0.48, 1.7, 0.012), (0.43, 1.8, 0.014),
            (0.38, 1.95, 0.016), (0.33, 2.1, 0.018), (0.29, 2.3, 0.020), (0.25, 2.5, 0.022))


@register_distortion(DARKNESS, category='environmental')
def darkness(img: np.ndarray, param: tuple, rng: np.random.Generator) -> np.ndarray:
    """Low light: darken HSV value by gain and gamma (colour kept), add mild noise.

    Scaling V = max(R, G, B) with H and S fixed scales the RGB triple, so the
    pixel is multiplied by ``gain * V ** (gamma - 1)``. Not in ImageNet-C (its
    ``brightness`` adds to V); the noise std never exceeds 2.2 % of full scale.
    """
    gain, gamma, noise = param
    values = np.arange(256, dtype=np.float64) / 255.0
    factor = (gain * values ** (gamma - 1.0) / 255.0).astype(np.float32)  # per V, in [0, 1] units
    value = np.maximum(np.maximum(img[..., 0], img[..., 1]), img[..., 2])
    x = img.astype(np.float32)
    x *= factor[value][..., None]
    if noise > 0:
        x += _noise(x.shape, noise, rng)
    return to_uint8(x)
