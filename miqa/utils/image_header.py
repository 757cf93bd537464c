"""An image file's format and dimensions from its header, before anything is decoded.

:func:`read_header` recognises a file the way OpenCV's ``imdecode`` does (each decoder's
signature at the start of the file, see :data:`SIGNATURES`) and reads the width and height
from that format's header: with Pillow's header parser (lazy ``Image.open``, no pixel data
read), which must agree on the format, or with the small parsers below for the formats Pillow
does not open (Radiance HDR, PAM, PFM). A file that matches no signature is not an image
OpenCV can decode. :func:`check_pixels` then refuses dimensions above a pixel limit, so a
decompression bomb (a small file whose header promises a huge image) is refused in
microseconds instead of after OpenCV has allocated it (OpenCV's own limit,
``OPENCV_IO_MAX_IMAGE_PIXELS``, is read once when ``cv2`` is imported, 2^30 by default).
"""
import io
import re
import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from PIL import Image


@dataclass(frozen=True)
class ImageHeader:
    """What the header says: ``format`` (OpenCV's decoder), ``width``, ``height`` and whether the
    pixels decode to floating point (HDR, PFM)."""
    format: str
    width: int
    height: int
    floating: bool = False

    @property
    def pixels(self) -> int:
        return self.width * self.height


class HeaderError(ValueError):
    """The file is no image OpenCV can decode, or its header cannot be read."""


def _isspace(byte: int) -> bool:
    return byte in b' \t\n\r\x0b\x0c'


def _pnm(digits: bytes) -> Callable[[bytes], bool]:
    return lambda b: len(b) >= 3 and b[0:1] == b'P' and b[1] in digits and _isspace(b[2])


def _avif(b: bytes) -> bool:
    return b[4:8] == b'ftyp' and (b[8:12] in (b'avif', b'avis') or b'avif' in b[16:64] or b'avis' in b[16:64])


#: OpenCV's image decoders (``imgcodecs``) in the order it tries them, each with its signature test
#: and the Pillow format that parses the same header (``None``: a parser of this module).
SIGNATURES: Tuple[Tuple[str, Callable[[bytes], bool], Optional[str]], ...] = (
    ('BMP', lambda b: b[:2] == b'BM', 'BMP'),
    ('HDR', lambda b: b.startswith((b'#?RADIANCE\n', b'#?RGBE\n')), None),
    ('JPEG', lambda b: b[:3] == b'\xff\xd8\xff', 'JPEG'),
    ('WEBP', lambda b: b[:4] == b'RIFF' and b[8:12] == b'WEBP', 'WEBP'),
    ('AVIF', _avif, 'AVIF'),
    ('SUNRASTER', lambda b: b[:4] == b'\x59\xa6\x6a\x95', 'SUN'),
    ('PXM', _pnm(b'123456'), 'PPM'),
    ('PAM', _pnm(b'7'), None),
    ('PFM', _pnm(b'fF'), None),
    ('TIFF', lambda b: b[:4] in (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+'), 'TIFF'),
    ('PNG', lambda b: b[:8] == b'\x89PNG\r\n\x1a\n', 'PNG'),
    ('JPEG2000', lambda b: b[:12] == b'\x00\x00\x00\x0cjP  \r\n\x87\n' or b[:4] == b'\xff\x4f\xff\x51',
     'JPEG2000'),
    ('GIF', lambda b: b[:6] in (b'GIF87a', b'GIF89a'), 'GIF'),
    ('EXR', lambda b: b[:4] == b'\x76\x2f\x31\x01', None),
)


def identify(data: bytes) -> Optional[str]:
    """OpenCV's decoder for ``data`` (the first bytes of a file suffice), or None."""
    head = bytes(data[:64])
    return next((name for name, accepts, _ in SIGNATURES if accepts(head)), None)


def _text_header(data: bytes, limit: int = 65536) -> str:
    return bytes(data[:limit]).decode('latin-1')


def _hdr(data: bytes) -> Tuple[int, int]:
    """Radiance RGBE: header lines up to an empty line, then ``-Y <h> +X <w>`` (the one orientation
    OpenCV's reader accepts)."""
    text = _text_header(data)
    end = text.find('\n\n')
    if end < 0:
        raise HeaderError('Radiance HDR header without its empty line')
    line = text[end + 2:].split('\n', 1)[0]
    m = re.fullmatch(r'-Y (\d+) \+X (\d+)', line.strip())
    if not m:
        raise HeaderError(f'Radiance HDR resolution line {line[:40]!r} is not "-Y <height> +X <width>"')
    return int(m.group(2)), int(m.group(1))


def _pam(data: bytes) -> Tuple[int, int]:
    text = _text_header(data)
    end = text.find('ENDHDR')
    if end < 0:
        raise HeaderError('PAM header without ENDHDR')
    fields = dict(re.findall(r'^(WIDTH|HEIGHT)\s+(\d+)\s*$', text[:end], flags=re.M))
    if set(fields) != {'WIDTH', 'HEIGHT'}:
        raise HeaderError('PAM header without WIDTH and HEIGHT')
    return int(fields['WIDTH']), int(fields['HEIGHT'])


def _pfm(data: bytes) -> Tuple[int, int]:
    # 'PF' / 'Pf', then width, height and scale, separated by white space
    m = re.match(rb'P[Ff]\s+(\d+)\s+(\d+)\s', bytes(data[:256]))
    if not m:
        raise HeaderError('PFM header without width and height')
    return int(m.group(1)), int(m.group(2))


_PARSERS = {'HDR': _hdr, 'PAM': _pam, 'PFM': _pfm}
_FLOATING = ('HDR', 'PFM')


def read_header(data: bytes) -> ImageHeader:
    """The header of an encoded image (the whole file, or at least its header bytes).

    Raises :class:`HeaderError` when no OpenCV decoder accepts the signature, when Pillow
    recognises another format than OpenCV would decode, or when the header is unreadable.
    """
    fmt = identify(data)
    if fmt is None:
        raise HeaderError('not an image (no image format OpenCV decodes starts like this)')
    pil_format = next(p for name, _, p in SIGNATURES if name == fmt)
    if fmt in _PARSERS:
        width, height = _PARSERS[fmt](data)
    elif pil_format is None:
        raise HeaderError(f'{fmt} images are not supported by this OpenCV build')
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data), formats=[pil_format]) as im:  # header only
                    width, height = im.size
        except Image.DecompressionBombError as err:  # Pillow's check at open: the same limit as ours
            raise HeaderError(f'its {fmt} header promises too many pixels: {err} (downscale the image '
                              'first; the limit is 2 * PIL.Image.MAX_IMAGE_PIXELS)') from None
        except Exception as err:
            raise HeaderError(f'unreadable {fmt} header ({type(err).__name__}: {err})') from None
    if width <= 0 or height <= 0:
        raise HeaderError(f'{fmt} header gives an empty size {width}x{height}')
    return ImageHeader(fmt, width, height, fmt in _FLOATING)


def pixel_limit() -> Optional[int]:
    """The largest image accepted: Pillow's decompression-bomb error threshold,
    ``2 * PIL.Image.MAX_IMAGE_PIXELS`` (about 179 Mpx; ``None`` there disables it)."""
    return None if Image.MAX_IMAGE_PIXELS is None else 2 * int(Image.MAX_IMAGE_PIXELS)


def check_pixels(header: ImageHeader, limit: Optional[int] = None) -> None:
    """Raise :class:`HeaderError` when the header promises more than ``limit`` pixels
    (default :func:`pixel_limit`)."""
    limit = pixel_limit() if limit is None else limit
    if limit is not None and header.pixels > limit:
        raise HeaderError(f'its {header.format} header says {header.width}x{header.height} = '
                          f'{header.pixels / 1e6:.0f} Mpx, above the limit of {limit / 1e6:.0f} Mpx '
                          '(a decompression bomb, or downscale the image first; the limit is '
                          '2 * PIL.Image.MAX_IMAGE_PIXELS)')
