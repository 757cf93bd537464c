"""Images to RGB uint8 HxWx3: the one rule set of the dataset, the API, the builder, the
distortions and the HVS scorers.

:func:`to_rgb_uint8` converts arrays (documented, never guessed from values):

- shape HxW or HxWx1 (gray) -> the channel repeated 3 times; HxWx4 -> alpha dropped (colour
  kept, not composited); HxWx3 kept; anything else -> ``ValueError`` (a CxHxW array is named
  as channel-first);
- dtype uint8 kept; uint16 -> ``round(x / 257)`` (65535 -> 255, exact); bool -> {0, 255};
  float -> must be finite and lie in [0, 1] (1e-3 of slack, then clipped), ``round(x * 255)``;
  NaN, infinity or a value outside [0, 1] -> ``ValueError`` naming the input; any other dtype
  -> :class:`PixelTypeError` (a ``TypeError`` and a ``ValueError``: its range is ambiguous);
- an empty image -> ``ValueError``.

:func:`read_rgb` decodes a file with OpenCV after checking its header, then applies the same
rules (BGR in the file). numpy only at import; OpenCV and Pillow load on the first read.
"""
from typing import Any, Optional

import numpy as np

#: the slack of the float rule: values in [-FLOAT_SLACK, 1 + FLOAT_SLACK] are clipped to [0, 1]
FLOAT_SLACK = 1e-3


class PixelTypeError(TypeError, ValueError):
    """An array of a dtype without a documented range (int32, complex ...)."""


def _named(what: Optional[str], message: str) -> str:
    return f'{what}: {message}' if what else message


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float in [0, 1] (clipped) -> rounded uint8; may work in place on ``x``."""
    if x.dtype != np.float32:
        x = x.astype(np.float32)
    np.clip(x, 0.0, 1.0, out=x)
    x *= 255.0
    x += 0.5
    return x.astype(np.uint8)


def _pixels_to_uint8(arr: np.ndarray, what: Optional[str]) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) * 2 + 257) // 514).astype(np.uint8)  # round(x / 257), exact
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError(_named(what, 'contains NaN or infinite values'))
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -FLOAT_SLACK or hi > 1 + FLOAT_SLACK:
            raise ValueError(_named(what, f'float images must lie in [0, 1], got values in '
                                          f'[{lo:.4g}, {hi:.4g}] (pass uint8 for 0..255 data)'))
        return to_uint8(arr.astype(np.float32, copy=True))  # to_uint8 works in place: never on the caller's
    raise PixelTypeError(_named(what, f'unsupported pixel type {arr.dtype} '
                                      '(use uint8, uint16, bool or float in [0, 1])'))


def to_rgb_uint8(image: Any, channel_order: str = 'rgb', what: Optional[str] = None) -> np.ndarray:
    """``image`` (an array or array-like, ``channel_order`` ``'rgb'`` or ``'bgr'``) as a
    C-contiguous RGB uint8 HxWx3 array by the rules of the module docstring; errors start with
    ``what`` (a description of the input) when given."""
    if channel_order not in ('rgb', 'bgr'):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    arr = np.asarray(image)
    if arr.size == 0:
        raise ValueError(_named(what, f'the image is empty (shape {arr.shape})'))
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        raise ValueError(_named(what, f'shape {arr.shape} looks channel-first (CxHxW); images are HxWxC '
                                      '(transpose it; torch tensors are taken as CxHxW)'))
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(_named(what, f'expected HxW, HxWx1, HxWx3 or HxWx4, got shape {arr.shape}'))
    arr = _pixels_to_uint8(arr[:, :, :3], what)
    if arr.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(arr, 3, axis=2))
    return np.ascontiguousarray(arr[:, :, ::-1] if channel_order == 'bgr' else arr)


def read_rgb(path: str) -> np.ndarray:
    """Decode an image file to RGB uint8 HxWx3 (:func:`to_rgb_uint8`'s rules: gray -> 3 channels,
    alpha dropped, 16-bit scaled to 8-bit). Raises ``OSError`` naming the file when it cannot be read.

    The one image reader of the dataset, the API, the database builder and the HVS scorers.
    Before decoding, the header must name a format OpenCV decodes to integers and at most
    :func:`miqa.utils.image_header.pixel_limit` pixels (about 179 Mpx), so a decompression
    bomb costs microseconds, not gigabytes; a file whose header is fine but whose data does not
    decode is reported as truncated or corrupt.
    """
    import cv2

    from .image_header import HeaderError, check_pixels, read_header

    try:
        buffer = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise OSError(f'cannot read image {path}: {err}') from None
    if not buffer.size:
        raise OSError(f'cannot decode image {path} (empty file)')
    try:
        header = read_header(buffer)
        check_pixels(header)
        if header.floating:
            raise HeaderError(f'{header.format} images decode to floating point, not 8/16-bit pixels')
    except HeaderError as err:
        raise OSError(f'cannot decode image {path}: {err}') from None
    try:
        img = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise OSError(f'cannot read image {path}: {err}') from None
    if img is None:
        raise OSError(f'cannot decode image {path}: {_damage(header.format, buffer)} '
                      f'(its header says {header.format} {header.width}x{header.height})')
    try:
        return to_rgb_uint8(img, 'bgr')
    except ValueError as err:
        raise OSError(f'cannot read image {path}: {err}') from None


def _damage(fmt: str, buffer: np.ndarray) -> str:
    """Why a file with a readable header did not decode: truncated (its end marker is missing)
    or corrupt."""
    tail = buffer[-64:].tobytes().rstrip(b'\x00')
    ends = {'JPEG': tail.endswith(b'\xff\xd9'), 'PNG': b'IEND' in tail, 'GIF': tail.endswith(b';')}
    if fmt in ends and not ends[fmt]:
        return f'the {fmt} data is truncated (no end marker; an interrupted download or copy?)'
    return f'the {fmt} data is truncated or corrupt'
