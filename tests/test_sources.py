"""MIQD-mini sources: the hand-annotated table, the class list, the collector (pip-only in CI)."""
from collections import defaultdict

import numpy as np
import pytest

from miqa.database.builder import check_src_id, collect_sources
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
    assert len(ROWS) >= 40 and len({r.src_id for r in ROWS}) == len(ROWS)
    for row in ROWS:
        assert row.classes and all(0 <= c <= 999 for c in row.classes), row.src_id
        assert row.class_names == '; '.join(names[c][1] for c in row.classes), row.src_id
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
    roots = {'opencv-doc': str(empty), 'darknet': str(empty)}
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
