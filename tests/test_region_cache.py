"""Region-token cache (miqa.models.region_cache) inside RA-MIQA."""
import copy
import os
import pickle

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import pytest  # noqa: E402
import torch  # noqa: E402

from miqa.models.region_cache import RegionTokenCache, compute_context, module_fingerprint  # noqa: E402
from miqa.registry import MODELS  # noqa: E402

CFG = dict(type='RAMIQA', backbone=dict(name='vit_small_patch16_224', pretrained=False, img_size=32, depth=1),
           region_encoder=dict(type='TimmViTRegionEncoder', pretrained=False, img_size=48, depth=1))


class CallCounter:
    """Counts region-encoder forwards and the batch sizes they saw."""

    def __init__(self, module):
        self.sizes = []
        module.register_forward_hook(lambda m, args, out: self.sizes.append(args[0].shape[0]))

    @property
    def calls(self):
        return len(self.sizes)


def _models(**cache):
    torch.manual_seed(0)
    cached = MODELS.build(dict(CFG, region_cache=cache or True)).eval()
    plain = MODELS.build(dict(CFG, region_cache=False)).eval()
    plain.load_state_dict(cached.state_dict())
    return cached, plain


def _data(tmp_path, names=('a', 'b', 'c'), seed=0):
    paths = []
    for name in names:
        path = tmp_path / f'{name}.png'
        if not path.exists():
            path.write_bytes(name.encode() * 10)
        paths.append(str(path))
    g = torch.Generator().manual_seed(seed)
    n = len(names)
    samples = dict(gt_score=torch.rand(n, generator=g), img_path=paths)
    return torch.randn(n, 3, 32, 32, generator=g), samples, torch.randn(n, 3, 48, 48, generator=g)


def test_cached_forward_is_identical_and_hits_skip_the_encoder(tmp_path):
    cached, plain = _models()
    counter = CallCounter(cached.region_encoder)
    x, s, r = _data(tmp_path)
    first = cached(x, s, r)
    assert counter.calls == 1
    second = cached(x, s, r)
    assert counter.calls == 1  # every sample hit: no encoder forward at all
    assert torch.equal(first, second) and torch.equal(second, plain(x, s, r))
    assert cached.region_cache.stats() == dict(hits=3, misses=3, encoder_calls=1, entries=3, rebuilt=0)
    cached.train()  # training on cached features: gradients reach the projector
    cached(x, s, r, mode='loss')['loss'].backward()
    assert counter.calls == 1 and cached.region_projector[0].weight.grad is not None


def test_partial_hits_encode_only_the_missing(tmp_path):
    cached, plain = _models()
    counter = CallCounter(cached.region_encoder)
    x, s, r = _data(tmp_path)
    cached(x, s, r)
    x2, s2, r2 = _data(tmp_path, names=('a', 'd', 'c'), seed=0)  # same view tensors, one new file
    out = cached(x2, s2, r2)
    assert counter.sizes == [3, 1]
    torch.testing.assert_close(out, plain(x2, s2, r2))


def test_changed_encoder_weights_invalidate(tmp_path):
    cached, plain = _models()
    counter = CallCounter(cached.region_encoder)
    x, s, r = _data(tmp_path)
    cached(x, s, r)
    torch.manual_seed(1)
    other = MODELS.build(CFG['region_encoder']).state_dict()
    cached.region_encoder.load_state_dict(other)
    plain.region_encoder.load_state_dict(other)
    assert torch.equal(cached(x, s, r), plain(x, s, r)) and counter.calls == 2
    with torch.no_grad():  # an in-place edit also changes the fingerprint
        for m in (cached, plain):
            m.region_encoder.model.norm.weight.mul_(2)
    assert torch.equal(cached(x, s, r), plain(x, s, r)) and counter.calls == 3
    cached(x, s, r)
    assert counter.calls == 3


def test_changed_image_file_or_view_misses(tmp_path):
    cached, _ = _models()
    counter = CallCounter(cached.region_encoder)
    x, s, r = _data(tmp_path)
    cached(x, s, r)
    (tmp_path / 'b.png').write_bytes(b'rewritten, longer than before ' * 3)
    cached(x, s, r)
    assert counter.sizes == [3, 1]
    r2 = r.clone()
    r2[0] += 0.5  # same file, another view (e.g. a changed pipeline)
    cached(x, s, r2)
    assert counter.sizes == [3, 1, 1]


def test_without_paths_the_tensor_is_the_key(tmp_path):
    cached, plain = _models()
    counter = CallCounter(cached.region_encoder)
    x, _, r = _data(tmp_path)
    first = cached(x, None, r)
    assert torch.equal(cached(x, None, r.clone()), first) and counter.calls == 1
    r2 = r.clone()
    r2[2, 0, 47, 47] += 1e-3  # outside any probe: the whole tensor is hashed
    # the miss is encoded alone: equal to the uncached model up to batch-composition rounding
    torch.testing.assert_close(cached(x, None, r2), plain(x, None, r2), rtol=1e-5, atol=1e-6)
    assert counter.sizes == [3, 1]


@pytest.mark.parametrize('where', ['path', 'miqa_home'])
def test_disk_cache_is_shared_and_atomic(tmp_path, monkeypatch, where):
    cache_dir = tmp_path / 'cache'
    if where == 'miqa_home':  # cache_dir=True: $MIQA_HOME/cache/tokens
        monkeypatch.setenv('MIQA_HOME', str(tmp_path / 'home'))
        cache_dir = tmp_path / 'home' / 'cache' / 'tokens'
    a, plain = _models(cache_dir=str(cache_dir) if where == 'path' else True)
    x, s, r = _data(tmp_path)
    expected = a(x, s, r)
    b = MODELS.build(dict(CFG, region_cache=dict(cache_dir=str(cache_dir)))).eval()
    b.load_state_dict(a.state_dict())  # e.g. another rank or a later evaluation run
    counter = CallCounter(b.region_encoder)
    assert torch.equal(b(x, s, r), expected) and counter.calls == 0
    files = [p for p in cache_dir.rglob('*') if p.is_file()]
    assert len(files) == 3 and all(p.suffix == '.pt' for p in files)


def test_switches_and_unfrozen_encoder():
    assert MODELS.build(dict(CFG, region_cache=False)).region_cache is None
    assert MODELS.build(dict(CFG, region_cache=dict(enabled=False))).region_cache is None
    enc = dict(CFG['region_encoder'], frozen=False)
    model = MODELS.build(dict(CFG, region_encoder=enc))
    assert model.region_cache is None and model.region_encoder.training
    x, r = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 48, 48)
    model(x, dict(gt_score=torch.rand(2)), r, mode='loss')['loss'].backward()
    assert model.region_encoder.model.cls_token.grad is not None


def test_fingerprint_and_context():
    torch.manual_seed(0)
    enc = MODELS.build(CFG['region_encoder'])
    assert module_fingerprint(enc, 'a') != module_fingerprint(enc, 'b')
    assert enc.cache_identity() != MODELS.build(dict(CFG['region_encoder'], ln_eps=1e-5)).cache_identity()
    x = torch.zeros(1, 3, 8, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        amp = compute_context(x)
    assert amp != compute_context(x) != compute_context(x.double())


def test_model_with_cache_copies_and_pickles(tmp_path):
    cached, _ = _models()
    x, s, r = _data(tmp_path)
    out = cached(x, s, r)
    clone = copy.deepcopy(cached)
    assert torch.equal(clone(x, s, r), out)
    restored = pickle.loads(pickle.dumps(cached.region_cache))
    assert isinstance(restored, RegionTokenCache) and restored.stats()['entries'] == 3


@pytest.mark.parametrize('max_items', [1])
def test_max_items_caps_memory(tmp_path, max_items):
    cached, _ = _models(max_items=max_items)
    x, s, r = _data(tmp_path)
    cached(x, s, r)
    assert cached.region_cache.stats()['entries'] == 1


def test_path_less_samples_bypass_the_cache_without_tensor_hashing(tmp_path):
    cached, plain = _models(hash_tensors=False)
    counter = CallCounter(cached.region_encoder)
    x, s, r = _data(tmp_path)
    s['img_path'][1] = ''  # one sample without a path
    cached(x, s, r)
    out = cached(x, s, r)
    assert counter.sizes == [3, 1] and cached.region_cache.stats()['entries'] == 2
    torch.testing.assert_close(out, plain(x, s, r))
