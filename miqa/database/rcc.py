"""Read files out of a compiled Qt resource file (``.rcc``), without Qt.

The format is Qt's own (``rcc --binary``; written by ``RCCResourceLibrary::output`` in
``qtbase/src/tools/rcc/rcc.cpp``, read by ``QResourceRoot`` in ``qresource.cpp``), all integers
big-endian::

    header   "qres", version (u32), tree offset, data offset, names offset (u32 each)[, flags (v3)]
    tree     one node per entry, 14 bytes (version 1) or 22 (version >= 2: + u64 mtime):
             name offset (u32), flags (u16), then
               directory: child count (u32), first child index (u32)
               file:      country (u16), language (u16), data offset (u32)
    names    u16 length, u32 hash, UTF-16BE characters
    data     u32 size, then the bytes: flag 0x01 = zlib (``qCompress``: u32 length + zlib stream),
             0x04 = zstd (not supported here: the Debian build of gcompris uses zlib or none)

Debian's ``gcompris-qt-data`` ships its photos (WebP) this way.
"""
import struct
import zlib
from pathlib import Path
from typing import Dict, Tuple, Union

_DIRECTORY, _ZLIB, _ZSTD = 0x02, 0x01, 0x04


class RccError(ValueError):
    """The file is not a Qt resource file, or an entry cannot be read."""


def _entries(blob: bytes, where: str) -> Dict[str, Tuple[int, int]]:
    """Resource path (``/a/b.webp``) -> (flags, offset of its data record) for every file."""
    if len(blob) < 20 or blob[:4] != b'qres':
        raise RccError(f'{where}: not a Qt resource file (no "qres" header)')
    version, tree, data, names = struct.unpack_from('>IIII', blob, 4)
    if version not in (1, 2, 3):
        raise RccError(f'{where}: unsupported rcc format version {version}')
    node_size = 14 if version == 1 else 22

    def name(offset: int) -> str:
        (length,) = struct.unpack_from('>H', blob, names + offset)
        start = names + offset + 6
        return blob[start:start + 2 * length].decode('utf-16-be')

    files: Dict[str, Tuple[int, int]] = {}
    stack = [(0, '')]
    seen = 0
    while stack:
        index, prefix = stack.pop()
        seen += 1
        if seen > len(blob) // node_size + 1:
            raise RccError(f'{where}: corrupt resource tree (cycle)')
        node = tree + index * node_size
        try:
            name_offset, flags = struct.unpack_from('>IH', blob, node)
            path = prefix if index == 0 else f'{prefix}/{name(name_offset)}'
            if flags & _DIRECTORY:
                count, first = struct.unpack_from('>II', blob, node + 6)
                stack.extend((first + i, path) for i in range(count))
            else:
                (offset,) = struct.unpack_from('>I', blob, node + 10)
                files[path] = (flags, data + offset)
        except (struct.error, UnicodeDecodeError) as err:
            raise RccError(f'{where}: corrupt resource tree at node {index}: {err}') from None
    return files


class RccArchive:
    """The files of one ``.rcc``: ``names()`` lists them, ``read(path)`` returns their bytes."""

    def __init__(self, source: Union[str, Path, bytes]) -> None:
        if isinstance(source, (str, Path)):
            self.where = str(source)
            self.blob = Path(source).read_bytes()
        else:
            self.where, self.blob = '<bytes>', bytes(source)
        self._files = _entries(self.blob, self.where)

    def names(self) -> list:
        return sorted(self._files)

    def __contains__(self, path: str) -> bool:
        return path in self._files

    def read(self, path: str) -> bytes:
        """The (decompressed) bytes of the file at resource path ``path`` (``/dir/file``)."""
        if path not in self._files:
            raise KeyError(f'{self.where}: no resource {path!r}')
        flags, offset = self._files[path]
        try:
            (size,) = struct.unpack_from('>I', self.blob, offset)
        except struct.error:
            raise RccError(f'{self.where}: {path}: data offset outside the file') from None
        raw = self.blob[offset + 4:offset + 4 + size]
        if len(raw) != size:
            raise RccError(f'{self.where}: {path}: truncated data ({len(raw)} of {size} bytes)')
        if flags & _ZSTD:
            raise RccError(f'{self.where}: {path}: zstd-compressed resources are not supported')
        if flags & _ZLIB:
            (expected,) = struct.unpack_from('>I', raw, 0)
            try:
                raw = zlib.decompress(raw[4:])
            except zlib.error as err:
                raise RccError(f'{self.where}: {path}: corrupt zlib data ({err})') from None
            if len(raw) != expected:
                raise RccError(f'{self.where}: {path}: {len(raw)} bytes inflated, header says {expected}')
        return raw
