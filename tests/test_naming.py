"""miqa.datasets.naming: the 25 official variant names per distortion (spec §2)."""
import pytest

from miqa.datasets.naming import (
    DISTORTIONS,
    VARIANTS,
    VariantInfo,
    format_name,
    parse_name,
    parse_names,
    variant_names,
)

SRC_IDS = ('ILSVRC2012_val_00037809', '000000532481', 'src_with_fog_1', 'x_gaussian')


def test_distortions_in_spec_order_with_categories():
    assert list(DISTORTIONS) == ['contrast', 'pixelate', 'jpeg_compression', 'motion_blur', 'defocus_blur',
                                 'glass_blur', 'fog', 'snow', 'darkness', 'gaussian_noise']
    assert [DISTORTIONS[d] for d in ('contrast', 'pixelate', 'jpeg_compression')] == ['digital'] * 3
    assert [DISTORTIONS[d] for d in ('motion_blur', 'defocus_blur', 'glass_blur')] == ['blur'] * 3
    assert [DISTORTIONS[d] for d in ('fog', 'snow', 'darkness')] == ['environmental'] * 3
    assert DISTORTIONS['gaussian_noise'] == 'noise'


def test_variant_names_are_the_25_official_patterns():
    names = variant_names('000000532481', 'motion_blur')
    assert len(names) == len(set(names)) == 25
    assert names[:5] == [f'000000532481_motion_blur_{lv}.png' for lv in range(1, 6)]
    roi = [n for n in names if '_fg_stronger_' in n]
    bg = [n for n in names if '_bg_stronger_' in n]
    assert len(roi) == len(bg) == 10
    assert '000000532481_motion_blur_fg_stronger_fg5_bg2.png' in roi
    assert '000000532481_motion_blur_bg_stronger_fg1_bg4.png' in bg
    levels = range(1, 6)
    assert [v for v in VARIANTS if v[0] == 'ROI'] == [('ROI', i, j) for i in levels for j in levels if i > j]
    assert [v for v in VARIANTS if v[0] == 'BG'] == [('BG', i, j) for i in levels for j in levels if j > i]


@pytest.mark.parametrize('src_id', SRC_IDS)
@pytest.mark.parametrize('distortion', list(DISTORTIONS))
def test_format_parse_round_trip(src_id, distortion):
    for name, (region, fg, bg) in zip(variant_names(src_id, distortion), VARIANTS):
        info = parse_name(name)
        assert info == VariantInfo(src_id, distortion, region, fg, bg)
        assert format_name(*info) == name
    assert parse_names(variant_names(src_id, distortion), src_id) == [
        parse_name(n) for n in variant_names(src_id, distortion)]


@pytest.mark.parametrize('name, expected', [
    ('ILSVRC2012_val_00037809_jpeg_compression_3.png',
     ('ILSVRC2012_val_00037809', 'jpeg_compression', 'UD', 3, 3)),
    ('000000532481_motion_blur_fg_stronger_fg5_bg2.png', ('000000532481', 'motion_blur', 'ROI', 5, 2)),
    ('000000532481_gaussian_noise_bg_stronger_fg1_bg4.png', ('000000532481', 'gaussian_noise', 'BG', 1, 4)),
])
def test_parse_examples(name, expected):
    assert tuple(parse_name(name)) == expected


@pytest.mark.parametrize('name', [
    'x_unknown_3.png', 'x_fog_6.png', 'x_fog_0.png', 'x_fog_3.jpg', 'fog_3.png', 'x_fog_3.png.bak',
    'x_fog_fg_stronger_fg2_bg3.png', 'x_fog_bg_stronger_fg3_bg3.png', 'x_fog_fg_stronger_fg3.png', ''])
def test_bad_names_raise_naming_the_file(name):
    with pytest.raises(ValueError, match=repr(name).replace('.', r'\.')):
        parse_name(name)


def test_parse_names_checks_the_source():
    with pytest.raises(ValueError, match='ILSVRC2012_val_00000002'):
        parse_names(['ILSVRC2012_val_00000002_fog_1.png'], 'ILSVRC2012_val_00000001')
    with pytest.raises(ValueError, match='x_fog_7.png'):
        parse_names(['x_fog_1.png', 'x_fog_7.png'], 'x')


@pytest.mark.parametrize('args', [('x', 'haze', 'UD', 1, 1), ('x', 'fog', 'UD', 1, 2),
                                  ('x', 'fog', 'ROI', 2, 3), ('x', 'fog', 'BG', 3, 3),
                                  ('x', 'fog', 'UD', 6, 6), ('x', 'fog', 'ud', 1, 1)])
def test_format_name_rejects_non_official_variants(args):
    with pytest.raises(ValueError):
        format_name(*args)
