"""The Qt resource (.rcc) reader, on files written here by an independent writer of the format."""
import struct
import zlib

import pytest

from miqa.database.rcc import RccArchive, RccError


def write_rcc(files: dict, version: int = 3, compress: tuple = ()) -> bytes:
    """A Qt binary resource file holding ``files`` (path -> bytes) with the layout of
    ``rcc --binary``: header, data records, names, tree (breadth first: a directory's children
    are consecutive nodes). Files named in ``compress`` are stored as ``qCompress`` zlib."""
    root: dict = {}
    for path, data in files.items():
        node = root
        *folders, leaf = path.strip('/').split('/')
        for folder in folders:
            node = node.setdefault(folder, {})
        node[leaf] = data
    nodes, first_child = [('', root)], {}
    i = 0
    while i < len(nodes):
        if isinstance(nodes[i][1], dict):
            first_child[i] = len(nodes)
            nodes.extend(sorted(nodes[i][1].items()))
        i += 1
    names, data_blob, packed = bytearray(), bytearray(), []
    for i, (name, value) in enumerate(nodes):
        name_off = len(names)
        encoded = name.encode('utf-16-be')
        names.extend(struct.pack('>HI', len(name), zlib.crc32(encoded)) + encoded)
        if isinstance(value, dict):
            node = struct.pack('>IHII', name_off, 0x02, len(value), first_child[i])
        else:
            payload, flags = value, 0
            if name in compress:
                payload, flags = struct.pack('>I', len(value)) + zlib.compress(value), 0x01
            node = struct.pack('>IHHHI', name_off, flags, 0, 0, len(data_blob))
            data_blob.extend(struct.pack('>I', len(payload)) + payload)
        packed.append(node + (b'\0' * 8 if version >= 2 else b''))
    header_size = 24 if version >= 3 else 20
    names_off = header_size + len(data_blob)
    tree_off = names_off + len(names)
    header = b'qres' + struct.pack('>IIII', version, tree_off, header_size, names_off)
    header += struct.pack('>I', 0) if version >= 3 else b''
    return header + bytes(data_blob) + bytes(names) + b''.join(packed)


FILES = {'/gcompris/src/activities/erase/resource/gorilla.webp': b'RIFF\x00gorilla' * 50,
         '/gcompris/src/activities/erase/resource/README': b'License: CC0\n',
         '/gcompris/src/activities/explore/animals/bison.webp': bytes(range(256)) * 3,
         '/top.txt': b'top'}


@pytest.mark.parametrize('version', [1, 2, 3])
def test_reads_every_file_of_a_written_archive(version):
    blob = write_rcc(FILES, version=version, compress=('gorilla.webp', 'README'))
    archive = RccArchive(blob)
    assert archive.names() == sorted(FILES)
    for path, data in FILES.items():
        assert path in archive and archive.read(path) == data


def test_reads_from_a_file(tmp_path):
    path = tmp_path / 'erase.rcc'
    path.write_bytes(write_rcc(FILES))
    assert RccArchive(path).read('/top.txt') == b'top'


def test_errors_name_the_problem():
    with pytest.raises(RccError, match='not a Qt resource'):
        RccArchive(b'PK\x03\x04 a zip file, not an rcc')
    blob = bytearray(write_rcc(FILES, compress=('gorilla.webp',)))
    archive = RccArchive(bytes(blob))
    with pytest.raises(KeyError, match='no resource'):
        archive.read('/missing.webp')
    # corrupt the zlib stream of the compressed file
    flags, offset = archive._files['/gcompris/src/activities/erase/resource/gorilla.webp']
    blob[offset + 10:offset + 20] = b'\xff' * 10
    with pytest.raises(RccError, match='zlib'):
        RccArchive(bytes(blob)).read('/gcompris/src/activities/erase/resource/gorilla.webp')
    blob[offset:offset + 4] = struct.pack('>I', len(blob))  # a size running past the end of the file
    with pytest.raises(RccError, match='truncated'):
        RccArchive(bytes(blob)).read('/gcompris/src/activities/erase/resource/gorilla.webp')
    with pytest.raises(RccError, match='corrupt resource tree'):
        RccArchive(bytes(blob[:-30]))


def test_real_gcompris_archive_when_installed():
    from pathlib import Path

    path = Path('/usr/share/gcompris-qt/rcc/erase.rcc')
    if not path.is_file():
        pytest.skip('gcompris-qt-data is not installed')
    archive = RccArchive(path)
    webp = [n for n in archive.names() if n.endswith('.webp')]
    assert len(webp) >= 30
    assert archive.read(webp[0])[:4] == b'RIFF'
