"""No-reference HVS scorers HyperIQA and MANIQA (miqa.hvs.hyperiqa, miqa.hvs.maniqa, miqa.hvs.converters).

Random weights only (``pretrained=False``) or checkpoint-shaped files written by the tests: the
authors' layouts come from the hand-derived key lists tests/data/{hyperiqa,maniqa}_koniq_keys.txt
(never downloaded). MANIQA runs on a reduced ViT (64 px input, 8 x 8 grid) except for the
key-list checks, which build the published architecture on the meta device.
"""
import os
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from miqa.hvs import MANIQA, HyperIQA, build_scorer, scorer_status  # noqa: E402
from miqa.hvs.converters import (  # noqa: E402
    HYPERIQA_EXPORT_RULES,
    MANIQA_EXPORT_RULES,
    ConversionError,
    convert_hyperiqa,
    convert_maniqa,
)
from miqa.hvs.crops import crop_offsets, mean_crop_score  # noqa: E402
from miqa.hvs.maniqa import ScaleSwinLayer  # noqa: E402
from miqa.models.converters import rename_keys  # noqa: E402

DATA = Path(__file__).parent / 'data'
SMALL_MANIQA = dict(backbone_kwargs=dict(img_size=64, embed_dim=48, depth=10, num_heads=2), embed_dim=32,
                    dim_mlp=64, num_heads=(2, 2))


def _key_list(name):
    lines = (DATA / name).read_text().splitlines()
    rows = [line.split() for line in lines if line and not line.startswith('#')]
    return {k: () if s == 'scalar' else tuple(int(d) for d in s.split(',')) for k, s in rows}


def _images(n=3, h=72, w=90):
    """Distinct contents: noise, a dark ramp, a checkerboard."""
    torch.manual_seed(1)
    ramp = torch.linspace(0, 0.4, w).expand(3, h, w)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    checker = ((yy // 6 + xx // 6) % 2).float().expand(3, h, w)
    return torch.stack([torch.rand(3, h, w), ramp, checker][:n])


def _buffers(model):
    """The Swin buffers timm recomputes (non-persistent) and the authors' files carry."""
    return {k: v for k, v in model.named_buffers() if k.endswith(('.relative_position_index', '.attn_mask'))}


@pytest.fixture(scope='module')
def hyperiqa():
    torch.manual_seed(0)
    return HyperIQA(pretrained=False, num_crops=1)


@pytest.fixture(scope='module')
def small_maniqa():
    torch.manual_seed(0)
    return MANIQA(pretrained=False, num_crops=3, **SMALL_MANIQA)


def _maniqa_source(model):
    """The authors' layout of ``model`` (plus the keys their files carry that no computation reads)."""
    sd = rename_keys({**model.state_dict(), **_buffers(model)},
                     MANIQA_EXPORT_RULES)
    for s, dim in (('1', model.reduce1.out_channels), ('2', model.reduce2.out_channels)):
        sd[f'swintransformer{s}.downsample.weight'] = torch.randn(dim, dim, 3, 3)
        sd[f'swintransformer{s}.downsample.bias'] = torch.randn(dim)
    d = model.backbone.embed_dim
    sd.update({'vit.norm.weight': torch.ones(d), 'vit.norm.bias': torch.zeros(d),
               'vit.head.weight': torch.randn(1000, d), 'vit.head.bias': torch.randn(1000),
               f'vit.blocks.{len(model.backbone.blocks)}.norm1.weight': torch.ones(d)})
    return sd


# ---------------------------------------------------------------- crops


def test_crop_offsets_seeded_in_bounds_and_chunk_invariant():
    a = crop_offsets(300, 250, 224, 25, seed=3)
    assert a == crop_offsets(300, 250, 224, 25, seed=3) and a != crop_offsets(300, 250, 224, 25, seed=4)
    assert all(0 <= t <= 76 and 0 <= left <= 26 for t, left in a)
    assert len(set(a)) > 1
    with pytest.raises(ValueError, match='does not fit'):
        crop_offsets(200, 250, 224, 1, 0)
    x = torch.rand(2, 3, 40, 50)
    means = [mean_crop_score(lambda c: c.mean(dim=(1, 2, 3)), x, 16, 5, 0, chunk) for chunk in (1, 3, 64)]
    ref = torch.stack([torch.stack([x[i, :, t:t + 16, left:left + 16].mean() for t, left in
                                    crop_offsets(40, 50, 16, 5, 0)]).mean() for i in range(2)])
    for m in means:
        torch.testing.assert_close(m, ref)


# ---------------------------------------------------------------- HyperIQA


def test_hyperiqa_shape_batch_consistency_and_distinct_scores(hyperiqa):
    x = _images()
    batch = hyperiqa.score(x)
    assert batch.shape == (3,) and batch.dtype == torch.float32
    singles = torch.cat([hyperiqa.score(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, singles, rtol=1e-5, atol=1e-6)
    assert (batch[:, None] - batch[None]).abs().add(torch.eye(3)).min() > 1e-6  # pairwise distinct
    assert not hyperiqa.full_reference and not hyperiqa.lower_is_better


def test_hyperiqa_target_network_matches_grouped_conv_formulation(hyperiqa):
    """The official TargetFC applies per-image weights (B, out, in, 1, 1) as a grouped 1x1 conv."""
    crops = F.interpolate(_images(2), size=(224, 224), mode='bilinear', align_corners=False)
    m = hyperiqa
    with torch.no_grad():
        feats = dict(zip(('layer1', 'layer2', 'layer3', 'layer4'), m.backbone((crops - m.mean) / m.std)))
        vec = torch.cat([m.lda[k](f) for k, f in feats.items()], 1)
        hyper = m.hyper_in(feats['layer4'])
        pooled = F.adaptive_avg_pool2d(hyper, 1).flatten(1)
        sizes, b = (224, 112, 56, 28, 14, 1), 2
        q = vec.reshape(1, b * 224, 1, 1)
        for i in range(5):
            gen = m.target_weights[f'fc{i + 1}']
            w = (gen(hyper) if i < 4 else gen(pooled)).reshape(b, sizes[i + 1], sizes[i], 1, 1)
            bias = m.target_biases[f'fc{i + 1}'](pooled).reshape(-1)
            q = F.conv2d(q, w.reshape(b * sizes[i + 1], sizes[i], 1, 1), bias, groups=b)
            q = torch.sigmoid(q) if i < 4 else q
        torch.testing.assert_close(m.score_crops(crops), q.reshape(b), rtol=1e-5, atol=1e-6)


def test_hyperiqa_key_list_round_trip(hyperiqa):
    """Our modules exported with the inverse rules give exactly the authors' keys and shapes,
    and the authors' key list converts onto our modules."""
    official = _key_list('hyperiqa_koniq_keys.txt')
    exported = rename_keys(hyperiqa.state_dict(), HYPERIQA_EXPORT_RULES)
    assert {k: tuple(v.shape) for k, v in exported.items()} == official
    source = {k: torch.empty(s, device='meta') for k, s in official.items()}
    converted = convert_hyperiqa(source, hyperiqa.state_dict())
    assert {k: tuple(v.shape) for k, v in converted.items()} == \
        {k: tuple(v.shape) for k, v in hyperiqa.state_dict().items()}


def test_hyperiqa_converter_is_strict(hyperiqa):
    source = rename_keys(hyperiqa.state_dict(), HYPERIQA_EXPORT_RULES)
    target = hyperiqa.state_dict()
    missing = {k: v for k, v in source.items() if k != 'fc3b_fc.bias'}
    with pytest.raises(ConversionError, match=r'missing keys: target_biases\.fc3\.bias'):
        convert_hyperiqa(missing, target)
    with pytest.raises(ConversionError, match=r'not consumed: res\.fc\.weight'):
        convert_hyperiqa({**source, 'res.fc.weight': torch.zeros(1000, 2048)}, target)
    with pytest.raises(ConversionError, match='shape mismatches: lda.layer4.fc.weight'):
        convert_hyperiqa({**source, 'res.lda4_fc.weight': torch.zeros(170, 2048)}, target)
    no_counters = {k: v for k, v in source.items() if not k.endswith('num_batches_tracked')}
    assert set(convert_hyperiqa(no_counters, target)) == set(target)  # PyTorch 0.4.0 files


def test_hyperiqa_loads_checkpoint_file_into_every_key(hyperiqa, tmp_path, monkeypatch):
    monkeypatch.setenv('MIQA_HOME', str(tmp_path))
    (tmp_path / 'weights').mkdir()
    source = rename_keys(hyperiqa.state_dict(), HYPERIQA_EXPORT_RULES)
    torch.save(source, tmp_path / 'weights' / 'koniq_pretrained.pkl')
    assert scorer_status('HyperIQA')[0]
    torch.manual_seed(123)  # a different random init, overwritten by the file
    loaded = build_scorer('HyperIQA', num_crops=1)
    for k, v in hyperiqa.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_missing_weight_files_name_file_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv('MIQA_HOME', str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        build_scorer('HyperIQA')
    msg = str(err.value)
    assert 'koniq_pretrained.pkl' in msg
    assert 'https://drive.google.com/file/d/1OOUmnbvpGea0LIGpIWEbOyxfWx6UCiiE' in msg
    assert str(tmp_path / 'weights' / 'koniq_pretrained.pkl') in msg
    with pytest.raises(FileNotFoundError, match=r'ckpt_koniq10k\.pt.*github\.com/IIGROUP/MANIQA/releases'):
        build_scorer('MANIQA', **SMALL_MANIQA)
    ok, reason = scorer_status('MANIQA-PIPAL')
    assert not ok and 'MANIQA_PIPAL-ae6d356b.pth' in reason
    assert scorer_status(dict(type='MANIQA', pretrained=False))[0]


# ---------------------------------------------------------------- MANIQA


def test_maniqa_shape_batch_consistency_and_distinct_scores(small_maniqa):
    x = _images()
    batch = small_maniqa.score(x)
    assert batch.shape == (3,) and torch.isfinite(batch).all()
    singles = torch.cat([small_maniqa.score(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, singles, rtol=1e-5, atol=1e-6)
    assert (batch[:, None] - batch[None]).abs().add(torch.eye(3)).min() > 1e-6
    assert small_maniqa.score(x[:1, :, :40, :50]).shape == (1,)  # below the crop size: upsampled


def test_maniqa_crop_score_is_weighted_patch_mean(small_maniqa):
    """Score = sum(score_p * weight_p) / sum(weight_p) over the 8 x 8 patches; and reordering the
    crops of a batch permutes the scores (no mixing across crops)."""
    m = small_maniqa
    crops = _images(2, 64, 64)
    patches = {}
    hook = m.sstb2.register_forward_hook(lambda mod, inp, out: patches.setdefault('x', out))
    try:
        out = m.score_crops(crops)
    finally:
        hook.remove()
    tokens = patches['x'].flatten(2).transpose(1, 2)
    s, w = m.score_head(tokens).squeeze(-1), m.weight_head(tokens).squeeze(-1)
    assert tokens.shape[1] == 64 and (w > 0).all() and (w < 1).all()
    torch.testing.assert_close(out, (s * w).sum(1) / w.sum(1))
    torch.testing.assert_close(m.score_crops(crops.flip(0)), out.flip(0), rtol=1e-5, atol=1e-6)


def _official_swin_buffers(grid, window, shift):
    """relative_position_index and attn_mask as models/swin.py builds them (written from the paper's
    definition: index (dy + w - 1) * (2w - 1) + (dx + w - 1); -100 between cyclic-shift regions)."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    index = (ys[:, None] - ys[None] + window - 1) * (2 * window - 1) + (xs[:, None] - xs[None] + window - 1)
    region = torch.zeros(grid, grid)
    bounds = (0, grid - window, grid - shift, grid)
    for i in range(3):
        for j in range(3):
            region[bounds[i]:bounds[i + 1], bounds[j]:bounds[j + 1]] = 3 * i + j
    n = grid // window
    win = region.view(n, window, n, window).permute(0, 2, 1, 3).reshape(-1, window ** 2)
    mask = (win[:, None, :] != win[:, :, None]).float() * -100.0
    return index, mask


def test_timm_swin_buffers_equal_the_official_ones():
    layer = ScaleSwinLayer(dim=8, grid=28, depth=2, num_heads=2, window_size=4, dim_mlp=16)
    index, mask = _official_swin_buffers(28, 4, 2)
    assert layer.blocks[0].attn_mask is None
    assert torch.equal(layer.blocks[1].attn_mask, mask) and mask.shape == (49, 16, 16)
    assert torch.equal(layer.blocks[0].attn.relative_position_index, index)


def test_maniqa_key_list_round_trip_published_architecture():
    """The published architecture (meta device) against the authors' key list: everything but
    the documented unused keys exports to it, and the list converts strictly onto the model."""
    with torch.device('meta'):
        model = MANIQA(pretrained=False)
    official = _key_list('maniqa_koniq_keys.txt')
    state = model.state_dict()
    exported = rename_keys({**state, **_buffers(model)}, MANIQA_EXPORT_RULES)
    unused_prefixes = ('vit.blocks.10.', 'vit.blocks.11.', 'vit.norm.', 'vit.head.')
    unused = {k for k in official if k.startswith(unused_prefixes) or '.downsample.' in k}
    assert len(unused) == 2 * 12 + 4 + 4
    used = {k: s for k, s in official.items() if k not in unused}
    assert {k: tuple(v.shape) for k, v in exported.items()} == used
    source = {k: torch.empty(s, device='meta') for k, s in official.items()}
    converted = convert_maniqa(source, state, _buffers(model), vit_blocks=len(model.backbone.blocks))
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in state.items()}
    assert len(model.backbone.blocks) == 10 and model.sstb1.scale == 0.8
    assert build_scorer(dict(type='MANIQA-PIPAL', pretrained=False, **SMALL_MANIQA)).sstb1.scale == 0.13


def test_maniqa_converter_is_strict(small_maniqa):
    m = small_maniqa
    source, target, buffers = _maniqa_source(m), m.state_dict(), _buffers(m)
    kw = dict(vit_blocks=len(m.backbone.blocks))
    assert set(convert_maniqa(source, target, buffers, **kw)) == set(target)
    old = {k.replace('tablock', 'channel_attn'): v for k, v in source.items()}  # earlier revision's names
    assert set(convert_maniqa(old, target, buffers, **kw)) == set(target)
    with pytest.raises(ConversionError, match=r'missing keys: sstb2\.layers\.1\.conv\.bias'):
        convert_maniqa({k: v for k, v in source.items() if k != 'swintransformer2.layers.1.conv.bias'},
                       target, buffers, **kw)
    with pytest.raises(ConversionError, match=r'not consumed: swintransformer1\.norm\.weight'):
        convert_maniqa({**source, 'swintransformer1.norm.weight': torch.ones(3)}, target, buffers, **kw)
    key = 'swintransformer1.layers.0.blocks.1.attn_mask'
    with pytest.raises(ConversionError, match='Swin buffers .* ' + key.replace('.', r'\.')):
        convert_maniqa({**source, key: torch.zeros_like(source[key])}, target, buffers, **kw)


def test_maniqa_loads_checkpoint_file_and_reproduces_scores(small_maniqa, tmp_path, monkeypatch):
    monkeypatch.setenv('MIQA_HOME', str(tmp_path))
    (tmp_path / 'weights').mkdir()
    torch.save({'state_dict': _maniqa_source(small_maniqa)}, tmp_path / 'weights' / 'ckpt_kadid10k.pt')
    torch.manual_seed(7)
    loaded = build_scorer('MANIQA-KADID', num_crops=3, **SMALL_MANIQA)
    for k, v in small_maniqa.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x = _images(2)
    torch.testing.assert_close(loaded.score(x), small_maniqa.score(x))
