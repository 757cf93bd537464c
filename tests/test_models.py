"""RA-MIQA, baselines, backbones and weight files (miqa.models), tiny sizes on CPU."""
import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from miqa.hub import load_state_dict_file, resolve_weights  # noqa: E402
from miqa.models import RAMIQA, build_backbone  # noqa: E402
from miqa.registry import MODELS  # noqa: E402

TINY_VIT = dict(name='vit_small_patch16_224', pretrained=False, img_size=32, depth=1)
TINY_ENCODER = dict(type='TimmViTRegionEncoder', pretrained=False, img_size=48, depth=1)
TOKEN_CFG = dict(type='RAMIQA', backbone=TINY_VIT, region_encoder=TINY_ENCODER, region_cache=False)
LATE_CFG = dict(type='RAMIQA', backbone=dict(name='resnet18', pretrained=False), fusion='late',
                region_encoder=dict(type='CNNRegionEncoder', name='efficientnet_lite0', pretrained=True,
                                    img_size=64), region_cache=False)
B = 3


def _batch(region_size=48):
    torch.manual_seed(0)
    samples = dict(gt_score=torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64),
                   sample_idx=torch.tensor([4, 5, 6]), valid=torch.tensor([True, True, True]),
                   img_path=['a.png', 'b.png', 'c.png'], distortion=['fog', 'snow', 'contrast'],
                   region=['UD', 'ROI', 'BG'], fg_level=torch.tensor([1, 3, 2]),
                   bg_level=torch.tensor([1, 1, 5]))
    return torch.randn(B, 3, 32, 32), samples, torch.randn(B, 3, region_size, region_size)


@pytest.mark.parametrize('cfg, region_size', [(TOKEN_CFG, 48), (LATE_CFG, 64)], ids=['vit-token', 'cnn-late'])
def test_three_modes(cfg, region_size):
    model = MODELS.build(cfg)
    inputs, samples, region = _batch(region_size)
    model.eval()
    scores = model(inputs, samples, region, mode='tensor')
    assert scores.shape == (B,)
    preds = model(inputs, samples, region, mode='predict')
    assert len(preds) == B
    assert preds[1]['pred_score'] == pytest.approx(scores[1].item(), abs=1e-6)
    assert preds[1]['gt_score'] == 0.5 and preds[1]['sample_idx'] == 5 and preds[1]['valid'] is True
    assert preds[2]['img_path'] == 'c.png' and preds[2]['bg_level'] == 5 and preds[2]['region'] == 'BG'
    assert isinstance(preds[0]['pred_score'], float)
    model.train()
    loss = model(inputs, samples, region, mode='loss')
    assert set(loss) == {'loss'} and loss['loss'].ndim == 0 and loss['loss'].requires_grad


def test_token_layout_and_head_follow_spec():
    model = MODELS.build(TOKEN_CFG)
    bb_pos = model.backbone.pos_embed
    assert model.pos_embed.shape == (1, 2 + 4, 384)  # [region, CLS, 2x2 patches]
    assert torch.equal(model.pos_embed[:, 0], bb_pos[:, 0])  # slot 0 <- pretrained CLS pos-embed
    assert torch.equal(model.pos_embed[:, 2:], bb_pos[:, 1:])  # slots 2.. <- patch pos-embeds
    assert not torch.equal(model.pos_embed[:, 1], bb_pos[:, 0])  # slot 1 fresh
    assert not bb_pos.requires_grad  # the backbone's own pos_embed is unused
    assert [type(m).__name__ for m in model.region_projector] == ['Linear', 'LayerNorm', 'GELU']
    assert [type(m).__name__ for m in model.head] == ['Linear', 'GELU', 'Dropout', 'Linear']
    assert model.head[0].in_features == 768 and model.head[0].out_features == 384 and model.head[2].p == 0.2


def test_token_features_equal_the_hand_built_sequence():
    """Forward equivalence on random weights (spec §4): the ViT runs on [region, CLS, patches] plus the
    198-slot-style position embedding, and the features are concat(CLS out, region out)."""
    model = MODELS.build(TOKEN_CFG).eval()
    inputs, samples, region_inputs = _batch()
    bb = model.backbone
    with torch.no_grad():
        region = model.region_projector(model.region_encoder(region_inputs))  # (B, 384)
        sequence = torch.cat([region[:, None], bb.cls_token.expand(B, -1, -1), bb.patch_embed(inputs)], dim=1)
        x = sequence + model.pos_embed
        for block in bb.blocks:
            x = block(x)
        out = bb.norm(x)
        expected = torch.cat([out[:, 1], out[:, 0]], dim=1)
        features = model._token_features(inputs, region)
        torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-6)
        scores = model(inputs, samples, region_inputs, mode='tensor')
        torch.testing.assert_close(scores, model.head(expected).squeeze(-1), rtol=1e-5, atol=1e-6)
        # sequence slot 0 is the region token: changing it changes the region half of the features
        moved = model._token_features(inputs, region + torch.randn_like(region))
    assert (moved[:, 384:] - features[:, 384:]).abs().max() > 1e-3
    assert not torch.equal(out[:, 0], out[:, 1])


def test_region_encoder_is_frozen():
    model = MODELS.build(TOKEN_CFG)
    model.train()
    assert model.training and not model.region_encoder.training
    assert all(not m.training for m in model.region_encoder.modules())
    before = {k: v.clone() for k, v in model.region_encoder.state_dict().items()}
    optim = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    inputs, samples, region = _batch()
    model(inputs, samples, region, mode='loss')['loss'].backward()
    assert all(p.grad is None for p in model.region_encoder.parameters())
    assert model.region_projector[0].weight.grad is not None and model.backbone.cls_token.grad is not None
    optim.step()
    after = model.region_encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_region_token_ablation():
    model = MODELS.build(dict(TOKEN_CFG, use_region_token=False))
    assert model.region_encoder is None and not hasattr(model, 'pos_embed') and model.region_cache is None
    assert model.backbone.pos_embed.requires_grad
    assert model.head[0].in_features == 384
    inputs, samples, _ = _batch()
    assert model(inputs, samples, mode='tensor').shape == (B,)  # no region view needed
    with pytest.raises(ValueError, match='region_inputs'):
        MODELS.build(TOKEN_CFG)(inputs, samples, None)


def test_late_fusion_dims_and_token_needs_vit():
    model = MODELS.build(LATE_CFG)
    assert model.region_projector[0].in_features == 1280 and model.head[0].in_features == 512 + 384
    with pytest.raises(ValueError, match='fusion="late"'):
        MODELS.build(dict(LATE_CFG, fusion='token'))


def test_loss_skips_invalid_samples_and_accepts_list_samples():
    model = MODELS.build(TOKEN_CFG).eval()
    inputs, samples, region = _batch()
    samples['valid'] = torch.tensor([True, False, True])
    scores = model(inputs, samples, region)
    expected = ((scores[[0, 2]] - torch.tensor([0.2, 0.9])) ** 2).mean()
    torch.testing.assert_close(model(inputs, samples, region, mode='loss')['loss'], expected)
    as_list = [dict(gt_score=g, valid=v) for g, v in zip([0.2, 0.5, 0.9], [True, False, True])]
    torch.testing.assert_close(model(inputs, as_list, region, mode='loss')['loss'], expected)
    samples['valid'][:] = False
    assert model(inputs, samples, region, mode='loss')['loss'].item() == 0.0


def test_loss_cfg_and_init_weights_keep_weights():
    model = MODELS.build(dict(TOKEN_CFG, loss=dict(type='PLCCLoss', mse_weight=1.0)))
    assert type(model.criterion).__name__ == 'PLCCLoss'
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.init_weights()  # mmengine's Runner calls it; timm's ViT.init_weights must not run
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize('name, head, kwargs', [
    ('resnet18', 'fc', {}),
    ('efficientnet_b1', 'classifier', {}),
    ('vit_small_patch16_224', 'head', dict(img_size=32, depth=1)),
    ('efficientnet_lite0', '_fc', {}),
])
def test_baselines(name, head, kwargs):
    model = MODELS.build(dict(type='IQARegressor', backbone=dict(name=name, pretrained=False, **kwargs)))
    linear = getattr(model.backbone, head)
    assert isinstance(linear, torch.nn.Linear) and linear.out_features == 1  # the whole block is one Linear
    assert f'backbone.{head}.weight' in model.state_dict()
    model.eval()
    inputs, samples, _ = _batch()
    assert model(inputs, samples).shape == (B,)
    assert [p['sample_idx'] for p in model(inputs, samples, mode='predict')] == [4, 5, 6]


def test_efficientnet_lite0_package_weights_load_offline():
    model, dim = build_backbone('efficientnet_lite0', pretrained=True, num_outputs=0)
    ref = load_state_dict_file(resolve_weights(True, 'efficientnet_lite0'))
    assert dim == 1280 and torch.equal(model._conv_stem.weight, ref['_conv_stem.weight'])
    assert isinstance(model._dropout, torch.nn.Identity)


def test_missing_weights_say_what_to_get(tmp_path, monkeypatch):
    monkeypatch.setenv('MIQA_HOME', str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        build_backbone('resnet18', pretrained=True)
    msg = str(err.value)
    assert 'https://download.pytorch.org/models/resnet18-f37072fd.pth' in msg
    assert str(tmp_path / 'weights' / 'resnet18-f37072fd.pth') in msg
    with pytest.raises(FileNotFoundError, match='sere_finetuned_vit_small_ep100.pth.*LUSSeg/ImageNet'):
        MODELS.build(dict(TINY_ENCODER, pretrained=True))
    with pytest.raises(FileNotFoundError, match='augreg_in21k_ft_in1k'):
        build_backbone('vit_small_patch16_224', pretrained=True)
    with pytest.raises(KeyError, match='Did you mean: resnet18'):
        build_backbone('resnet19')


def test_local_weight_files(tmp_path, monkeypatch):
    monkeypatch.setenv('MIQA_HOME', str(tmp_path))
    (tmp_path / 'weights').mkdir()
    from torchvision.models import resnet18
    src = resnet18()
    torch.save({'state_dict': {'module.' + k: v for k, v in src.state_dict().items()}},
               tmp_path / 'weights' / 'resnet18-f37072fd.pth')
    model, _ = build_backbone('resnet18', pretrained=True, num_outputs=1)  # default file under $MIQA_HOME
    assert torch.equal(model.conv1.weight, src.conv1.weight) and model.fc.out_features == 1
    # a timm ViT safetensors file (224-style grid) into a model of another size, by relative path
    import timm
    vit = timm.create_model('vit_small_patch16_224', pretrained=False, img_size=32, depth=1)
    save_file(vit.state_dict(), str(tmp_path / 'weights' / 'tiny.safetensors'))
    model, _ = build_backbone('vit_small_patch16_224', pretrained='tiny.safetensors', num_outputs=1,
                              img_size=48, depth=1)
    assert model.pos_embed.shape == (1, 10, 384) and torch.equal(model.cls_token, vit.cls_token)
    # the RA-MIQA token layout is built from the loaded backbone
    ra = RAMIQA(backbone=dict(TINY_VIT, pretrained=str(tmp_path / 'weights' / 'tiny.safetensors')),
                region_encoder=TINY_ENCODER)
    assert torch.equal(ra.pos_embed[:, 0], vit.pos_embed[:, 0])


def test_mmengine_train_and_val_steps():
    """The runner's path: default_collate'd batch -> data_preprocessor -> train_step / val_step."""
    from mmengine.dataset import default_collate
    from mmengine.optim import OptimWrapper
    model = MODELS.build(dict(TOKEN_CFG, region_cache=True,
                              data_preprocessor=dict(type='MIQADataPreprocessor')))
    u8 = lambda size: torch.randint(0, 256, (3, size, size), dtype=torch.uint8)  # noqa: E731
    items = [dict(inputs=u8(32), region_inputs=u8(48),
                  data_samples=dict(gt_score=0.1 * i, sample_idx=i, valid=True, img_path=f'{i}.png',
                                    distortion='fog', region='UD', src_id='n01', fg_level=1, bg_level=1))
             for i in range(4)]
    batch = default_collate(items)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    log = model.train_step(batch, wrapper)
    assert set(log) == {'loss'} and torch.isfinite(log['loss'])
    preds = model.val_step(batch)
    assert [p['sample_idx'] for p in preds] == [0, 1, 2, 3] and preds[3]['gt_score'] == pytest.approx(0.3)
    assert all(isinstance(p['pred_score'], float) and p['src_id'] == 'n01' for p in preds)


def test_model_level_pretrained_switch(tmp_path, monkeypatch):
    """``--cfg-options model.pretrained=False`` turns every part's weights off (and True on)."""
    monkeypatch.setenv('MIQA_HOME', str(tmp_path))
    backbone = dict(name='vit_small_patch16_224', img_size=32, depth=1)  # pretrained defaults to True
    encoder = dict(type='TimmViTRegionEncoder', img_size=48, depth=1, pretrained='nowhere.pth')
    MODELS.build(dict(type='RAMIQA', backbone=backbone, region_encoder=encoder, pretrained=False))
    with pytest.raises(FileNotFoundError):
        MODELS.build(dict(type='RAMIQA', backbone=dict(backbone, pretrained=False), region_encoder=encoder))
    with pytest.raises(FileNotFoundError, match='augreg_in21k_ft_in1k'):  # the backbone's file first
        MODELS.build(dict(type='RAMIQA', backbone=dict(backbone, pretrained=False),
                          region_encoder=encoder, pretrained=True))
    MODELS.build(dict(type='IQARegressor', backbone='resnet18', pretrained=False))
    with pytest.raises(FileNotFoundError, match='resnet18'):
        MODELS.build(dict(type='IQARegressor', backbone='resnet18'))


def test_cnn_region_encoder_levels_are_spatial_means_of_the_named_blocks():
    """MLSP features against the block outputs computed without hooks (the frozen stem's own
    forward up to block k), in the order the levels are given."""
    from miqa.models.frozen_stem import _lite_stem

    levels = ['_blocks.5', '_blocks.2']  # out of order on purpose
    enc = MODELS.build(dict(type='CNNRegionEncoder', name='efficientnet_lite0', pretrained=True, img_size=64,
                            levels=levels))
    weights = build_backbone('efficientnet_lite0', pretrained=True)[0].state_dict()
    for key, value in enc.model.state_dict().items():  # the width probe left the weights and BN stats alone
        torch.testing.assert_close(value, weights[key], msg=key)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = torch.cat([_lite_stem(enc.model, k, x).mean((2, 3)) for k in (6, 3)], 1)
        got = enc(x)
    assert enc.out_dim == 80 + 24 == got.shape[1]
    torch.testing.assert_close(got, want)
    assert all(not m._forward_hooks for m in enc.model.modules())  # hooks removed after each call
    lite = dict(type='CNNRegionEncoder', name='efficientnet_lite0', pretrained=False)
    plain = MODELS.build(dict(lite, img_size=64))
    assert plain.out_dim == 1280 and plain.cache_identity() != enc.cache_identity()
    with pytest.raises(KeyError, match='_blocks.99'):
        MODELS.build(dict(lite, levels=['_blocks.99']))


def test_cnn_region_encoder_mean_and_std_pooling_per_level():
    """``pooling=('mean', 'std')``: per level, the spatial means then the population standard
    deviations (numpy's ``std``, ddof 0) of the block's output; its own cache key; bad values refused."""
    from miqa.models.frozen_stem import _lite_stem

    lite = dict(type='CNNRegionEncoder', name='efficientnet_lite0', pretrained=False, img_size=48)
    enc = MODELS.build(dict(lite, levels=['_blocks.2', '_blocks.5'], pooling=('mean', 'std')))
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        got = enc(x).numpy()
        maps = [_lite_stem(enc.model, k, x).numpy() for k in (3, 6)]
    want = np.concatenate([np.concatenate([m.mean((2, 3)), m.std((2, 3))], 1) for m in maps], 1)
    assert enc.out_dim == 2 * (24 + 80) == got.shape[1]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    means = MODELS.build(dict(lite, levels=['_blocks.2', '_blocks.5']))
    assert 'pooling=mean,std' in enc.cache_identity() and enc.cache_identity() != means.cache_identity()
    assert MODELS.build(dict(lite, levels=['_blocks.2'], pooling='std')).out_dim == 24  # one name alone
    with pytest.raises(ValueError, match='max'):
        MODELS.build(dict(lite, levels=['_blocks.2'], pooling=('max',)))
    with pytest.raises(ValueError, match='levels'):
        MODELS.build(dict(lite, pooling=('mean', 'std')))
