"""MIQD-mini end to end: a reduced real build (pip photos, real Lite1 + Lite2 labelling) read by
``MIQDDataset``; build-on-first-use (``ensure_database``); the PSNR/SSIM reference; the full
MIQD-mini build (slow)."""
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from miqa.database import builder as builder_module
from miqa.database.ensure import database_status, ensure_database, load_build_config
from miqa.database.settings import manifest_path
from miqa.database.splitting import write_splits
from miqa.datasets import MIQDDataset
from miqa.datasets.splits import official_split_path, read_split_file

ROOT = Path(__file__).resolve().parents[1]
CI_CONFIG = ROOT / 'configs/build/miqd_mini_ci.py'
# 3 whole pip photos (3 groups -> 2 train / 1 val), 1 distortion: 75 labelled images
REDUCED = dict(sources=dict(src_ids=['sk_chelsea', 'sk_coffee', 'skl_china']),
               distortions=['gaussian_noise'], max_short_side=160)


def _reduced_config(out: Path) -> Config:
    cfg = Config.fromfile(str(CI_CONFIG))
    cfg.merge_from_dict(dict(REDUCED, out_root=str(out)))
    return cfg


@pytest.fixture(scope='module')
def reduced(tmp_path_factory):
    out = tmp_path_factory.mktemp('miqd_mini_reduced') / 'db'
    cfg = _reduced_config(out)
    start = time.perf_counter()
    path = ensure_database(cfg, workers=1, progress=False)
    return dict(cfg=cfg, out=Path(path), seconds=time.perf_counter() - start)


def test_reduced_real_build_loads_with_the_dataset(reduced):
    out = reduced['out']
    manifest = json.loads(manifest_path(str(out), 'cls').read_text())
    assert manifest['status'] == 'finalized' and manifest['num_finished'] == 3
    machines = [m['name'] for m in manifest['labeller']['machines']]
    assert machines == ['efficientnet_lite1', 'efficientnet_lite2']  # not Lite0, the predictors' backbone
    train = read_split_file(official_split_path(out, 'cls', 'train'), 'cls').src_ids
    val = read_split_file(official_split_path(out, 'cls', 'val'), 'cls').src_ids
    assert len(train) == 2 and len(val) == 1 and not set(train) & set(val)
    for split, ids in (('train', train), ('val', val)):
        ds = MIQDDataset(data_root=str(out), task='cls', split=split, split_file='official', cache_dir=False)
        assert len(ds) == 25 * len(ids)
        infos = [ds.get_data_info(i) for i in range(len(ds))]
        assert {d['src_id'] for d in infos} == set(ids)
        assert {d['distortion'] for d in infos} == {'gaussian_noise'}
        scores = np.array([d['gt_score'] for d in infos])
        assert np.all((scores >= 0) & (scores <= 1)) and scores.std() > 0
        assert all(Path(d['img_path']).is_file() and Path(d['ref_path']).is_file() for d in infos)


def test_ensure_database_is_cached_then_resumes(reduced, tmp_path, monkeypatch):
    cfg, out = reduced['cfg'], reduced['out']
    assert database_status(cfg)['cached']
    calls = []
    monkeypatch.setattr('miqa.database.ensure.build_database',
                        lambda *a, **k: calls.append(a) or builder_module.build_database(*a, **k))
    start = time.perf_counter()
    assert ensure_database(cfg, workers=1, progress=False) == str(out)
    assert calls == [] and time.perf_counter() - start < 10
    # a copy with one source's labels gone is unfinished: ensure rebuilds just that source
    copy = tmp_path / 'copy'
    shutil.copytree(out, copy)
    (copy / 'miqa_cls/labels/sk_coffee_mmos.csv').unlink()
    cfg_copy = _reduced_config(copy)
    manifest = json.loads(manifest_path(str(copy), 'cls').read_text())
    manifest['status'] = 'building'  # as a build interrupted before finalize leaves it
    manifest_path(str(copy), 'cls').write_text(json.dumps(manifest))
    status = database_status(cfg_copy)
    assert not status['cached'] and status['reason'] == 'build unfinished'
    ensure_database(cfg_copy, workers=1, progress=False)
    assert len(calls) == 1 and database_status(cfg_copy)['cached']
    for name in ('miqa_cls/labels/sk_coffee_mmos.csv', 'splits/miqa_cls_val.csv'):
        assert (copy / name).read_bytes() == (out / name).read_bytes()


def test_ensure_database_accepts_a_training_configs_database_dict(tmp_path):
    cfg = Config.fromfile(str(ROOT / 'configs/demo/ra_miqa_mini.py'))
    assert cfg.database.out_root == cfg.data_root == cfg.train_dataloader.dataset.data_root
    reduced = dict(REDUCED, variants=None)
    build = load_build_config(dict(cfg.database, out_root=str(tmp_path), cfg_options=reduced))
    assert build.out_root == str(tmp_path) and build.distortions == ['gaussian_noise']
    assert not database_status(build)['cached']
    with pytest.raises(KeyError, match='unknown keys'):
        load_build_config(dict(build_config='configs/build/miqd_mini_demo.py', outroot='x'))


def test_two_groups_still_give_a_val_group(tmp_path):
    records = {s: dict(group=s, category='') for s in ('a', 'b')}
    settings = dict(val_ratio=0.2, split_seed=0)
    splits = write_splits(str(tmp_path), 'cls', records, settings)
    assert len(splits['train']) == 1 and len(splits['val']) == 1
    assert sorted(splits['train'] + splits['val']) == ['a', 'b']


@pytest.mark.slow
def test_full_miqd_mini_build(tmp_path):
    """The full MIQD-mini (all installed sources, 10 distortions, 250 variants each): about
    11-15 minutes on 2 CPU cores."""
    cfg = Config.fromfile(str(ROOT / 'configs/build/miqd_mini.py'))
    cfg.out_root = str(tmp_path / 'miqd_mini')
    out = ensure_database(cfg, workers=2, progress=False)
    manifest = json.loads(manifest_path(out, 'cls').read_text())
    n = manifest['num_finished']
    assert n >= 16 and manifest['splits']['val'] >= 1  # 16 pip sources; 41 with opencv-doc + darknet
    groups = {s['group'] for s in manifest['sources'].values()}
    for split in ('train', 'val'):
        ds = MIQDDataset(data_root=out, task='cls', split=split, split_file='official', cache_dir=False)
        assert len(ds) == 250 * manifest['splits'][split]
    train = read_split_file(official_split_path(out, 'cls', 'train'), 'cls').src_ids
    val = read_split_file(official_split_path(out, 'cls', 'val'), 'cls').src_ids
    group_of = {s: r['group'] for s, r in manifest['sources'].items()}
    assert not {group_of[s] for s in train} & {group_of[s] for s in val}  # crops never straddle
    assert len(groups) >= 2
