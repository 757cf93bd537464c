"""The loader skips the region views the model has cached (RegionView + miqa_collate + RAMIQA).

Real fork-started DataLoader workers, a real MIQD fixture tree and a small RA-MIQA: after the
first epoch no view is built in any worker, predictions are bit-identical to the first epoch,
and a changed file, resize step or view still misses; a skipped view whose token the model no
longer holds is remade from the file.
"""
import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from mmengine.dataset import default_collate  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from miqa.datasets import MIQDDataset  # noqa: E402
from miqa.datasets import transforms as tf  # noqa: E402
from miqa.datasets.collate import miqa_collate  # noqa: E402
from miqa.registry import MODELS  # noqa: E402
from miqa.utils.shared_keys import shared_key_index  # noqa: E402

CFG = dict(type='RAMIQA', backbone=dict(name='vit_small_patch16_224', pretrained=False, img_size=32, depth=1),
           region_encoder=dict(type='TimmViTRegionEncoder', pretrained=False, img_size=48, depth=1),
           data_preprocessor=dict(type='MIQADataPreprocessor'))
N = 12


def pipeline(resize=48, view=48, skip=True, backend='torch'):
    return [dict(type='LoadImage', on_error='skip'), dict(type='Resize', size=resize),
            dict(type='RegionView', size=view, skip_cached=skip, backend=backend),
            dict(type='CenterCrop', size=32), dict(type='PackMIQAInputs')]


def loader(root, steps, collate=miqa_collate, workers=2):
    with DefaultScope.overwrite_default_scope('miqa'):
        ds = MIQDDataset(root, split='train', split_file='official', pipeline=steps, indices=N,
                         cache_dir=False)
    return DataLoader(ds, batch_size=4, shuffle=False, num_workers=workers, persistent_workers=workers > 0,
                      collate_fn=collate, multiprocessing_context='fork' if workers else None)


@pytest.fixture
def fresh_index():
    index = shared_key_index()
    index.clear()
    index.ready = False
    yield index
    index.clear()
    index.ready = False


def models():
    torch.manual_seed(0)
    cached = MODELS.build(dict(CFG, region_cache=True)).eval()
    plain = MODELS.build(dict(CFG, region_cache=False)).eval()
    plain.load_state_dict(cached.state_dict())
    return cached, plain


def epoch(model, batches_of):
    """Predictions of one pass and, per batch, which samples arrived with a view."""
    preds, views = [], []
    with torch.no_grad():
        for batch in batches_of:
            has = batch['data_samples'].get('has_region_view')
            views.append(list(has) if has is not None else [True] * len(batch['inputs']))
            assert ('region_inputs' in batch) == any(views[-1])
            data = model.data_preprocessor(batch)
            preds.append(model(**data, mode='tensor'))
    return torch.cat(preds), views


def count_encoder(model):
    sizes = []
    model.region_encoder.register_forward_hook(lambda m, a, o: sizes.append(a[0].shape[0]))
    return sizes


@pytest.mark.parametrize('resize, view', [(48, 48), (40, 48)])  # the reference (no warp in the view) / a warp
def test_after_the_first_epoch_no_view_is_built(make_tree, fresh_index, resize, view):
    tree = make_tree(tasks=('cls',), n_src=5, image_size=(36, 44))
    cached, plain = models()
    sizes = count_encoder(cached)
    data = loader(tree['root'], pipeline(resize, view))
    first, views1 = epoch(cached, data)
    assert all(all(v) for v in views1) and sum(sizes) == N
    second, views2 = epoch(cached, data)
    third, views3 = epoch(cached, data)
    assert not any(any(v) for v in views2 + views3)        # no view built by any worker
    assert sum(sizes) == N                                  # and no encoder forward
    assert torch.equal(second, first) and torch.equal(third, first)   # hits are bit-exact
    reference, _ = epoch(plain, loader(tree['root'], pipeline(resize, view, skip=False), workers=0))
    torch.testing.assert_close(first, reference, rtol=1e-5, atol=1e-6)
    assert cached.region_cache.stats()['rebuilt'] == 0


def test_a_changed_file_resize_or_view_still_misses(make_tree, fresh_index):
    tree = make_tree(tasks=('cls',), n_src=5, image_size=(36, 44))
    cached, plain = models()
    sizes = count_encoder(cached)
    data = loader(tree['root'], pipeline())
    epoch(cached, data)
    changed = data.dataset.get_data_info(5)['img_path']
    img = cv2.imread(changed)
    cv2.imwrite(changed, 255 - img)                         # new pixels, same name
    preds, views = epoch(cached, data)
    flat = [v for batch in views for v in batch]
    assert flat == [i == 5 for i in range(N)] and sizes == [4, 4, 4, 1]
    reference, _ = epoch(plain, loader(tree['root'], pipeline(skip=False), workers=0))
    torch.testing.assert_close(preds, reference, rtol=1e-5, atol=1e-6)

    for steps in (pipeline(resize=44), pipeline(resize=44, backend='pil')):  # another resize / view warp
        _, views = epoch(cached, loader(tree['root'], steps))
        assert all(all(v) for v in views)


def test_a_skipped_view_missing_from_the_cache_is_remade_from_the_file(make_tree, fresh_index):
    tree = make_tree(tasks=('cls',), n_src=5, image_size=(36, 44))
    cached, plain = models()
    data = loader(tree['root'], pipeline(40, 48))
    epoch(cached, data)
    torch.manual_seed(1)  # other encoder weights: the cached tokens no longer apply
    weights = MODELS.build(CFG['region_encoder']).state_dict()
    cached.region_encoder.load_state_dict(weights)
    plain.region_encoder.load_state_dict(weights)
    preds, views = epoch(cached, data)
    assert not any(any(v) for v in views) and cached.region_cache.stats()['rebuilt'] == N
    reference, _ = epoch(plain, loader(tree['root'], pipeline(40, 48, skip=False), workers=0))
    torch.testing.assert_close(preds, reference, rtol=1e-5, atol=1e-6)
    # the uncached model remakes the views too when a loader skipped them for another model
    from_skipped, _ = epoch(plain, data)
    torch.testing.assert_close(from_skipped, reference, rtol=1e-5, atol=1e-6)


def test_without_miqa_collate_nothing_is_skipped(make_tree, fresh_index):
    tree = make_tree(tasks=('cls',), n_src=5, image_size=(36, 44))
    cached, _ = models()
    data = loader(tree['root'], pipeline(), collate=default_collate)
    for _ in range(2):
        for batch in data:
            assert batch['region_inputs'].shape[0] == 4   # default_collate never sees a skipped view
            cached(**cached.data_preprocessor(batch), mode='tensor')
    assert cached.region_cache.stats()['hits'] == N


def test_remaking_a_view_checks_the_file(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, rgb[:, :, ::-1])
    steps = [tf.LoadImage(), tf.Resize(24), tf.RegionView(20, skip_cached=False), tf.CenterCrop(16)]
    results = dict(img_path=path)
    for t in steps[:3]:
        results = t(results)
    remade = tf.rebuild_region_view(path, results['region_recipe'], results['region_key'])
    assert torch.equal(remade, results['region_inputs'])
    cv2.imwrite(path, 255 - rgb)
    with pytest.raises(ValueError, match='a.png'):
        tf.rebuild_region_view(path, results['region_recipe'], results['region_key'])


def test_keys_need_an_unbroken_trail_and_a_valid_image(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, rgb[:, :, ::-1])
    view = tf.RegionView(24, skip_cached=False)
    loaded = tf.LoadImage()(dict(img_path=path))
    ok = view(tf.Resize(24)(dict(loaded)))
    assert ok['region_key'] and ok['region_recipe']
    foreign = tf.Resize(24)(dict(loaded))
    foreign['img'] = foreign['img'] + 1                   # a transform that does not record itself
    broken = view(foreign)
    assert broken['region_key'] != ok['region_key'] and broken['region_recipe'] == ''
    flagged = view(tf.Resize(24)(dict(loaded, valid=False)))
    assert flagged['region_key'] == '' and 'region_inputs' in flagged
    # same pixels from another file: the same key (the key is the content, not the name)
    other = str(tmp_path / 'b.png')
    cv2.imwrite(other, rgb[:, :, ::-1])
    again = view(tf.Resize(24)(tf.LoadImage()(dict(img_path=other))))
    assert again['region_key'] == ok['region_key']


def test_miqa_collate_is_default_collate_without_region_views():
    items = [dict(inputs=torch.full((3, 4, 4), i, dtype=torch.uint8), data_samples=dict(gt_score=0.1 * i))
             for i in range(3)]
    ours, theirs = miqa_collate(items), default_collate(items)
    assert torch.equal(ours['inputs'], theirs['inputs']) and ours['data_samples'].keys() == {'gt_score'}
    items = [dict(d, data_samples=dict(d['data_samples'], region_key=f'k{i}', region_recipe=''))
             for i, d in enumerate(items)]
    items[1]['region_inputs'] = torch.ones(3, 8, 8)
    mixed = miqa_collate(items)
    assert mixed['region_inputs'].shape == (1, 3, 8, 8)
    assert mixed['data_samples']['has_region_view'] == [False, True, False]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_on_cuda_the_tokens_stay_on_the_device_and_batches_without_views_match(tmp_path):
    torch.manual_seed(0)
    cached = MODELS.build(dict(CFG, region_cache=True)).cuda().eval()
    rng = np.random.default_rng(0)
    steps = [tf.LoadImage(), tf.Resize(48), tf.RegionView(48, skip_cached=False), tf.CenterCrop(32),
             tf.PackMIQAInputs()]
    items = []
    for i in range(6):
        path = tmp_path / f'{i}.png'
        cv2.imwrite(str(path), rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
        results = dict(img_path=str(path), sample_idx=i)
        for step in steps:
            results = step(results)
        items.append(results)
    full = miqa_collate(items)
    samples = dict(full['data_samples'], has_region_view=[False] * 6)
    skipped = dict(inputs=full['inputs'], data_samples=samples)
    with torch.no_grad():
        first = cached(**cached.data_preprocessor(full), mode='tensor')
        second = cached(**cached.data_preprocessor(skipped), mode='tensor')
    assert torch.equal(first, second)
    store = next(iter(cached.region_cache._stores.values()))
    assert store.data.device.type == 'cuda' and cached.region_cache.stats()['hits'] == 6


def test_only_pipeline_keys_reach_the_loaders_index(tmp_path, fresh_index):
    """Probe-keyed entries (views handed in as tensors, the frozen stem's inputs) are cached but not
    published: no RegionView asks for them. Pipeline keys are published once stored."""
    cached, _ = models()
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f'{i}.png'))
        cv2.imwrite(paths[-1], np.full((8, 8, 3), i, np.uint8))
    x, r = torch.randn(3, 3, 32, 32), torch.randn(3, 3, 48, 48)
    cached(x, dict(img_path=paths), r)
    assert fresh_index.count == 0 and len(cached.region_cache) == 3
    keyed = dict(img_path=paths, region_key=['a|v', 'b|v', ''], region_recipe=['', '', ''])
    cached(x, keyed, r)
    assert fresh_index.count == 2 and 'a|v' in fresh_index and 'b|v' in fresh_index


def _rank(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world)
    torch.manual_seed(0)  # the same frozen encoder on every rank
    model = MODELS.build(dict(CFG, region_cache=dict(sync_ranks=True))).eval()
    index = shared_key_index()
    index.clear()
    g = torch.Generator().manual_seed(rank)  # each rank its own samples
    x, r = torch.randn(2, 3, 32, 32, generator=g), torch.randn(2, 3, 48, 48, generator=g)
    keys = [f'rank{rank}-{i}|v' for i in range(2)]
    with torch.no_grad():
        model(x, dict(region_key=keys), r)
        model(x, dict(region_key=keys), r)  # all hits: the collective still runs on every rank
    (store,) = model.region_cache._stores.values()
    tokens = {k: store.data[row].tolist() for k, row in store.rows.items()}
    every = [f'rank{q}-{i}|v' for q in range(world) for i in range(2)]
    torch.save(dict(tokens=tokens, published=sorted(k for k in every if k in index)), f'{out}/rank{rank}.pt')
    dist.destroy_process_group()


def test_sync_ranks_gives_every_rank_every_token(tmp_path):
    """Two gloo ranks, each encoding its own samples: afterwards both hold all four tokens, equal bit
    for bit, and both loaders' indexes list them (the next epoch skips those views on every rank)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.start_processes(_rank, args=(2, port, str(tmp_path)), nprocs=2, start_method='fork')
    a, b = (torch.load(tmp_path / f'rank{i}.pt') for i in range(2))
    assert len(a['tokens']) == len(b['tokens']) == 4 and a['tokens'] == b['tokens']
    assert a['published'] == b['published'] == sorted(a['tokens'])
