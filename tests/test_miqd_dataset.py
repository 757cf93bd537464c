"""MIQDDataset, its label index, cache and splits, on synthetic trees in the official layout."""
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate
from mmengine.registry import DefaultScope
from torch.utils.data import DataLoader

from miqa.datasets import (
    MIQDDataset,
    load_index,
    make_split,
    official_split_path,
    parse_name,
    read_split_file,
)
from miqa.datasets import index as index_mod
from miqa.datasets import miqd as miqd_mod
from miqa.registry import DATASETS

CONTRACT_KEYS = {'img_path', 'ref_path', 'src_id', 'filename', 'distortion', 'region', 'fg_level', 'bg_level',
                 'category', 'consistency', 'accuracy', 'gt_score', 'sample_idx'}


def infos(dataset) -> list:
    return [dataset.get_data_info(i) for i in range(len(dataset))]


@pytest.fixture
def logged(monkeypatch) -> list:
    """Warnings and infos the dataset module logs."""
    calls = []
    monkeypatch.setattr(miqd_mod, 'print_log', lambda msg, **kwargs: calls.append(msg))
    return calls


@pytest.mark.parametrize('task', ['cls', 'det', 'ins'])
def test_official_split_lengths_and_sources(miqd_root, task):
    tree = miqd_root[task]
    for split in ('train', 'val'):
        dataset = MIQDDataset(miqd_root['root'], task=task, split=split, split_file='official')
        assert len(dataset) == 50 * len(tree[split])
        assert {info['src_id'] for info in infos(dataset)} == set(tree[split])
        assert dataset.metainfo['task'] == task and dataset.metainfo['split'] == split


def test_ins_uses_det_split_files_and_images(miqd_root):
    root = miqd_root['root']
    assert official_split_path(root, 'ins', 'val') == official_split_path(root, 'det', 'val')
    assert official_split_path(root, 'ins', 'val').name == 'miqa_det_val.csv'
    ins = infos(MIQDDataset(root, task='ins', split='val', split_file='official'))
    assert {i['src_id'] for i in ins} == set(miqd_root['det']['val'])
    assert all('/miqa_det/images/' in i['img_path'] and i['ref_path'].endswith('.jpg') for i in ins)
    assert [i['gt_score'] for i in ins] != [
        i['gt_score'] for i in infos(MIQDDataset(root, task='det', split='val', split_file='official'))]


@pytest.mark.parametrize('task', ['cls', 'det', 'ins'])
def test_sample_infos_follow_the_contract(miqd_root, task):
    dataset = MIQDDataset(miqd_root['root'], task=task, split='train', split_file='official')
    labels = miqd_root[task]['labels']
    for info in infos(dataset):
        assert set(info) == CONTRACT_KEYS
        assert os.path.isabs(info['img_path']) and os.path.isfile(info['img_path'])
        assert os.path.isfile(info['ref_path']) and Path(info['ref_path']).stem == info['src_id']
        assert Path(info['img_path']).name == info['filename']
        assert tuple(parse_name(info['filename'])) == (info['src_id'], info['distortion'], info['region'],
                                                       info['fg_level'], info['bg_level'])
        assert (info['consistency'], info['accuracy']) == labels[info['filename']]
        expected_category = miqd_root['categories'][info['src_id']] if task == 'cls' else ''
        assert info['category'] == expected_category
    assert {i['region'] for i in infos(dataset)} == {'UD', 'ROI', 'BG'}


@pytest.mark.parametrize('label_type', ['composite', 'consistency', 'accuracy'])
def test_label_types(miqd_root, label_type):
    dataset = MIQDDataset(miqd_root['root'], task='det', label_type=label_type, split='val',
                          split_file='official')
    for info in infos(dataset):
        c, a = miqd_root['det']['labels'][info['filename']]
        expected = dict(composite=0.5 * c + 0.5 * a, consistency=c, accuracy=a)[label_type]
        assert info['gt_score'] == pytest.approx(expected, abs=1e-12)
    assert dataset.metainfo['label_type'] == label_type


def test_labels_fall_with_level(miqd_root):
    rows = infos(MIQDDataset(miqd_root['root'], task='cls', split='train'))
    mean = {lv: np.mean([r['gt_score'] for r in rows if r['region'] == 'UD' and r['fg_level'] == lv])
            for lv in (1, 5)}
    assert 0.0 <= min(r['gt_score'] for r in rows) and max(r['gt_score'] for r in rows) <= 1.0
    assert mean[1] > mean[5]


def test_own_split_is_deterministic_and_disjoint(miqd_root):
    root = miqd_root['root']
    train, val = (MIQDDataset(root, task='cls', split=s, split_seed=5) for s in ('train', 'val'))
    train_src, val_src = ({i['src_id'] for i in infos(d)} for d in (train, val))
    assert not train_src & val_src and train_src | val_src == set(miqd_root['cls']['src_ids'])
    assert len(val_src) == 1 and len(train) + len(val) == 200
    again = MIQDDataset(root, task='cls', split='val', split_seed=5)
    assert infos(again) == infos(val)


def test_make_split_is_seeded_stratified_and_80_20():
    src_ids = [f'ILSVRC2012_val_{i:08d}' for i in range(1, 101)]
    categories = {s: f'class{i % 20}' for i, s in enumerate(src_ids)}  # 20 classes x 5 sources
    split = make_split(src_ids, 0.2, seed=1, categories=categories)
    assert split == make_split(list(reversed(src_ids)), 0.2, seed=1, categories=categories)
    assert not set(split['train']) & set(split['val'])
    assert len(split['val']) == 20 and len(split['train']) == 80
    assert sorted(categories[s] for s in split['val']) == sorted(f'class{k}' for k in range(20))
    assert make_split(src_ids, 0.2, seed=2, categories=categories)['val'] != split['val']
    unstratified = make_split([f'{i:012d}' for i in range(952)], 0.2, seed=0)
    assert len(unstratified['val']) == round(952 * 0.2)
    with pytest.raises(ValueError, match='val_ratio'):
        make_split(src_ids, 1.0)


def test_split_file_argument_and_errors(miqd_root, tmp_path):
    root = miqd_root['root']
    path = official_split_path(root, 'cls', 'val')
    dataset = MIQDDataset(root, task='cls', split='val', split_file=path)
    assert {i['src_id'] for i in infos(dataset)} == set(miqd_root['cls']['val'])
    parsed = read_split_file(path, 'cls')
    assert parsed.task == 'cls' and set(parsed.categories.values()) <= set(miqd_root['categories'].values())
    det_train = read_split_file(official_split_path(root, 'det', 'train'), 'ins')
    assert det_train.task == 'det' and det_train.src_ids == miqd_root['det']['train']
    with pytest.raises(ValueError, match='det split file'):  # the reference code's cls-reads-det defect
        MIQDDataset(root, task='cls', split='train', split_file=official_split_path(root, 'det', 'train'))
    with pytest.raises(FileNotFoundError, match=r'nowhere\.csv.*MIQD-2\.5M download.*<data_root>/splits/'):
        MIQDDataset(root, task='det', split_file=tmp_path / 'nowhere.csv')
    odd = tmp_path / 'odd.csv'
    odd.write_text('image,score\nILSVRC2012_val_00000001.JPEG,0.5\n')
    with pytest.raises(ValueError, match=r'odd\.csv: unknown split file layout'):
        read_split_file(odd)


def test_official_split_files_missing(make_tree):
    tree = make_tree(tasks=('det',), n_src=1, distortions=('fog',))
    os.remove(official_split_path(tree['root'], 'det', 'train'))
    with pytest.raises(FileNotFoundError, match=r'splits/miqa_det_train\.csv'):
        MIQDDataset(tree['root'], task='det', split_file='official', cache_dir=False)


def test_missing_data_root_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'miqa_cls.*data/README\.md'):
        MIQDDataset(tmp_path / 'nothing', task='cls')
    lazy = MIQDDataset(tmp_path / 'nothing', task='cls', lazy_init=True)  # nothing read yet
    with pytest.raises(FileNotFoundError):
        lazy.full_init()
    for bad in (dict(task='seg'), dict(label_type='mos'), dict(split='test'), dict(on_missing='warn')):
        with pytest.raises(ValueError, match=next(iter(bad))):
            MIQDDataset(tmp_path, **bad)


def test_missing_image_skipped_once_or_raised(make_tree, logged):
    tree = make_tree(tasks=('cls',), n_src=2)
    victim = sorted((tree['cls']['layout'].images / tree['cls']['train'][0]).iterdir())[7]
    victim.unlink()
    kept = MIQDDataset(tree['root'], task='cls', split='train', split_file='official')
    assert len(kept) == 49 and victim.name not in {i['filename'] for i in infos(kept)}
    warnings = [m for m in logged if 'missing' in m]
    assert len(warnings) == 1 and 'skipped 1 label row' in warnings[0] and victim.name in warnings[0]
    with pytest.raises(FileNotFoundError, match=victim.name):
        MIQDDataset(tree['root'], task='cls', split='train', split_file='official', on_missing='error')


def _corrupt(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, count))


@pytest.mark.parametrize('case, pattern', [
    ('non_numeric', r'_mmos\.csv, line 3: weighted_consistency = .abc. is not a finite number'),
    ('nan', r'_mmos\.csv, line 3: weighted_accuracy = .nan. is not a finite number'),
    ('missing_column', r'_mmos\.csv: missing column\(s\) weighted_accuracy'),
    ('short_row', r'_mmos\.csv, line 4: 2 fields'),
    ('bad_name', r'_mmos\.csv, line 2: .*not an official MIQD variant name'),
    ('duplicate', r'_mmos\.csv, line 3: .* repeats line 2'),
])
def test_malformed_cls_csv(make_tree, case, pattern):
    tree = make_tree(tasks=('cls',), n_src=1, distortions=('fog',))
    src_id = tree['cls']['src_ids'][0]
    csv_path = tree['cls']['layout'].labels / f'{src_id}_mmos.csv'
    lines = csv_path.read_text().splitlines()
    cells = lines[2].split(',')
    if case == 'non_numeric':
        lines[2] = ','.join(cells[:1] + ['abc'] + cells[2:])
    elif case == 'nan':
        lines[2] = ','.join(cells[:2] + ['nan'] + cells[3:])
    elif case == 'missing_column':
        lines[0] = lines[0].replace('weighted_accuracy', 'weighted_acc')
    elif case == 'short_row':
        lines[3] = ','.join(lines[3].split(',')[:2])
    elif case == 'bad_name':
        lines[1] = lines[1].replace('_fog_1.png', '_haze_1.png')
    elif case == 'duplicate':
        lines[2] = lines[1]
    csv_path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(ValueError, match=pattern):
        load_index(tree['root'], 'cls', cache_dir=False)


@pytest.mark.parametrize('case', ['renamed', 'extra', 'lonely'])
def test_det_accuracy_consistency_join_errors(make_tree, case):
    tree = make_tree(tasks=('det',), n_src=1, distortions=('fog',))
    src_id = tree['det']['src_ids'][0]
    labels = tree['det']['layout'].labels
    accuracy, consistency = labels / f'{src_id}_accuracy.csv', labels / f'{src_id}_consistency.csv'
    if case == 'renamed':
        _corrupt(consistency, f'{src_id}_fog_3.png', f'{src_id}_fog_4.png')  # fog_4 twice, fog_3 absent
        pattern = rf'{consistency.name}, line \d+: .*fog_4.png. repeats'
    elif case == 'extra':
        _corrupt(accuracy, f'{src_id}_fog_3.png,', f'{src_id}_snow_3.png,')
        pattern = rf'{accuracy.name}, line 4: .*snow_3.png. has no row in .*{consistency.name}'
    else:
        consistency.unlink()
        pattern = rf'{accuracy.name} has no companion label file .*{consistency.name}'
    with pytest.raises(ValueError, match=pattern):
        load_index(tree['root'], 'det', cache_dir=False)


def test_index_cache_is_read_then_invalidated(make_tree, tmp_path, monkeypatch):
    monkeypatch.setenv('MIQA_HOME', str(tmp_path / 'home'))
    tree = make_tree(tasks=('det',), n_src=2, distortions=('fog',))
    first = load_index(tree['root'], 'det')
    cached = list((tmp_path / 'home' / 'cache' / 'index').glob('det-*.npz'))
    assert len(cached) == 1 and not list(Path(tree['root']).rglob('*.npz'))

    real_read_csv = index_mod._read_csv

    def no_csv(*args):
        raise AssertionError('label CSV read although the cache is valid')

    monkeypatch.setattr(index_mod, '_read_csv', no_csv)
    second = load_index(tree['root'], 'det')
    assert second.filename == first.filename and np.array_equal(second.accuracy, first.accuracy)
    assert len(MIQDDataset(tree['root'], task='det', split='train')) == 50

    label = tree['det']['layout'].labels / f'{tree["det"]["src_ids"][0]}_consistency.csv'
    stat = label.stat()
    os.utime(label, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match='cache is valid'):
        load_index(tree['root'], 'det')
    monkeypatch.setattr(index_mod, '_read_csv', real_read_csv)
    load_index(tree['root'], 'det')  # rebuilt and re-cached

    # an image folder change (a deleted image) invalidates it too
    folder = tree['det']['layout'].images / tree['det']['src_ids'][1]
    victim = sorted(folder.iterdir())[0]
    victim.unlink()
    stat = folder.stat()
    os.utime(folder, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    index = load_index(tree['root'], 'det')
    assert not index.exists[index.filename.index(victim.name)] and index.exists.sum() == len(index) - 1


def test_cache_dir_argument_and_disabled(make_tree, tmp_path, monkeypatch):
    monkeypatch.setenv('MIQA_HOME', str(tmp_path / 'home'))
    tree = make_tree(tasks=('cls',), n_src=1, distortions=('fog',))
    load_index(tree['root'], 'cls', cache_dir=tmp_path / 'c')
    assert [p.suffix for p in (tmp_path / 'c').iterdir()] == ['.npz']  # no temporary file left
    MIQDDataset(tree['root'], task='cls', cache_dir=False)
    assert not (tmp_path / 'home').exists()


def test_lazy_init_serialization_and_subsets(miqd_root):
    root = miqd_root['root']
    eager = MIQDDataset(root, task='det', split='train', split_file='official')
    lazy = MIQDDataset(root, task='det', split='train', split_file='official', lazy_init=True)
    assert not lazy._fully_initialized
    lazy.full_init()
    plain = MIQDDataset(root, task='det', split='train', split_file='official', serialize_data=False)
    assert infos(lazy) == infos(eager) == infos(plain)
    subset = eager.get_subset([3, 0])
    assert [i['filename'] for i in infos(subset)] == [eager.get_data_info(k)['filename'] for k in (3, 0)]
    built = DATASETS.build(dict(type='MIQDDataset', data_root=root, task='det', split='train',
                                split_file='official'))
    assert len(built) == len(eager)


def test_dataloader_batch_has_the_contract_shapes(miqd_root):
    pipeline = [dict(type='LoadImage', on_error='flag'), dict(type='Resize', size=64),
                dict(type='RegionView', size=64), dict(type='CenterCrop', size=48),
                dict(type='Normalize', mean=(0.5,) * 3, std=(0.5,) * 3), dict(type='PackMIQAInputs')]
    with DefaultScope.overwrite_default_scope('miqa'):
        dataset = MIQDDataset(miqd_root['root'], task='cls', split='val', split_file='official',
                              pipeline=pipeline, test_mode=True)
    batch = next(iter(DataLoader(dataset, batch_size=4, collate_fn=default_collate)))
    assert batch['inputs'].shape == (4, 3, 48, 48) and batch['inputs'].dtype == torch.float32
    assert batch['region_inputs'].shape == (4, 3, 64, 64)
    samples = batch['data_samples']
    assert set(samples) == {'gt_score', 'sample_idx', 'valid', 'distortion', 'region', 'src_id', 'img_path',
                            'fg_level', 'bg_level', 'region_key', 'region_recipe'}  # the last two: RegionView
    assert samples['sample_idx'].tolist() == [0, 1, 2, 3] and samples['valid'].all()
    assert samples['gt_score'].shape == (4,) and len(samples['img_path']) == 4
    expected = [dataset.get_data_info(i)['gt_score'] for i in range(4)]
    assert samples['gt_score'].tolist() == pytest.approx(expected)


def test_tree_fixture_is_deterministic_and_official(make_tree, miqd_root):
    first, again = (make_tree(tasks=('det',), n_src=2, distortions=('fog',), seed=3) for _ in range(2))
    assert first['det']['labels'] == again['det']['labels']
    assert first['det']['src_ids'] == again['det']['src_ids']
    name = f'{first["det"]["src_ids"][0]}_fog_fg_stronger_fg5_bg2.png'
    images = [tree['det']['layout'].images / first['det']['src_ids'][0] / name for tree in (first, again)]
    assert images[0].read_bytes() == images[1].read_bytes()
    assert all(0.0 <= v <= 1.0 for pair in first['det']['labels'].values() for v in pair)
    coco = json.loads(Path(miqd_root['coco']).read_text())
    assert {img['id'] for img in coco['images']} == {int(s) for s in miqd_root['det']['src_ids']}
    assert {a['category_id'] for a in coco['annotations']} <= {c['id'] for c in coco['categories']}
    assert all(len(a['bbox']) == 4 and a['segmentation'] and a['iscrowd'] == 0 for a in coco['annotations'])


def test_source_without_ground_truth_is_consistency_only(make_tree):
    """A source whose accuracy column is 'nan' throughout (a photo with no fitting class): its
    composite label is its consistency and it is left out of the accuracy labels."""
    tree = make_tree(tasks=('cls',), n_src=4, distortions=('fog',))
    src_id = tree['cls']['train'][0]
    csv_path = tree['cls']['layout'].labels / f'{src_id}_mmos.csv'
    lines = csv_path.read_text().splitlines()
    header = lines[0].split(',')
    col = header.index('weighted_accuracy')
    lines[1:] = [','.join(c if i != col else 'nan' for i, c in enumerate(line.split(',')))
                 for line in lines[1:]]
    csv_path.write_text('\n'.join(lines) + '\n')
    kw = dict(task='cls', split='train', split_file='official', cache_dir=False)
    composite = infos(MIQDDataset(tree['root'], label_type='composite', **kw))
    nan_rows = [i for i in composite if i['src_id'] == src_id]
    other = [i for i in composite if i['src_id'] != src_id]
    assert len(nan_rows) == 25 and other
    assert all(np.isnan(i['accuracy']) and i['gt_score'] == i['consistency'] for i in nan_rows)
    assert all(i['gt_score'] == pytest.approx(0.5 * i['consistency'] + 0.5 * i['accuracy']) for i in other)
    accuracy = infos(MIQDDataset(tree['root'], label_type='accuracy', **kw))
    assert {i['src_id'] for i in accuracy} == {i['src_id'] for i in other} and len(accuracy) == len(other)


@pytest.mark.parametrize('how', ['empty_file', 'unknown_sources'])
def test_an_empty_split_names_the_split_file_and_the_data_root(how, miqd_root, tmp_path):
    """Instead of a ZeroDivisionError inside mmengine's sampler."""
    split = tmp_path / 'my_split.csv'
    split.write_text('Image Name,Category,Quality Score\n' + (
        'ILSVRC2012_val_99999999.JPEG,ski,0.5\n' if how == 'unknown_sources' else ''))
    with pytest.raises(ValueError, match=rf'no samples\. Split file {re.escape(str(split))} lists '
                                         rf'{1 if how == "unknown_sources" else 0} source.*'
                                         rf'data_root {re.escape(str(miqd_root["root"]))}'):
        MIQDDataset(miqd_root['root'], task='cls', split='val', split_file=split, cache_dir=False)


def test_labels_outside_unit_interval_warned_with_count_or_refused(make_tree, logged):
    tree = make_tree(tasks=('cls',), n_src=2, distortions=('fog',))
    src_id = tree['cls']['src_ids'][0]
    labels = tree['cls']['layout'].labels / f'{src_id}_mmos.csv'
    rows = labels.read_text().splitlines()
    for i, value in ((1, '1.7'), (2, '-0.25')):
        cells = rows[i].split(',')
        cells[i] = value  # consistency of row 1, accuracy of row 2
        rows[i] = ','.join(cells)
    labels.write_text('\n'.join(rows) + '\n')
    split = 'train' if src_id in tree['cls']['train'] else 'val'
    dataset = MIQDDataset(tree['root'], task='cls', split=split, split_file='official', cache_dir=False)
    assert max(dataset.get_data_info(i)['consistency'] for i in range(len(dataset))) == 1.7  # kept
    warning = next(m for m in logged if "outside [0, 1]" in m)
    assert f'2 of {len(dataset)} images' in warning and str(labels) in warning
    with pytest.raises(ValueError, match=rf'2 of \d+ images have labels outside \[0, 1\].*{labels.name}'):
        MIQDDataset(tree['root'], task='cls', split=split, split_file='official', cache_dir=False,
                    out_of_range='error')
