"""Stratified variant subsets (miqa.database.variants) and a build that renders only them."""
import functools
import os
from collections import Counter

import pytest
from test_builder import PSNRLabeller, _build, _cfg, photos  # noqa: F401 (fixture)

from miqa.database.collectors import source_seed
from miqa.database.variants import check_subset, select_variants
from miqa.datasets import MIQDDataset, parse_name
from miqa.datasets.naming import DISTORTIONS, VARIANTS

ALL = list(DISTORTIONS)


def test_none_is_every_variant():
    assert select_variants(ALL, 7) == {d: VARIANTS for d in ALL}
    assert select_variants(ALL, 7, dict(distortions=10, per_distortion=25)) == {d: VARIANTS for d in ALL}


def test_subset_is_stratified_and_seeded():
    subset = dict(distortions=5, per_distortion=3)
    seen_levels, seen_regions, seen_distortions = Counter(), Counter(), Counter()
    for seed in range(200):
        chosen = select_variants(ALL, seed, subset)
        assert select_variants(ALL, seed, subset) == chosen          # deterministic per source
        assert len(chosen) == 5 and list(chosen) == [d for d in ALL if d in chosen]  # spec order
        ud_levels = []
        for distortion, rows in chosen.items():
            assert sorted(r[0] for r in rows) == ['BG', 'ROI', 'UD']   # one of each region type
            assert all(r in VARIANTS for r in rows) and list(rows) == [v for v in VARIANTS if v in rows]
            ud_levels += [r[1] for r in rows if r[0] == 'UD']
            seen_distortions[distortion] += 1
            for region, fg, bg in rows:
                seen_regions[region] += 1
                seen_levels[max(fg, bg)] += 1
        assert sorted(ud_levels) == sorted(set(ud_levels))            # dealt, not repeated (5 levels)
    assert len({tuple(select_variants(ALL, s, subset)) for s in range(20)}) > 5   # sources differ
    assert set(seen_distortions) == set(ALL) and min(seen_distortions.values()) > 50
    assert set(seen_levels) == {1, 2, 3, 4, 5} and set(seen_regions) == {'UD', 'ROI', 'BG'}


def test_every_distortion_with_three_variants_deals_each_uniform_level_twice():
    """MIQD-mini-det's subset (configs/build/miqd_mini_det.py): all 10 distortions x UD/ROI/BG."""
    subset = dict(distortions=10, per_distortion=3)
    for seed in range(50):
        chosen = select_variants(ALL, seed, subset)
        assert list(chosen) == ALL
        assert all(sorted(r[0] for r in rows) == ['BG', 'ROI', 'UD'] for rows in chosen.values())
        ud_levels = Counter(r[1] for rows in chosen.values() for r in rows if r[0] == 'UD')
        assert ud_levels == Counter({level: 2 for level in range(1, 6)})   # two dealt permutations of 1..5


def test_subset_checks():
    with pytest.raises(ValueError, match='unknown keys'):
        check_subset(dict(per_source=3), 10)
    with pytest.raises(ValueError, match='1..4'):
        check_subset(dict(distortions=5), 4)
    with pytest.raises(ValueError, match='per_distortion'):
        check_subset(dict(per_distortion=26), 10)
    rows = select_variants(ALL[:2], 1, dict(per_distortion=12))   # more than one region's worth
    assert all(len(set(r)) == 12 for r in rows.values())


def test_build_renders_and_labels_only_the_subset(photos, tmp_path):  # noqa: F811 (fixture)
    subset = dict(distortions=1, per_distortion=3)
    out = tmp_path / 'db'
    summary = _build(_cfg(photos, variants=subset), out,
                     labeller_factory=functools.partial(PSNRLabeller, 'cls'))
    assert summary.built == 4
    for src_id in ('astro_a', 'astro_b', 'cat', 'coffee'):
        files = sorted(os.listdir(out / 'miqa_cls' / 'images' / src_id))
        expected = select_variants(['gaussian_noise', 'defocus_blur'], source_seed(3, src_id), subset)
        assert {tuple(parse_name(f))[1:] for f in files} == {(d, *v) for d, rows in expected.items()
                                                              for v in rows}
        assert len(files) == 3
    infos = [ds.get_data_info(i) for split in ('train', 'val')
             for ds in [MIQDDataset(data_root=str(out), task='cls', split=split, split_file='official',
                                    cache_dir=False)] for i in range(len(ds))]
    assert len(infos) == 12
    assert (out / 'ATTRIBUTION_cls.md').is_file()
