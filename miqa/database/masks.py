"""Binary salient-object masks (ROI vs background) of the source images (spec §3, step 2).

The authors used masks from a DINO-ViT feature pipeline, which is not published. Here a
source's mask comes from the first of these that gives a usable one (the name is recorded
per source in the build manifest as ``mask_source``):

1. ``'file'``: a mask image in a folder with the source's stem (any image extension;
   grey value > 127 = ROI; resized bilinearly to the source size if needed). An empty or
   full file mask is not usable (it would make every region-aware variant uniform).
2. ``'spectral_residual'``: spectral-residual saliency (Hou & Zhang, "Saliency Detection: A
   Spectral Residual Approach", CVPR 2007) at a 64 px working size (the saliency map smoothed
   with a Gaussian of sigma 2.5 px there, which gives object-sized blobs), thresholded with Otsu,
   opened and closed with an elliptical kernel (2 % of the long side), the largest connected
   component kept with any other at least a quarter its size (at most 3), holes filled. Usable
   when it covers 2 % .. 90 % of the image.
3. ``'center_prior'``: a centred ellipse with the image's aspect covering 1/3 of the area
   (semi-axes ``sqrt(1 / (3 pi))`` = 0.326 of width and height), always usable.

So a mask is never empty nor full (for images of at least 2 x 2 pixels).
"""
import os
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from miqa.vocab import SOURCE_EXTENSIONS

MASK_SOURCES: Tuple[str, ...] = ('file', 'spectral_residual', 'center_prior')

SR_WORKING_SIDE = 64          # Hou & Zhang work on images 64 px wide
SR_SIGMA = 2.5               # Gaussian smoothing of the saliency map, px at the working size (our choice)
MORPH_FRACTION = 0.02         # morphology kernel, fraction of the long side (odd, >= 3 px)
MAX_COMPONENTS = 3
COMPONENT_MIN_RATIO = 0.25    # other components kept when >= this fraction of the largest
SALIENCY_COVERAGE = (0.02, 0.9)
CENTER_AXIS = float(np.sqrt(1.0 / (3.0 * np.pi)))  # ellipse of area 1/3 of the image


def find_mask_files(folder: Optional[str]) -> Dict[str, str]:
    """Stem -> path of the mask images in ``folder`` (one listing; ``{}`` without a folder)."""
    if not folder:
        return {}
    found: Dict[str, str] = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext.lower() in SOURCE_EXTENSIONS:
            found.setdefault(stem, os.path.join(folder, name))
    return found


def read_mask_file(path: Optional[str], size: Tuple[int, int]) -> Optional[np.ndarray]:
    """Bool mask (> 127 = ROI) of the image at ``path``, resized to ``size`` = (h, w); ``None``
    when there is no path or the file cannot be read."""
    if not path:
        return None
    try:
        data = np.fromfile(path, np.uint8)
    except OSError:
        return None
    raw = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if raw is None:
        return None
    h, w = size
    if raw.shape != (h, w):
        raw = cv2.resize(raw, (w, h), interpolation=cv2.INTER_LINEAR)
    return raw > 127


def spectral_residual_saliency(image: np.ndarray) -> np.ndarray:
    """Spectral-residual saliency of an RGB uint8 image: float32 map in [0, 1] of its size.

    ``A = log |F(I)|``, ``R = A - box3(A)``, ``S = gauss(|F^-1(exp(R + i angle F(I)))|^2)``,
    computed on the grey image with its long side resized to 64 px (Hou & Zhang 2007), then
    resized back bilinearly and scaled to [0, 1] (min-max).
    """
    h, w = image.shape[:2]
    scale = SR_WORKING_SIDE / max(h, w)
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    grey = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
    spectrum = np.fft.fft2(grey.astype(np.float64) / 255.0)
    log_amplitude = np.log(np.abs(spectrum) + 1e-8)
    residual = log_amplitude - cv2.blur(log_amplitude, (3, 3), borderType=cv2.BORDER_REPLICATE)
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    saliency = cv2.GaussianBlur(saliency.astype(np.float32), (0, 0), SR_SIGMA,
                                borderType=cv2.BORDER_REPLICATE)
    saliency = cv2.resize(saliency, (w, h), interpolation=cv2.INTER_LINEAR)
    low, high = float(saliency.min()), float(saliency.max())
    return (saliency - low) / (high - low) if high > low else np.zeros((h, w), np.float32)


def _odd(n: float, minimum: int = 3) -> int:
    n = max(minimum, int(round(n)))
    return n if n % 2 else n + 1


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """Open + close, keep the largest components (spec of this module), fill their holes."""
    h, w = mask.shape
    k = _odd(MORPH_FRACTION * max(h, w))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if count <= 1:
        return np.zeros_like(mask, bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(-areas, kind='stable')[:MAX_COMPONENTS]
    keep = [i + 1 for i in order if areas[i] >= COMPONENT_MIN_RATIO * areas[order[0]]]
    kept = np.isin(labels, keep).astype(np.uint8)
    contours, _ = cv2.findContours(kept, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(kept)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def saliency_mask(image: np.ndarray) -> Optional[np.ndarray]:
    """Otsu-thresholded, cleaned spectral-residual mask, or ``None`` when its coverage is not in
    ``SALIENCY_COVERAGE``."""
    saliency = (spectral_residual_saliency(image) * 255.0 + 0.5).astype(np.uint8)
    _, binary = cv2.threshold(saliency, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = clean_mask(binary.astype(bool))
    low, high = SALIENCY_COVERAGE
    return mask if low <= mask.mean() <= high else None


def center_prior_mask(size: Tuple[int, int]) -> np.ndarray:
    """Centred ellipse with the image's aspect covering about 1/3 of ``size`` = (h, w);
    at least one pixel in and one out for images of at least 2 pixels."""
    h, w = size
    y, x = np.ogrid[:h, :w]
    ry, rx = max(CENTER_AXIS * h, 0.5), max(CENTER_AXIS * w, 0.5)
    mask = ((y + 0.5 - h / 2) / ry) ** 2 + ((x + 0.5 - w / 2) / rx) ** 2 <= 1.0
    mask[h // 2, w // 2] = True
    if mask.all() and mask.size > 1:
        mask.flat[0] = False
    return mask


def _usable(mask: Optional[np.ndarray]) -> bool:
    return mask is not None and bool(mask.any()) and not bool(mask.all())


MaskProvider = Callable[[np.ndarray, Optional[str]], Optional[np.ndarray]]
PROVIDERS: Mapping[str, MaskProvider] = {
    'file': lambda image, path: read_mask_file(path, image.shape[:2]),
    'spectral_residual': lambda image, path: saliency_mask(image),
    'center_prior': lambda image, path: center_prior_mask(image.shape[:2]),
}


def source_mask(image: np.ndarray, mask_path: Optional[str] = None,
                order: Sequence[str] = MASK_SOURCES) -> Tuple[np.ndarray, str]:
    """The ROI mask of ``image`` (RGB uint8) and which provider gave it (see the module doc).

    Args:
        image: the (downscaled) pristine source, H x W x 3 uint8.
        mask_path: the source's mask file, if any (see :func:`find_mask_files`).
        order: providers tried in turn; the last one should always succeed.

    Returns:
        (bool H x W mask, ``mask_source`` name).
    """
    for name in order:
        mask = PROVIDERS[name](image, mask_path)
        if _usable(mask):
            return mask, name
    raise ValueError(f'no usable mask for an image of shape {image.shape} from providers {list(order)}')
