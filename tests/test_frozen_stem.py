"""Frozen, cached backbone stems (miqa.models.frozen_stem) in the regressor and in RA-MIQA."""
import numpy as np
import pytest
import torch

from miqa.models import RAMIQA, IQARegressor

LITE = dict(name='efficientnet_lite0', pretrained=False)


def _pair(cls, stages=11, **kwargs):
    torch.manual_seed(0)
    plain = cls(backbone=dict(LITE), **kwargs)
    frozen = cls(backbone=dict(LITE, frozen_stages=stages), **kwargs)
    frozen.load_state_dict(plain.state_dict())
    return plain, frozen


def _files(tmp_path, n):
    paths = []
    for i in range(n):
        path = tmp_path / f'img{i}.png'
        path.write_bytes(bytes([i]) * 10)
        paths.append(str(path))
    return paths


def test_regressor_equals_the_unfrozen_model_and_caches(tmp_path):
    plain, frozen = _pair(IQARegressor)
    assert list(plain.state_dict()) == list(frozen.state_dict())       # same checkpoints
    plain.eval()
    frozen.eval()
    x = torch.randn(3, 3, 96, 96)
    samples = dict(img_path=_files(tmp_path, 3))
    with torch.no_grad():
        expected = plain.predict_scores(x)
        first = frozen.predict_scores(x, data_samples=samples)
        second = frozen.predict_scores(x, data_samples=samples)
    torch.testing.assert_close(first, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(second, first, rtol=0, atol=0)        # served from the cache, bit for bit
    stats = frozen._stem.cache.stats()
    assert stats['misses'] == 3 and stats['hits'] == 3 and stats['encoder_calls'] == 1


def test_only_the_trunk_trains_and_the_stem_keeps_its_statistics(tmp_path):
    _, model = _pair(IQARegressor)
    model.train()
    stem_modules = model._stem.modules()
    assert not any(m.training for m in stem_modules)
    assert model.backbone._blocks[11].training and model.backbone._conv_head.training
    bn = model.backbone._bn0
    before = (bn.running_mean.clone(), bn.running_var.clone())
    trunk_bn = model.backbone._bn1
    trunk_before = trunk_bn.running_mean.clone()
    x = torch.randn(4, 3, 96, 96)
    loss = model(x, dict(gt_score=torch.rand(4), img_path=_files(tmp_path, 4)), mode='loss')['loss']
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for m in stem_modules for p in m.parameters())
    assert model.backbone._blocks[12]._project_conv.weight.grad is not None
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])
    assert not torch.equal(trunk_bn.running_mean, trunk_before)      # the trunk's BN still learns


def test_whole_feature_extractor_frozen_caches_pooled_features(tmp_path):
    plain, frozen = _pair(IQARegressor, stages='all')
    plain.eval()
    frozen.train()
    assert not frozen.backbone._conv_head.training and not frozen.backbone._bn1.training
    trainable = {n for n, p in frozen.named_parameters() if p.requires_grad}
    assert trainable == {'backbone._fc.weight', 'backbone._fc.bias'}    # only the regressor
    frozen.eval()
    x = torch.randn(2, 3, 96, 96)
    samples = dict(img_path=_files(tmp_path, 2))
    with torch.no_grad():
        torch.testing.assert_close(frozen.predict_scores(x, data_samples=samples), plain.predict_scores(x),
                                   rtol=1e-5, atol=1e-6)
        assert frozen._stem.stem(x).shape == (2, 1280)                      # pooled features cached
    with pytest.raises(ValueError, match="'all'"):
        IQARegressor(backbone=dict(LITE, frozen_stages='most'))


def test_ra_miqa_late_fusion_with_a_frozen_stem(tmp_path):
    kwargs = dict(region_encoder=dict(type='CNNRegionEncoder', img_size=64, pretrained=False),
                  fusion='late', region_cache=False)
    plain, frozen = _pair(RAMIQA, **kwargs)
    plain.eval()
    frozen.eval()
    x, region = torch.randn(2, 3, 96, 96), torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(frozen.predict_scores(x, region, dict(img_path=_files(tmp_path, 2))),
                                   plain.predict_scores(x, region), rtol=1e-5, atol=1e-6)
    ablation = RAMIQA(backbone=dict(LITE, frozen_stages=4), use_region_token=False)
    assert ablation.predict_scores(torch.randn(2, 3, 64, 64)).shape == (2,)


def test_changed_stem_weights_are_not_served_from_the_cache(tmp_path):
    _, model = _pair(IQARegressor)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    samples = dict(img_path=_files(tmp_path, 2))
    with torch.no_grad():
        model.predict_scores(x, data_samples=samples)
        model.predict_scores(x, data_samples=samples)
        assert model._stem.cache.stats()['encoder_calls'] == 1
        hidden = model._stem.stem(x)
        model.backbone._conv_stem.weight.normal_()   # an in-place edit of a frozen weight
        model.predict_scores(x, data_samples=samples)
    stats = model._stem.cache.stats()
    assert stats['encoder_calls'] == 2 and stats['hits'] == 2 and stats['misses'] == 4
    assert not np.allclose(model._stem.stem(x).numpy(), hidden.numpy())


def test_bad_settings():
    with pytest.raises(KeyError, match='not supported'):
        IQARegressor(backbone=dict(name='resnet18', pretrained=False, frozen_stages=2))
    with pytest.raises(ValueError, match='1..16'):
        IQARegressor(backbone=dict(LITE, frozen_stages=17))
    with pytest.raises(ValueError, match='late'):
        RAMIQA(backbone=dict(LITE, frozen_stages=4), fusion='token',
               region_encoder=dict(type='CNNRegionEncoder', pretrained=False))
