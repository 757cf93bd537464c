"""Region-aware fusion of two distortion levels through a soft ROI mask (spec §3, step 2).

The binary ROI mask is softened once per source (:func:`soft_mask`):

* ``k`` = the soft kernel, 65 px for a 500 px long side, scaled linearly with the image's
  long side (odd, at least 3; 57 px at 427 x 320): ``b = GaussianBlur(mask, k x k)`` with
  OpenCV's sigma for that size (``0.3 * ((k - 1) / 2 - 1) + 0.8``, 10.1 px at k = 65);
* the *core* = the mask eroded by an ellipse of ``CORE_KERNEL`` (15 px at 500 px, scaled) is
  kept at exactly 1; so that ``m`` stays continuous (no seam at the core's edge, where ``b``
  is about 0.8), ``1 - b`` is tapered to 0 over ``k / 4`` px towards the core:
  ``m = 1 - (1 - b) * min(1, dist_to_core / (k / 4))`` (``m = b`` without a core, i.e. a ROI
  thinner than the core kernel: it is fused throughout);
* the background eroded by a ``k x k`` square (beyond the blur's reach, where ``b == 0``) is
  exactly 0; between core and eroded background lies the transition band.

Then ``fused = fg_img * m + bg_img * (1 - m)`` (:func:`fuse`), followed by a light blur
(kernel 5 px at 500 px, scaled the same way) applied only across the band with weight
``4 m (1 - m)`` (1 in the band's middle, 0 at its edges). Outside the band the result is
exactly the fg image (core) or the bg image (eroded background), byte for byte.

:func:`region_variants` makes the 25 official variants of one distortion (names from
:mod:`miqa.datasets.naming`): 5 uniform levels, 10 ROI-dominated (fg level i > bg level j)
and 10 background-dominated (j > i).
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from miqa.datasets.naming import VARIANTS, format_name
from miqa.distortions import distortion_levels

REFERENCE_SIDE = 500   # image long side at which the kernels below are meant (ImageNet/COCO-like)
SOFT_KERNEL = 65       # spec §3: "large Gaussian blur, about 65 px kernel"
CORE_KERNEL = 15       # erosion (ellipse) of the mask into the core kept at 1
LIGHT_KERNEL = 5       # light blur across the transition band


def scaled_kernel(kernel: int, size: tuple, reference_side: int = REFERENCE_SIDE) -> int:
    """``kernel`` (meant for a ``reference_side`` long side) scaled to ``size`` = (h, w): odd, >= 3."""
    k = max(3, int(round(kernel * max(size[:2]) / reference_side)))
    return k if k % 2 else k + 1


@dataclass(frozen=True)
class SoftMask:
    """A softened ROI mask: ``m`` float32 H x W in [0, 1], exactly 1 on ``core``, 0 on ``background``.

    ``window`` (y0, y1, x0, x1) bounds the transition band plus the light blur's reach: outside
    it a fused image is the fg image on the core and the bg image elsewhere.
    """
    m: np.ndarray           # float32 H x W
    core: np.ndarray        # bool H x W, m == 1
    background: np.ndarray  # bool H x W, m == 0
    light_kernel: int
    window: Tuple[int, int, int, int]
    band_weight: np.ndarray  # float32 window H x W x 1: 4 m (1 - m), the light blur's share

    @property
    def shape(self) -> tuple:
        return self.m.shape

    @property
    def band(self) -> np.ndarray:
        """bool H x W: the transition band, 0 < m < 1 up to rounding (neither core nor background)."""
        return ~(self.core | self.background)


def soft_mask(mask: np.ndarray, soft_kernel: int = SOFT_KERNEL, core_kernel: int = CORE_KERNEL,
              light_kernel: int = LIGHT_KERNEL, reference_side: int = REFERENCE_SIDE) -> SoftMask:
    """Soften a binary ROI mask (H x W, bool or {0, 1}) as described in the module doc (spec §3).

    All-ones masks give ``m == 1`` everywhere, all-zeros ``m == 0`` (then :func:`fuse` returns
    the fg, resp. bg image unchanged). Kernels are given for a ``reference_side`` long side.
    """
    binary = np.asarray(mask).astype(bool)
    if binary.ndim != 2:
        raise ValueError(f'mask must be H x W, got shape {binary.shape}')
    size = binary.shape
    k = scaled_kernel(soft_kernel, size, reference_side)
    as_u8 = binary.astype(np.uint8)
    m = cv2.GaussianBlur(as_u8.astype(np.float32), (k, k), 0, borderType=cv2.BORDER_REPLICATE)
    np.clip(m, 0.0, 1.0, out=m)
    kc = scaled_kernel(core_kernel, size, reference_side)
    core = cv2.erode(as_u8, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kc, kc)),
                     borderType=cv2.BORDER_REPLICATE).astype(bool)
    background = cv2.erode(1 - as_u8, np.ones((k, k), np.uint8), borderType=cv2.BORDER_REPLICATE).astype(bool)
    if core.any():  # taper 1 - m to 0 over k / 4 px towards the core: m continuous and 1 on it
        to_core = cv2.distanceTransform((~core).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        ramp = np.minimum(to_core * np.float32(4.0 / k), np.float32(1.0))
        m = np.float32(1.0) - (np.float32(1.0) - m) * ramp
    m[core] = 1.0
    m[background] = 0.0
    light = scaled_kernel(light_kernel, size, reference_side)
    band = ~(core | background)
    if band.any():
        rows, cols = np.flatnonzero(band.any(1)), np.flatnonzero(band.any(0))
        r = light // 2
        window = (max(0, rows[0] - r), min(size[0], rows[-1] + r + 1),
                  max(0, cols[0] - r), min(size[1], cols[-1] + r + 1))
    else:
        window = (0, 0, 0, 0)
    m_win = m[window[0]:window[1], window[2]:window[3], None]
    weight = (np.float32(4.0) * m_win * (np.float32(1.0) - m_win)).astype(np.float32)
    return SoftMask(m, core, background, light, tuple(int(v) for v in window), weight)


def fuse(fg_img: np.ndarray, bg_img: np.ndarray, mask: Union[np.ndarray, SoftMask]) -> np.ndarray:
    """``fg_img * m + bg_img * (1 - m)`` with a light blur across the transition band (spec §3).

    Args:
        fg_img, bg_img: uint8 H x W x 3 images (the ROI's and the background's distortion).
        mask: a :class:`SoftMask`, or a binary H x W mask (softened here; soften once with
            :func:`soft_mask` when fusing many pairs).

    Returns:
        uint8 H x W x 3: exactly ``fg_img`` on the core, exactly ``bg_img`` on the eroded background.
    """
    soft = mask if isinstance(mask, SoftMask) else soft_mask(mask)
    if fg_img.shape != bg_img.shape or fg_img.shape[:2] != soft.shape:
        raise ValueError(f'fg {fg_img.shape}, bg {bg_img.shape} and mask {soft.shape} sizes differ')
    out = bg_img.copy()
    np.copyto(out, fg_img, where=soft.core[:, :, None])
    y0, y1, x0, x1 = soft.window
    if y1 <= y0:
        return out
    fg = fg_img[y0:y1, x0:x1].astype(np.float32)
    bg = bg_img[y0:y1, x0:x1].astype(np.float32)
    blended = fg - bg  # bg + (fg - bg) * m: exactly fg where m == 1 and bg where m == 0
    blended *= soft.m[y0:y1, x0:x1, None]
    blended += bg
    smooth = cv2.GaussianBlur(blended, (soft.light_kernel,) * 2, 0, borderType=cv2.BORDER_REPLICATE)
    smooth -= blended
    smooth *= soft.band_weight
    blended += smooth
    blended += 0.5
    np.clip(blended, 0.0, 255.0, out=blended)
    out[y0:y1, x0:x1] = blended.astype(np.uint8)
    return out


def region_variants(source: np.ndarray, distortion: str, seed: int, mask: Union[np.ndarray, SoftMask],
                    src_id: str, levels: Optional[List[np.ndarray]] = None,
                    variants: Sequence[Tuple[str, int, int]] = VARIANTS) -> Dict[str, np.ndarray]:
    """The 25 official variants of ``source`` under ``distortion`` (spec §2-3), name -> uint8 image
    (or only ``variants``, rows of :data:`~miqa.datasets.naming.VARIANTS`).

    The 5 levels are computed once (``distortion_levels(source, distortion, seed)``, or passed
    as ``levels``); uniform variants are the levels themselves, ``fg_stronger_fg<i>_bg<j>`` /
    ``bg_stronger_fg<i>_bg<j>`` are ``fuse(level i, level j, mask)``. Names come from
    :func:`miqa.datasets.naming.format_name` in the official order.
    """
    if levels is None:
        levels = distortion_levels(source, distortion, seed)
    soft = mask if isinstance(mask, SoftMask) else soft_mask(mask)
    return {format_name(src_id, distortion, region, fg, bg):
            levels[fg - 1] if fg == bg else fuse(levels[fg - 1], levels[bg - 1], soft)
            for region, fg, bg in variants}


def fusion_parameters(soft_kernel: int = SOFT_KERNEL, core_kernel: int = CORE_KERNEL,
                      light_kernel: int = LIGHT_KERNEL,
                      reference_side: int = REFERENCE_SIDE) -> Dict[str, Any]:
    """The fusion settings (the :func:`soft_mask` keywords) as recorded in a build manifest."""
    return dict(soft_kernel=soft_kernel, core_kernel=core_kernel, light_kernel=light_kernel,
                reference_side=reference_side)
