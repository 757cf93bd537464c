"""The one verify-and-record step of weight files and the one SHA-256 store.

``$MIQA_HOME/weights/sha256.json`` maps a table ``file`` (detector shards: ``human-models/<shard>``)
to ``{sha256, source, url, recorded}``; ``source`` is ``'pinned'`` or ``'trust-on-first-use'``.
:func:`verify` checks a local file against, in this order:

1. a digest the caller pins (``sha256=``, e.g. ``MIQAModel(..., sha256=...)``), then recorded as pinned;
2. the published digest: the table's ``sha256`` (a full digest or a prefix), else the hex digits of
   a torch.hub-style name ``<name>-<hex>.<ext>`` (torchvision's ``vgg16-397923af.pth``);
3. the recorded digest; with none recorded the file is **trusted on first use**: its digest is
   recorded with a warning, and any later file under the same name that differs is refused.

To replace a file on purpose, delete its entry from the store. Standard library only.
"""
import hashlib
import json
import re
import time
import warnings
from pathlib import Path
from typing import Dict, Optional, Union

from miqa.utils.io import atomic_write_text
from miqa.utils.types import PathLike

from .table import WeightFile, weight_entry, weights_dir

SHA256_FILE = 'sha256.json'
_HUB_HASH = re.compile(r'-([a-f0-9]{8,})\.')  # torch.hub's HASH_REGEX, anchored on the digits
_DIGESTS: Dict[tuple, str] = {}  # (device, inode, size, mtime_ns) -> sha256, per process


class ChecksumError(OSError, ValueError):
    """A weight file's SHA-256 differs from the pinned, published or recorded one."""


def file_sha256(path: PathLike) -> str:
    """SHA-256 hex digest of a file (cached per process by the file's identity, size and mtime, so a
    downloaded file renamed into place is not read again)."""
    path = Path(path)
    st = path.stat()
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open('rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def sha256_store() -> Path:
    return weights_dir() / SHA256_FILE


def recorded_sha256() -> Dict[str, dict]:
    """The records of the store (empty when there is none)."""
    path = sha256_store()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f'{path} is not valid JSON ({err}); fix or delete it (it records the sha256 of '
                         'weight files)') from None
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def record_sha256(file: str, digest: str, source: str = 'trust-on-first-use', url: str = '') -> None:
    """Record (or replace) the digest of weight file ``file`` in the store."""
    data = recorded_sha256()
    data[file] = dict(sha256=digest.lower(), source=source, url=url,
                      recorded=time.strftime('%Y-%m-%dT%H:%M:%S'))
    atomic_write_text(str(sha256_store()), json.dumps(data, indent=2, sort_keys=True) + '\n')


def pin_sha256(file: str, digest: str) -> None:
    """Pin the SHA-256 of weight file ``file`` (a table ``file`` name) in the store."""
    if not re.fullmatch(r'[0-9a-fA-F]{64}', digest or ''):
        raise ValueError(f'a SHA-256 is 64 hex digits, got {digest!r}')
    record_sha256(file, digest.lower(), 'pinned')


def expected_sha256(key: Union[str, WeightFile]) -> str:
    """The published digest (or prefix) of ``key``'s file, ``''`` when none is published."""
    weight = weight_entry(key)
    if weight.sha256:
        return weight.sha256.lower()
    match = _HUB_HASH.search(Path(weight.file).name)
    return match.group(1) if match else ''


def verify(key: Union[str, WeightFile], path: PathLike, sha256: Optional[str] = None) -> str:
    """Check ``path`` (the local copy of ``key``'s file) as the module doc says; returns its digest.

    Raises :class:`ChecksumError` naming both digests and what to do when they differ.
    """
    weight, digest = weight_entry(key), file_sha256(path)
    name, again = repr(weight.file), f'download it again from {weight.url}'
    published = expected_sha256(weight)
    if sha256:
        if digest != sha256.lower():
            raise ChecksumError(f'{path}: sha256 {digest} does not match the pinned {sha256.lower()} of '
                                f'{name}. Delete the file to {again}, or update the pin if the new file is '
                                'the one you trust.')
        record = recorded_sha256().get(weight.file) or {}
        if not published and (record.get('sha256'), record.get('source')) != (digest, 'pinned'):
            record_sha256(weight.file, digest, 'pinned', weight.url)
        return digest
    if published:
        if not digest.startswith(published):
            raise ChecksumError(f'{path}: sha256 {digest} does not match the published {published} of {name} '
                                f'({weight.key}); the file is corrupt or another file: {again}')
        return digest
    record = recorded_sha256().get(weight.file)
    if record is None:
        record_sha256(weight.file, digest, 'trust-on-first-use', weight.url)
        warnings.warn(f'{weight.file}: no published sha256; {digest} (of {path}) was recorded in '
                      f'{sha256_store()} (trust on first use) and later uses are checked against it. '
                      'Compare it with a trusted source; pin a known digest with sha256=... where offered.',
                      stacklevel=2)
    elif record['sha256'] != digest:
        raise ChecksumError(f'{path}: sha256 {digest} differs from {record["sha256"]}, recorded for {name} '
                            f'({record.get("source")}) in {sha256_store()}. If you replaced the file on '
                            f'purpose, delete its entry there; otherwise {again}')
    return digest


__all__ = ['SHA256_FILE', 'ChecksumError', 'expected_sha256', 'file_sha256', 'pin_sha256', 'record_sha256',
           'recorded_sha256', 'sha256_store', 'verify']
