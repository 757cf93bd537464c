"""MIQD-mini sources: the hand-annotated table, the class list, the collector (pip-only in CI)."""
from collections import defaultdict

import numpy as np
import pytest

from miqa.database.collectors import check_src_id, collect_sources
from miqa.database.sources import (
    PACKAGE_ROOTS,
    collect_miqd_mini,
    imagenet_classes,
    missing_sources,
    original_path,
    read_photo,
    read_table,
)

ROWS = read_table()
PIP_ROWS = [r for r in ROWS if PACKAGE_ROOTS[r.package].kind == 'pip']


def installed(rows):
    return [r for r in rows if original_path(r) is not None]


def test_table_annotations_and_groups():
    names = imagenet_classes()
    assert len({r.group for r in ROWS}) >= 300 and len({r.src_id for r in ROWS}) == len(ROWS)
    for row in ROWS:
        assert all(0 <= c <= 999 for c in row.classes), row.src_id
        assert row.class_names == '; '.join(names[c][1] for c in row.classes), row.src_id
        assert row.classes or row.note.startswith('no ImageNet-1k class:'), row.src_id
        assert row.package in PACKAGE_ROOTS and (':' in row.path) == (row.package == 'gcompris-qt-data')
        assert row.licence.strip() and row.group
        check_src_id(row.src_id)  # survives the official variant file names
    groups = defaultdict(set)
    for row in ROWS:
        groups[(row.package, row.path)].add(row.group)
    assert all(len(g) == 1 for g in groups.values()), 'crops of one photo must share their group'


def test_imagenet_class_order():
    classes = imagenet_classes()
    wnids = [wnid for wnid, _ in classes]
    assert len(classes) == 1000 and wnids == sorted(wnids) and len(set(wnids)) == 1000
    assert classes[281] == ('n02123045', 'tabby') and classes[967][1] == 'espresso'


def test_crop_boxes_fit_their_photos():
    for row in installed(ROWS):
        if row.crop is not None:
            photo = read_photo(original_path(row))
            assert row.crop[2] <= photo.shape[1] and row.crop[3] <= photo.shape[0], row.src_id


def test_collector_pip_only(tmp_path):
    items = collect_miqd_mini(include=('pip',), crop_dir=str(tmp_path / 'crops'))
    expected = installed(PIP_ROWS)
    assert [i['src_id'] for i in items] == [r.src_id for r in expected]
    if have('skimage', 'matplotlib'):
        assert len(items) >= 15
    for item, row in zip(items, expected):
        image = read_photo(item['path'])
        assert image.dtype == np.uint8 and image.shape[2] == 3
        assert item['annotation'] == sorted(row.classes) and item['group'] == row.group
        if row.crop is not None:
            assert item['path'].startswith(str(tmp_path))
            assert image.shape[:2] == (row.crop[3] - row.crop[1], row.crop[2] - row.crop[0])
            np.testing.assert_array_equal(image, read_photo(item['origin'], row.crop))
        else:
            assert item['path'] == str(original_path(row))
    again = collect_miqd_mini(include=('pip',), crop_dir=str(tmp_path / 'crops'))  # crops reused
    assert [i['path'] for i in again] == [i['path'] for i in items]


def have(*modules: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)


def test_collector_selection_missing_and_builder_integration(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    roots = {name: str(empty) for name, root in PACKAGE_ROOTS.items() if root.kind == 'debian'}
    missing = missing_sources(include=('debian',), roots=roots)
    assert sum(map(len, missing.values())) == sum(PACKAGE_ROOTS[r.package].kind == 'debian' for r in ROWS)
    assert collect_miqd_mini(include=('debian',), roots=roots, crop_dir=str(tmp_path)) == []
    chosen = [r.src_id for r in installed(PIP_ROWS)][:2]
    if not chosen:
        pytest.skip('no pip photo package installed')
    items = collect_miqd_mini(include=('pip',), src_ids=chosen, crop_dir=str(tmp_path))
    assert [i['src_id'] for i in items] == chosen
    too_small = collect_miqd_mini(include=('pip',), src_ids=chosen, min_short_side=10_000,
                                  crop_dir=str(tmp_path))
    assert too_small == []
    with pytest.raises(ValueError, match='unknown'):
        collect_miqd_mini(include=('conda',))
    with pytest.raises(ValueError, match='not among'):
        collect_miqd_mini(include=('pip',), src_ids=['no_such_photo'])
    sources = collect_sources(dict(type='miqa.database.sources.collect_miqd_mini', include=('pip',),
                                   src_ids=chosen, crop_dir=str(tmp_path)))
    assert [s['src_id'] for s in sources] == sorted(chosen)
    assert all(s['annotation'] and s['category'] for s in sources)


def _png(rgb: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format='PNG')
    return buffer.getvalue()


def test_archive_sources_wheel_rcc_and_no_class_rows(tmp_path):
    """Photos inside a wheel (foolbox) and a Qt .rcc (gcompris), a crop of an archive member and a
    row without ImageNet class, read through a table of the official columns."""
    import zipfile

    from test_rcc import write_rcc

    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (200, 240, 3), dtype=np.uint8) for _ in range(2))
    wheel = tmp_path / 'foolbox-3.3.4-py3-none-any.whl'
    with zipfile.ZipFile(wheel, 'w') as archive:
        archive.writestr('foolbox/data/imagenet_00_243.jpg', _png(a))   # content type is sniffed, not named
    rcc_dir = tmp_path / 'rcc'
    rcc_dir.mkdir()
    (rcc_dir / 'erase.rcc').write_bytes(write_rcc({'/gcompris/erase/cheetah.webp': _png(b)},
                                                  compress=('cheetah.webp',)))
    table = tmp_path / 'table.csv'
    table.write_text(
        'src_id,package,path,crop,group,imagenet_classes,class_names,licence,note\n'
        'fb_bull_mastiff,foolbox,foolbox/data/imagenet_00_243.jpg,,fb_bull_mastiff,243,bull mastiff,MIT,x\n'
        'gc_cheetah,gcompris-qt-data,erase.rcc:/gcompris/erase/cheetah.webp,,gc_cheetah,293,cheetah,CC0,x\n'
        'gc_cheetah_c1,gcompris-qt-data,erase.rcc:/gcompris/erase/cheetah.webp,10 20 210 180,gc_cheetah,'
        ',,CC0,no ImageNet-1k class: a test row\n')
    roots = {'foolbox': str(wheel), 'gcompris-qt-data': str(rcc_dir)}
    items = collect_miqd_mini(table=str(table), roots=roots, crop_dir=str(tmp_path / 'cache'))
    assert [i['src_id'] for i in items] == ['fb_bull_mastiff', 'gc_cheetah', 'gc_cheetah_c1']
    np.testing.assert_array_equal(read_photo(items[0]['path']), a)
    np.testing.assert_array_equal(read_photo(items[1]['path']), b)
    np.testing.assert_array_equal(read_photo(items[2]['path']), b[20:180, 10:210])
    assert items[1]['origin'] == f'{rcc_dir / "erase.rcc"}:/gcompris/erase/cheetah.webp'
    assert items[0]['annotation'] == [243] and items[2]['annotation'] is None
    assert items[2]['category'] == 'no class' and items[2]['group'] == 'gc_cheetah'
    assert missing_sources(table=table, roots={'gcompris-qt-data': str(tmp_path / 'none'),
                                               'foolbox': str(wheel)}) == {
        'gcompris-qt-data': ['gc_cheetah', 'gc_cheetah_c1']}


def test_no_class_row_must_say_why(tmp_path):
    table = tmp_path / 'table.csv'
    table.write_text('src_id,package,path,crop,group,imagenet_classes,class_names,licence,note\n'
                     'x,skimage,chelsea.png,,x,,,CC0,a cat\n')
    with pytest.raises(ValueError, match='no ImageNet-1k class'):
        read_table(table)


@pytest.mark.parametrize('name', ['foolbox', 'ultralytics', 'imgaug', 'face-api'])
def test_pinned_package_file_checksum(name, tmp_path, monkeypatch):
    """A package file in $MIQA_HOME/packages that is not the pinned one is refused, naming the fix."""
    import importlib.util

    from miqa.database import sources

    pinned = sources.PINNED_FILES[name]
    if pinned.module and importlib.util.find_spec(pinned.module) is not None:
        pytest.skip(f'{pinned.module} is installed: its package folder is used, not the file')
    monkeypatch.setenv('MIQA_HOME', str(tmp_path))
    with pytest.raises(FileNotFoundError, match='download|pack'):
        pinned.locate()
    (tmp_path / 'packages').mkdir()
    (tmp_path / 'packages' / pinned.file).write_bytes(b'not the package')
    with pytest.raises(ValueError, match=f'sha256.*{pinned.fetch[0]}'):
        pinned.locate()
    assert sources.PACKAGE_ROOTS[name].kind == ('npm' if pinned.file.endswith('.tgz') else 'pip')


def test_npm_tarball_sources_for_a_det_build(tmp_path):
    """Photos inside an npm tarball (``package/...`` members), collected without ImageNet
    annotations for a det build (the det ground truth is boxes)."""
    import io
    import tarfile

    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (150, 200, 3), dtype=np.uint8)
    tgz = tmp_path / 'vladmandic-face-api-1.7.15.tgz'
    with tarfile.open(tgz, 'w:gz') as archive:
        for name, data in (('package/demo/sample1.jpg', _png(a)), ('package/README.md', b'text')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    table = tmp_path / 'table.csv'
    table.write_text('src_id,package,path,crop,group,imagenet_classes,class_names,licence,note\n'
                     'fa_sample1,face-api,package/demo/sample1.jpg,,fa_sample1,966,red wine,MIT,x\n'
                     'fa_missing,face-api,package/demo/sample9.jpg,,fa_missing,966,red wine,MIT,x\n')
    roots = {'face-api': str(tgz)}
    assert collect_miqd_mini(table=str(table), roots=roots, include=('pip', 'debian')) == []  # npm left out
    items = collect_miqd_mini(table=str(table), roots=roots, include=('npm',), crop_dir=str(tmp_path / 'c'),
                              imagenet_annotations=False)
    assert [i['src_id'] for i in items] == ['fa_sample1'] and items[0]['annotation'] is None
    assert items[0]['origin'] == f'{tgz}:package/demo/sample1.jpg'
    np.testing.assert_array_equal(read_photo(items[0]['path']), a)
    assert missing_sources(include=('npm',), table=table, roots=roots) == {'face-api': ['fa_missing']}
