"""Converters: mmseg/SERE ViT names, released RA-MIQA and baseline layouts (miqa.models.converters).

Sources are built from the real module definitions (timm, torchvision, nn.MultiheadAttention)
with random weights and renamed to the released layouts; mmseg names come from the hand-derived
key list tests/data/mmseg_vit_small_keys.txt (mmseg is not installed).
"""
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import pytest  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from timm.models.vision_transformer import Attention  # noqa: E402
from torch import nn  # noqa: E402
from torchvision import models as tvm  # noqa: E402

from miqa.models.converters import (  # noqa: E402
    TIMM_VIT_TO_MMSEG,
    ConversionError,
    convert_checkpoint,
    load_timm_vit,
    rename_keys,
    resize_pos_embed,
    save_state_dict,
    two_way,
    vit_to_timm,
)
from miqa.registry import MODELS  # noqa: E402

KEYS_FILE = Path(__file__).parent / 'data' / 'mmseg_vit_small_keys.txt'
TINY_VIT = dict(name='vit_small_patch16_224', pretrained=False, img_size=32, depth=2)
TINY_RA_MIQA = dict(type='RAMIQA', backbone=TINY_VIT, region_encoder=dict(
    type='TimmViTRegionEncoder', pretrained=False, img_size=48, depth=2), region_cache=False)


def _mmseg_keys():
    rows = [line.split() for line in KEYS_FILE.read_text().splitlines() if line and not line.startswith('#')]
    return {k: tuple(int(d) for d in shape.split(',')) for k, shape in rows}


def _tiny_vit(**kwargs):
    torch.manual_seed(0)
    return timm.create_model('vit_small_patch16_224', pretrained=False, img_size=32, depth=2, **kwargs).eval()


def test_mmseg_key_list_matches_timm_vit_small():
    """The hand-derived mmseg list and timm's ViT-S/16 map one-to-one both ways, shapes included."""
    mmseg = _mmseg_keys()
    assert len(mmseg) == 4 + 12 * 12 + 2
    with torch.device('meta'):
        vit = timm.create_model('vit_small_patch16_224', pretrained=False, num_classes=0)
    timm_shapes = {k: tuple(v.shape) for k, v in vit.state_dict().items()}
    exported = rename_keys(vit.state_dict(), TIMM_VIT_TO_MMSEG)
    assert {k: tuple(v.shape) for k, v in exported.items()} == mmseg
    source = {k: torch.empty(s, device='meta') for k, s in mmseg.items()}
    assert {k: tuple(v.shape) for k, v in vit_to_timm(source).items()} == timm_shapes
    # into the 288x288 region encoder: pos_embed resized 14x14 -> 18x18
    with torch.device('meta'):
        enc = timm.create_model('vit_small_patch16_224', pretrained=False, num_classes=0, img_size=288)
    converted = vit_to_timm(source)
    converted['pos_embed'] = resize_pos_embed(converted['pos_embed'], (18, 18))
    assert tuple(converted['pos_embed'].shape) == (1, 325, 384) == tuple(enc.pos_embed.shape)


def test_multihead_attention_in_proj_equals_timm_qkv():
    torch.manual_seed(0)
    dim, heads = 32, 4
    mha = nn.MultiheadAttention(dim, heads, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    attn = Attention(dim, num_heads=heads, qkv_bias=True).eval()
    attn.load_state_dict({'qkv.weight': mha.in_proj_weight, 'qkv.bias': mha.in_proj_bias,
                          'proj.weight': mha.out_proj.weight, 'proj.bias': mha.out_proj.bias})
    x = torch.randn(2, 7, dim)
    torch.testing.assert_close(attn(x), mha(x, x, x, need_weights=False)[0], rtol=1e-5, atol=1e-6)


def test_timm_round_trip_through_mmseg_names():
    src = _tiny_vit(num_classes=0)
    mmseg_sd = {'backbone.' + k: v for k, v in rename_keys(src.state_dict(), TIMM_VIT_TO_MMSEG).items()}
    dst = timm.create_model('vit_small_patch16_224', pretrained=False, img_size=32, depth=2,
                            num_classes=0).eval()
    load_timm_vit(dst, mmseg_sd)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(dst(x), src(x), rtol=0, atol=0)


@pytest.mark.parametrize('with_fc_norm', [True, False])
def test_sere_style_final_norm(with_fc_norm):
    """SERE / timm-style files: ``fc_norm`` feeds the final norm when present, else ``norm``."""
    sd = dict(_tiny_vit().state_dict())  # has head.* (1000 classes) and norm.*
    if with_fc_norm:
        sd['fc_norm.weight'] = torch.full((384,), 2.0)
        sd['fc_norm.bias'] = torch.full((384,), -1.0)
    dst = timm.create_model('vit_small_patch16_224', pretrained=False, img_size=48, depth=2, num_classes=0)
    load_timm_vit(dst, sd)
    expected = sd['fc_norm.weight'] if with_fc_norm else sd['norm.weight']
    assert torch.equal(dst.norm.weight, expected)
    assert dst.pos_embed.shape == (1, 10, 384)  # 2x2 -> 3x3 grid
    torch.testing.assert_close(dst.blocks[1].mlp.fc2.weight, sd['blocks.1.mlp.fc2.weight'])


def test_resize_pos_embed_matches_mmseg_resize():
    """mmseg's resize_pos_embed: bicubic, align_corners=False, CLS slot kept (spec §4)."""
    pe = torch.randn(1, 1 + 14 * 14, 8)
    grid = pe[:, 1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(18, 18), mode='bicubic', align_corners=False)
    ref = torch.cat([pe[:, :1], ref.flatten(2).transpose(1, 2)], dim=1)
    torch.testing.assert_close(resize_pos_embed(pe, (18, 18)), ref)


def _released_ra_miqa(model: nn.Module) -> dict:
    """Our RAMIQA state dict renamed to the authors' release layout (spec §4)."""
    inverse = ((r'backbone\.(.+)', r'base_model.\1'), (r'region_projector\.(.+)', r'mask_projector.\1'),
               (r'head\.(.+)', r'quality_regressor.\1'), (r'pos_embed', 'pos_embed'))
    sd = model.state_dict()
    enc = {k[len('region_encoder.model.'):]: v for k, v in sd.items() if k.startswith('region_encoder.')}
    rest = {k: v for k, v in sd.items() if not k.startswith('region_encoder.')}
    out = rename_keys(rest, inverse)
    out.update({'mask_encoder.' + k: v for k, v in rename_keys(enc, TIMM_VIT_TO_MMSEG).items()})
    return out


def test_ra_miqa_release_layout(tmp_path):
    torch.manual_seed(0)
    src_model = MODELS.build(TINY_RA_MIQA).eval()
    released = _released_ra_miqa(src_model)
    assert {k.split('.')[0] for k in released} == {
        'base_model', 'mask_encoder', 'mask_projector', 'quality_regressor', 'pos_embed'}
    assert 'mask_encoder.layers.1.attn.attn.in_proj_weight' in released
    ckpt = {'state_dict': {'module.' + k: v for k, v in released.items()}, 'epoch': 3}
    converted = convert_checkpoint(ckpt, 'ra_miqa', model_cfg=TINY_RA_MIQA)
    save_state_dict(converted, tmp_path / 'ra.pth')
    loaded = torch.load(tmp_path / 'ra.pth', weights_only=True)
    dst = MODELS.build(TINY_RA_MIQA).eval()
    dst.load_state_dict(loaded, strict=True)
    x, r = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 48, 48)
    torch.testing.assert_close(dst(x, region_inputs=r), src_model(x, region_inputs=r), rtol=0, atol=0)


def test_ra_miqa_released_encoder_at_224_is_resized():
    """A release whose mmseg encoder keeps its 224 pos_embed loads into the 288 (here 48) encoder."""
    src_model = MODELS.build(TINY_RA_MIQA)
    released = _released_ra_miqa(src_model)
    small = torch.randn(1, 1 + 2 * 2, 384)  # the 32x32 grid of a 224-style release
    released['mask_encoder.pos_embed'] = small
    converted = convert_checkpoint(released, 'ra_miqa', model_cfg=TINY_RA_MIQA)
    torch.testing.assert_close(converted['region_encoder.model.pos_embed'], resize_pos_embed(small, (3, 3)))


def test_strictness_lists_offending_keys():
    released = _released_ra_miqa(MODELS.build(TINY_RA_MIQA))
    extra = {**released, 'base_model.head.weight': torch.zeros(1000, 384)}
    with pytest.raises(ConversionError, match=r'base_model\.head\.weight'):
        convert_checkpoint(extra, 'ra_miqa', model_cfg=TINY_RA_MIQA)
    convert_checkpoint(extra, 'ra_miqa', model_cfg=TINY_RA_MIQA, drop=[r'base_model\.head\.'])
    missing = {k: v for k, v in released.items() if k != 'quality_regressor.3.bias'}
    with pytest.raises(ConversionError, match=r'missing keys: head\.3\.bias'):
        convert_checkpoint(missing, 'ra_miqa', model_cfg=TINY_RA_MIQA)
    unknown = {**released, 'mask_encoder.layers.0.gamma': torch.zeros(3)}
    with pytest.raises(ConversionError, match=r'layers\.0\.gamma'):
        convert_checkpoint(unknown, 'ra_miqa', model_cfg=TINY_RA_MIQA)


@pytest.mark.parametrize('name, make', [
    ('resnet18', lambda: _replace(tvm.resnet18(), 'fc', nn.Linear(512, 1))),
    ('efficientnet_b1', lambda: _replace(tvm.efficientnet_b1(), 'classifier', nn.Linear(1280, 1))),
    ('vit_small_patch16_224', lambda: timm.create_model('vit_small_patch16_224', pretrained=False,
                                                        num_classes=1, img_size=32, depth=1)),
])
def test_released_baselines(name, make):
    torch.manual_seed(0)
    src = make().eval()
    ckpt = {'model': {'module.' + k: v for k, v in src.state_dict().items()}}
    cfg = dict(type='IQARegressor', backbone=dict(name=name, pretrained=False))
    if name.startswith('vit'):
        cfg['backbone'].update(img_size=32, depth=1)
    dst = MODELS.build(cfg).eval()
    dst.load_state_dict(convert_checkpoint(ckpt, name, model_cfg=cfg), strict=True)
    loaded = dst.backbone.state_dict()
    for key, value in src.state_dict().items():  # a pure rename: every tensor arrives unchanged
        assert torch.equal(loaded[key], value), key
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(dst(x), src(x).squeeze(-1), rtol=0, atol=0)


def _replace(model: nn.Module, attr: str, head: nn.Module) -> nn.Module:
    setattr(model, attr, head)
    return model


def test_convert_tool(tmp_path, monkeypatch):
    src = _replace(tvm.resnet18(), 'fc', nn.Linear(512, 1))
    torch.save({'state_dict': {'module.' + k: v for k, v in src.state_dict().items()}}, tmp_path / 'src.pth')
    tool = Path(__file__).parents[1] / 'tools' / 'convert_checkpoint.py'
    proc = subprocess.run([sys.executable, str(tool), str(tmp_path / 'src.pth'),
                           str(tmp_path / 'out' / 'dst.pth'), '--model', 'resnet18'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = torch.load(tmp_path / 'out' / 'dst.pth', weights_only=True)
    assert torch.equal(out['backbone.fc.weight'], src.fc.weight)
    assert not [p for p in (tmp_path / 'out').iterdir() if p.name.endswith('.tmp')]


def test_two_way_writes_a_table_once_and_inverts_it_exactly():
    theirs, ours = two_way((('res.{n}.{p}', 'backbone.layer{n}.{p}'), ('head.w', 'fc.weight')),
                           dict(n='[1-4]', p='weight|bias'))
    t = torch.zeros(1)
    src = {'res.2.bias': t, 'head.w': t}
    out = rename_keys(src, theirs)
    assert set(out) == {'backbone.layer2.bias', 'fc.weight'}
    assert set(rename_keys(out, ours)) == set(src)
    with pytest.raises(ConversionError, match='res.5.bias'):  # fields keep their patterns
        rename_keys({'res.5.bias': t}, theirs)
