"""The one download path: a weight file missing from ``$MIQA_HOME/weights/`` is fetched, checked
and recorded (:func:`fetch`), unless ``MIQA_OFFLINE=1`` or ``download=False``; offline or when the
download fails, a :class:`FileNotFoundError` names the file, its URL and where to put it.

The transport is a function ``transport(url, fileobj, progress)`` that writes the bytes;
:data:`TRANSPORTS` maps URL schemes to it (``file://`` URLs work too; Google-Drive links go to
the direct-download endpoint), and :func:`fetch` takes one explicitly, so tests never touch the
network. Standard library only (``tqdm`` for the progress bar, on first download).
"""
import os
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Callable, Dict, Optional, Union

from . import checksums
from .checksums import ChecksumError, expected_sha256, file_sha256, recorded_sha256
from .lookup import missing_error
from .table import WeightFile, weight_entry, weights_dir

OFFLINE_ENV = 'MIQA_OFFLINE'
Transport = Callable[[str, IO[bytes], bool], None]


def offline() -> bool:
    """``MIQA_OFFLINE`` set to 1/true/yes: never try to download."""
    return os.environ.get(OFFLINE_ENV, '').strip().lower() in ('1', 'true', 'yes')


def drive_direct_url(url: str) -> str:
    """Google Drive share links (``/uc?id=``, ``/file/d/<id>/``) -> the direct-download endpoint
    (which skips the "cannot scan for viruses" page of large files); other URLs unchanged."""
    parsed = urllib.parse.urlparse(url)
    if parsed.netloc not in ('drive.google.com', 'docs.google.com'):
        return url
    file_id = urllib.parse.parse_qs(parsed.query).get('id', [None])[0]
    m = re.search(r'/file/d/([^/]+)', parsed.path)
    file_id = file_id or (m.group(1) if m else None)
    if not file_id:
        return url
    return f'https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t'


def urllib_transport(url: str, fileobj: IO[bytes], progress: bool = True, timeout: float = 60.0) -> None:
    """Stream ``url`` (http(s) or file) into ``fileobj`` with a tqdm progress bar."""
    from tqdm import tqdm

    request = urllib.request.Request(drive_direct_url(url), headers={'User-Agent': 'miqa'})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        ctype = response.headers.get('Content-Type', '') or ''
        if ctype.startswith('text/html'):
            raise OSError(f'{url} returned a web page, not the weight file (Google Drive quota or '
                          'a changed link?)')
        total = int(response.headers.get('Content-Length') or 0) or None
        with tqdm(total=total, unit='B', unit_scale=True, unit_divisor=1024, disable=not progress,
                  desc=Path(urllib.parse.urlparse(url).path).name or 'download') as bar:
            for block in iter(lambda: response.read(1 << 20), b''):
                fileobj.write(block)
                bar.update(len(block))


#: URL scheme -> transport. Tests put a local function here (or pass ``transport=``).
TRANSPORTS: Dict[str, Transport] = {'http': urllib_transport, 'https': urllib_transport,
                                    'file': urllib_transport}


def download_file(url: str, dst: os.PathLike, sha256: Optional[str] = None,
                  transport: Optional[Transport] = None, progress: bool = True) -> str:
    """Download ``url`` to ``dst`` atomically (temporary file + rename) and return its SHA-256.

    With ``sha256`` given (a digest or a published prefix), a different digest raises
    :class:`~miqa.hub.checksums.ChecksumError` and ``dst`` is not written.
    """
    dst = Path(dst)
    scheme = urllib.parse.urlparse(url).scheme
    transport = transport or TRANSPORTS.get(scheme)
    if transport is None:
        raise ValueError(f'no transport for URL scheme {scheme!r} ({url})')
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f'.{dst.name}.{os.getpid()}.part')
    try:
        with open(tmp, 'wb') as f:
            transport(url, f, progress)
        if tmp.stat().st_size == 0:
            raise OSError(f'{url} gave an empty file')
        digest = file_sha256(tmp)
        if sha256 and not digest.startswith(sha256.lower()):
            raise ChecksumError(f'{url}: SHA-256 {digest} does not match the expected {sha256.lower()}; '
                                f'{dst} was not written')
        os.replace(tmp, dst)
        return digest
    finally:
        if tmp.exists():
            tmp.unlink()


def fetch(key: Union[str, WeightFile], *, sha256: Optional[str] = None, download: Optional[bool] = None,
          transport: Optional[Transport] = None, progress: bool = True, verify: bool = True,
          hint: str = '') -> Path:
    """The local file of ``key`` in ``$MIQA_HOME/weights/``: cached, or downloaded (module doc).

    Args:
        sha256: a digest to pin (overrides the published and the recorded one).
        download: ``False`` never downloads; ``None`` (default) downloads unless ``MIQA_OFFLINE=1``.
        transport: how to fetch the URL (default :data:`TRANSPORTS` by scheme).
        verify: check a cached file (:func:`~miqa.hub.checksums.verify`; ~0.5 s per 100 MB).
        hint: how the caller names another file (ends the missing-file message).
    """
    weight = weight_entry(key)
    dst = weights_dir() / weight.file
    if dst.is_file():
        if verify:
            checksums.verify(weight, dst, sha256)
        return dst
    if download is None:
        download = not offline()
    if not download:
        why = f'{OFFLINE_ENV}=1' if offline() else 'download=False'
        raise FileNotFoundError(f'{missing_error(weight, [dst], hint)} [not downloaded: {why}]')
    record = recorded_sha256().get(weight.file) or {}
    try:
        download_file(weight.url, dst, sha256 or expected_sha256(weight) or record.get('sha256'), transport,
                      progress)
    except ChecksumError:
        raise
    except (OSError, ValueError) as err:  # URLError, HTTPError and socket errors are OSErrors
        raise FileNotFoundError(f'{missing_error(weight, [dst], hint)} [download failed: {err}]') from err
    checksums.verify(weight, dst, sha256)  # records a pinned or first-seen digest
    return dst


__all__ = ['OFFLINE_ENV', 'TRANSPORTS', 'Transport', 'download_file', 'drive_direct_url', 'fetch', 'offline',
           'urllib_transport']
