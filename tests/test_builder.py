"""Database builder (spec §2 layout, §3 recipe): layout read back by MIQDDataset, resume after a
crash, shards + finalize == one build, unreadable sources, the parameter guard, the CLI."""
import csv
import functools
import json
import os
from pathlib import Path
from typing import Dict, Optional

import cv2
import numpy as np
import pytest

from miqa.database import cli as build_cli
from miqa.database.builder import build_database
from miqa.database.collectors import collect_sources, select_shard, source_seed
from miqa.database.labelling import check_scores
from miqa.database.machines import Machine
from miqa.database.manifest import BuildConflict, finalize_database
from miqa.database.masks import MASK_SOURCES
from miqa.database.splitting import resplit_database
from miqa.database.tasks import LABEL_KEYS
from miqa.datasets import MIQDDataset, parse_name, read_split_file, variant_names
from miqa.datasets.splits import official_split_path
from miqa.distortions import psnr

DISTORTIONS = ['gaussian_noise', 'defocus_blur']
FAIL: Dict[str, Optional[str]] = dict(src_id=None)  # the test labeller raises on this source


class PSNRLabeller:
    """A real, deterministic labeller of the agreed interface: scores from the PSNR to the source."""

    def __init__(self, task: str = 'cls') -> None:
        self.task = task

    def label(self, source: np.ndarray, variants: Dict[str, np.ndarray],
              annotation) -> Dict[str, Dict[str, float]]:
        out = {}
        for name, image in variants.items():
            if FAIL['src_id'] and name.startswith(FAIL['src_id'] + '_'):
                raise RuntimeError(f'simulated crash on {name}')
            consistency = min(psnr(source, image), 50.0) / 50.0
            accuracy = 0.8 * consistency + (0.2 if annotation else 0.0)
            out[name] = dict(weighted_consistency=consistency, weighted_accuracy=accuracy,
                             mean_consistency=consistency, std_consistency=0.01 * consistency,
                             mean_accuracy=accuracy, std_accuracy=0.02)
        return out

    def describe(self) -> dict:
        return dict(type='PSNRLabeller', task=self.task)


def _write_photo(path: Path, image: np.ndarray) -> None:
    cv2.imwrite(str(path), image[..., ::-1])


@pytest.fixture(scope='module')
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 sources, 3 groups: two crops of the astronaut (one group), the cat, the coffee cup."""
    from skimage import data

    root = tmp_path_factory.mktemp('photos')
    astro = cv2.resize(data.astronaut(), (96, 96), interpolation=cv2.INTER_AREA)
    _write_photo(root / 'astro_a.jpg', astro[:, :72])
    _write_photo(root / 'astro_b.png', astro[16:, 24:])
    _write_photo(root / 'cat.jpg', cv2.resize(data.chelsea(), (90, 68), interpolation=cv2.INTER_AREA))
    _write_photo(root / 'coffee.JPEG', cv2.resize(data.coffee(), (80, 60), interpolation=cv2.INTER_AREA))
    (root / 'readme.txt').write_text('not an image')
    return root


@pytest.fixture(scope='module')
def masks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('masks')
    mask = np.zeros((120, 160), np.uint8)
    mask[20:100, 30:130] = 255
    cv2.imwrite(str(root / 'cat.png'), mask)
    return root


def _cfg(photos: Path, masks: Optional[Path] = None, **overrides) -> dict:
    cfg = dict(task='cls', sources=dict(type='folder', root=str(photos), group_pattern=r'(.*)_[ab]$'),
               masks=str(masks) if masks else None, distortions=DISTORTIONS, max_short_side=48, seed=3,
               labeller=dict(type='PSNRLabeller'), workers=0)
    cfg.update(overrides)
    return cfg


_factory = functools.partial(PSNRLabeller, 'cls')


def _build(cfg: dict, out: Path, **kwargs):
    kwargs.setdefault('labeller_factory', _factory)
    kwargs.setdefault('progress', False)
    return build_database(cfg, str(out), **kwargs)


def _tree(root: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def _assert_same_tree(a: Path, b: Path) -> None:
    ta, tb = _tree(a), _tree(b)
    assert sorted(ta) == sorted(tb)
    differing = [k for k in ta if ta[k] != tb[k]]
    assert not differing, differing[:5]


@pytest.fixture(scope='module')
def reference(photos: Path, masks: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted, unsharded, in-process build."""
    out = tmp_path_factory.mktemp('reference')
    summary = _build(_cfg(photos, masks), out)
    assert summary.built == 4 and summary.finalized and not summary.unreadable
    return out


def _read_csv(path: Path) -> list:
    with open(path, newline='') as file:
        return list(csv.DictReader(file))


def test_layout_and_manifest(reference: Path):
    src_ids = ['astro_a', 'astro_b', 'cat', 'coffee']
    for src_id in src_ids:
        names = [n for d in DISTORTIONS for n in variant_names(src_id, d)]
        assert sorted(os.listdir(reference / 'miqa_cls' / 'images' / src_id)) == sorted(names)
        src = cv2.imread(str(reference / 'miqa_cls' / 'src_images' / f'{src_id}.JPEG'))
        assert min(src.shape[:2]) == 48
        rows = _read_csv(reference / 'miqa_cls' / 'labels' / f'{src_id}_mmos.csv')
        assert list(rows[0]) == ['dist_images', *LABEL_KEYS]
        assert [r['dist_images'] for r in rows] == [f'{src_id}/{n}' for n in names]
    manifest = json.loads((reference / 'manifest_cls.json').read_text())
    assert manifest['finished'] == src_ids and manifest['unreadable'] == []
    assert manifest['labeller'] == dict(type='PSNRLabeller', task='cls')
    assert manifest['params']['distortions'] == DISTORTIONS and manifest['params']['seed'] == 3
    assert set(manifest['distortion_tables']) == set(DISTORTIONS)
    assert all(len(t['candidates']) == 12 for t in manifest['distortion_tables'].values())
    assert manifest['sources']['cat']['mask_source'] == 'file'
    assert all(s['mask_source'] in MASK_SOURCES for s in manifest['sources'].values())
    assert manifest['sources']['cat']['seed'] == source_seed(3, 'cat')
    assert manifest['versions']['numpy'] == np.__version__
    assert manifest['sources']['astro_a']['group'] == manifest['sources']['astro_b']['group'] == 'astro'


def test_split_by_group(reference: Path):
    train = read_split_file(official_split_path(reference, 'cls', 'train'), 'cls').src_ids
    val = read_split_file(official_split_path(reference, 'cls', 'val'), 'cls').src_ids
    assert sorted(train + val) == ['astro_a', 'astro_b', 'cat', 'coffee'] and not set(train) & set(val)
    assert ('astro_a' in val) == ('astro_b' in val)  # crops of one photo never straddle
    assert len({s.split('_')[0] for s in val}) == 1  # 3 groups, 20 %: one group in val
    header = (official_split_path(reference, 'cls', 'train')).read_text().splitlines()[0]
    assert header == 'Image Name,Category,Quality Score'


def test_resplit_keeps_groups_and_seed0_is_the_official_split(reference: Path, tmp_path: Path):
    official = {s: read_split_file(official_split_path(reference, 'cls', s), 'cls').src_ids
                for s in ('train', 'val')}
    vals = []
    for seed in range(4):
        dest = tmp_path / f'seed{seed}'
        splits = resplit_database(str(reference), 'cls', seed, dest=str(dest))
        train = read_split_file(dest / 'miqa_cls_train.csv', 'cls').src_ids
        val = read_split_file(dest / 'miqa_cls_val.csv', 'cls').src_ids
        assert (train, val) == (splits['train'], splits['val'])
        assert sorted(train + val) == ['astro_a', 'astro_b', 'cat', 'coffee'] and not set(train) & set(val)
        assert ('astro_a' in val) == ('astro_b' in val)
        vals.append(tuple(val))
    assert list(vals[0]) == official['val'] and official['train']  # the build's split_seed is 0
    assert len(set(vals)) > 1  # other seeds give other splits
    with pytest.raises(FileNotFoundError, match='build the database first'):
        resplit_database(str(tmp_path / 'nothing'), 'cls', 1)


def test_resplit_within_train_never_uses_the_official_val(reference: Path, tmp_path: Path):
    import shutil

    from miqa.analysis.benchmark import split_dir

    root = tmp_path / 'db'
    shutil.copytree(reference, root)
    official = {s: read_split_file(official_split_path(root, 'cls', s), 'cls').src_ids
                for s in ('train', 'val')}
    for seed in (1, 2):
        splits = resplit_database(str(root), 'cls', seed, within='train')
        dest = Path(split_dir(str(root), f'train-seed{seed}'))
        assert dest == root / 'splits' / f'train-seed{seed}'
        train = read_split_file(dest / 'miqa_cls_train.csv', 'cls').src_ids
        val = read_split_file(dest / 'miqa_cls_val.csv', 'cls').src_ids
        assert (train, val) == (splits['train'], splits['val'])
        assert sorted(train + val) == sorted(official['train'])  # exactly the official train sources
        assert train and val and not set(train) & set(val)
        assert ('astro_a' in val) == ('astro_b' in val) or 'astro_a' not in official['train']
    assert split_dir(str(root), '3') == str(root / 'splits' / 'seed3')
    with pytest.raises(ValueError, match='within'):
        resplit_database(str(root), 'cls', 1, within='test')


@pytest.mark.parametrize('split_file', ['official', None])
def test_dataset_reads_the_build(reference: Path, split_file):
    infos = []
    for split in ('train', 'val'):
        ds = MIQDDataset(data_root=str(reference), task='cls', split=split, split_file=split_file,
                         cache_dir=False, label_type='consistency')
        infos += [ds.get_data_info(i) for i in range(len(ds))]
    assert len(infos) == 4 * 50
    labels = {}
    for path in (reference / 'miqa_cls' / 'labels').glob('*_mmos.csv'):
        for row in _read_csv(path):
            labels[row['dist_images']] = (float(row['weighted_consistency']), float(row['weighted_accuracy']))
    for info in infos:
        parsed = parse_name(info['filename'])
        assert (info['src_id'], info['distortion'], info['region'], info['fg_level'], info['bg_level']) == \
            tuple(parsed)
        assert Path(info['img_path']).is_file() and Path(info['ref_path']).is_file()
        assert (info['consistency'], info['accuracy']) == labels[f'{info["src_id"]}/{info["filename"]}']
        assert info['gt_score'] == info['consistency']
    # labels follow the severity: uniform level 1 beats level 5 (PSNR labeller)
    by_name = {i['filename']: i['consistency'] for i in infos}
    assert by_name['cat_gaussian_noise_1.png'] > by_name['cat_gaussian_noise_5.png']


def test_resume_after_crash_is_byte_identical(photos: Path, masks: Path, reference: Path, tmp_path: Path):
    out = tmp_path / 'crashed'
    FAIL['src_id'] = 'astro_b'  # the 2nd source in id order
    try:
        with pytest.raises(RuntimeError, match='simulated crash'):
            _build(_cfg(photos, masks), out)
    finally:
        FAIL['src_id'] = None
    labels = out / 'miqa_cls' / 'labels'
    assert sorted(os.listdir(labels)) == ['astro_a_mmos.csv']  # only the first finished
    partial = out / 'miqa_cls' / 'images' / 'astro_b'
    assert len(os.listdir(partial)) == 50  # images written, no labels: unfinished
    (partial / 'astro_b_gaussian_noise_3.png').write_bytes(b'torn')  # a torn file
    (partial / '.astro_b_defocus_blur_1.png.123.tmp').write_bytes(b'x')  # a dead temp file
    summary = _build(_cfg(photos, masks), out)
    assert (summary.skipped_finished, summary.built) == (1, 3)
    _assert_same_tree(reference, out)
    again = _build(_cfg(photos, masks), out)  # nothing left to do
    assert (again.skipped_finished, again.built) == (4, 0)
    _assert_same_tree(reference, out)


def test_shards_then_finalize_equal_one_build(photos: Path, masks: Path, reference: Path, tmp_path: Path):
    ids = [s['src_id'] for s in collect_sources(_cfg(photos)['sources'])]
    shards = [select_shard(ids, 2, i) for i in range(2)]
    assert sorted(shards[0] + shards[1]) == ids and not set(shards[0]) & set(shards[1])
    out = tmp_path / 'sharded'
    cfg = _cfg(photos, masks)
    # shard 0 in a 2-process pool labelling in the main process, shard 1 labelling in the workers
    first = _build(dict(cfg, label_in='main'), out, num_shards=2, shard_index=0, workers=2)
    assert not first.finalized and not (out / 'splits').exists()
    second = _build(cfg, out, num_shards=2, shard_index=1, workers=2)
    assert first.built + second.built == 4
    finalize_database(cfg, str(out))
    _assert_same_tree(reference, out)


def test_unreadable_sources_are_skipped_and_listed(photos: Path, tmp_path: Path):
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'good.jpg').write_bytes((photos / 'cat.jpg').read_bytes())
    (src / 'broken.jpg').write_bytes(b'\xff\xd8 not really a jpeg')
    (src / 'empty.png').write_bytes(b'')
    out = tmp_path / 'out'
    summary = _build(_cfg(src), out)
    assert summary.built == 1
    assert sorted(u['src_id'] for u in summary.unreadable) == ['broken', 'empty']
    manifest = json.loads((out / 'manifest_cls.json').read_text())
    assert manifest['finished'] == ['good']
    assert [u['src_id'] for u in manifest['unreadable']] == ['broken', 'empty']
    assert sorted(os.listdir(out / 'miqa_cls' / 'images')) == ['good']


def test_parameter_guard_and_force(photos: Path, tmp_path: Path):
    out = tmp_path / 'out'
    cfg = _cfg(photos, distortions=['contrast'])
    _build(cfg, out, limit=2)
    with pytest.raises(BuildConflict, match='seed'):
        _build(dict(cfg, seed=4), out, limit=2)
    assert json.loads((out / 'manifest_cls.json').read_text())['params']['seed'] == 3
    before = (out / 'miqa_cls' / 'images' / 'astro_a' / 'astro_a_contrast_5.png').read_bytes()
    summary = _build(dict(cfg, seed=4, distortions=['pixelate']), out, limit=1, force=True)
    assert summary.built == 1
    manifest = json.loads((out / 'manifest_cls.json').read_text())
    assert manifest['params']['seed'] == 4 and manifest['finished'] == ['astro_a']
    images = out / 'miqa_cls' / 'images'
    assert sorted(os.listdir(images / 'astro_a')) == sorted(variant_names('astro_a', 'pixelate'))
    assert not (out / 'miqa_cls' / 'images' / 'astro_b').exists()  # old images do not mix in
    assert not (out / 'miqa_cls' / 'images' / 'astro_a' / 'astro_a_contrast_5.png').exists()
    assert before  # the old build had them
    # more sources later with the same parameters: resumed, no --force needed
    assert _build(dict(cfg, seed=4, distortions=['pixelate']), out, limit=2).built == 1


def test_det_layout_with_coco_annotations(photos: Path, tmp_path: Path):
    src = tmp_path / 'coco'
    src.mkdir()
    image = cv2.imread(str(photos / 'cat.jpg'))
    cv2.imwrite(str(src / '000000000139.jpg'), cv2.resize(image, (96, 72)))
    coco = dict(images=[dict(id=139, file_name='000000000139.jpg', height=72, width=96)],
                annotations=[dict(id=1, image_id=139, category_id=18, bbox=[24.0, 12.0, 48.0, 36.0],
                                  area=1728.0, iscrowd=0, segmentation=[[24, 12, 72, 12, 72, 48, 24, 48]])],
                categories=[dict(id=18, name='dog', supercategory='animal')])
    (tmp_path / 'instances.json').write_text(json.dumps(coco))
    out = tmp_path / 'out'
    cfg = _cfg(src, task='det', annotations=str(tmp_path / 'instances.json'), distortions=['contrast'])
    assert _build(cfg, out, labeller_factory=functools.partial(PSNRLabeller, 'det')).built == 1
    labels = out / 'miqa_det' / 'labels'
    assert sorted(os.listdir(labels)) == ['000000000139_accuracy.csv', '000000000139_consistency.csv']
    assert list(_read_csv(labels / '000000000139_accuracy.csv')[0]) == ['filename', 'AP_weighted_avg']
    subset = json.loads((out / 'miqa_det' / 'additional_info' / 'instances_val2017.json').read_text())
    assert subset['images'] == [dict(id=139, file_name='000000000139.jpg', height=48, width=64)]
    assert subset['annotations'][0]['bbox'] == pytest.approx([16.0, 8.0, 32.0, 24.0])
    assert subset['annotations'][0]['area'] == pytest.approx(1728.0 * 4 / 9)
    ds = MIQDDataset(data_root=str(out), task='det', split='train', split_file='official', cache_dir=False)
    assert len(ds) == 25 and ds.get_data_info(0)['accuracy'] >= 0.2  # annotation was passed on
    # ins shares det's images: other image parameters are refused even with --force
    with pytest.raises(BuildConflict, match='share'):
        _build(dict(cfg, task='ins', seed=9), out, force=True)


def test_cli(photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    tool = build_cli  # tools/build_miqd.py calls its main
    config = tmp_path / 'build_cfg.py'
    cfg = _cfg(photos, distortions=['contrast'])
    config.write_text('\n'.join(f'{k} = {v!r}' for k, v in cfg.items()) + '\n')
    monkeypatch.setattr('miqa.database.builder.default_labeller_factory', lambda cfg: _factory)
    out = tmp_path / 'out'
    assert tool.main([str(config), '--out', str(out), '--limit', '1', '--no-progress']) == 0
    assert json.loads((out / 'manifest_cls.json').read_text())['finished'] == ['astro_a']
    assert tool.main([str(config), '--out', str(out), '--no-progress', '--cfg-options', 'seed=5']) == 2
    assert tool.main([str(config), '--out', str(out), '--num-shards', '2', '--shard-index', '1',
                      '--no-progress']) == 0
    assert tool.main([str(config), '--out', str(out), '--finalize']) == 0


class SpreadMachine(Machine):
    """A deterministic 3-class 'classifier' whose output moves with the degradation: softmax of the
    grey-level spread, the mean and a constant (noise widens the spread, blur narrows it)."""

    task = 'cls'

    def predict(self, images):
        return np.stack([_spread_probs(np.asarray(im)) for im in images])


def _spread_probs(rgb: np.ndarray) -> np.ndarray:
    grey = rgb.astype(np.float64).mean(axis=2)
    logits = np.array([grey.std() / 255 * 30, grey.mean() / 255 * 3, 1.0])
    e = np.exp(logits - logits.max())
    return e / e.sum()


def test_default_consistency_is_probability_overlap(photos: Path, tmp_path: Path):
    """A built label equals the hand-computed sum_k min(p_k, q_k) (p: the machine on the stored pristine
    JPEG, q: on the variant PNG), so the default formula is pinned, not compared with itself."""
    from miqa.database.labels import MachineLabeller

    factory = functools.partial(MachineLabeller, 'cls', [SpreadMachine('spread', device='cpu')],
                                missing_annotation='nan')  # no consistency= given: the default
    out = tmp_path / 'out'
    _build(_cfg(photos), out, labeller_factory=factory, limit=1)
    (labels,) = (out / 'miqa_cls' / 'labels').glob('*_mmos.csv')
    src_id = labels.name[:-len('_mmos.csv')]
    source = cv2.imread(str(out / 'miqa_cls' / 'src_images' / f'{src_id}.JPEG'))[:, :, ::-1]
    p = _spread_probs(source)
    rows = _read_csv(labels)
    assert len(rows) == 50
    hand = []
    for row in rows:
        variant = cv2.imread(str(out / 'miqa_cls' / 'images' / row['dist_images']))[:, :, ::-1]
        hand.append(np.minimum(p, _spread_probs(variant)).sum())
        assert float(row['weighted_consistency']) == pytest.approx(hand[-1], abs=1e-6), row['dist_images']
    assert min(hand) < 0.95  # the variants do move the machine (top-1 agreement would say 1.0 here)


def test_check_scores():
    row = dict(zip(LABEL_KEYS, (0.5, float('nan'), 0.5, 0.1, float('nan'), float('nan'))))
    checked = check_scores(['a.png'], {'a.png': row, 'extra.png': row})
    assert list(checked) == ['a.png'] and np.isnan(checked['a.png']['weighted_accuracy'])  # no annotation
    assert check_scores(['a.png'], {'a.png': dict(row, weighted_consistency=1 + 1e-9)})['a.png'][
        'weighted_consistency'] == 1.0
    for bad in (dict(row, weighted_consistency=float('nan')), dict(row, std_consistency=1.5)):
        with pytest.raises(ValueError, match='outside'):
            check_scores(['a.png'], {'a.png': bad})
    with pytest.raises(ValueError, match='no scores'):
        check_scores(['a.png', 'b.png'], {'a.png': row})
    with pytest.raises(ValueError, match='lack'):
        check_scores(['a.png'], {'a.png': {'weighted_consistency': 1.0}})
