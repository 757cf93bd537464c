"""The main job's reference table (HVSReferenceHook) after a real tiny training run."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from skimage.metrics import peak_signal_noise_ratio
from test_tools import ROOT, run, tiny_config

from miqa.datasets import MIQDDataset
from miqa.utils.image import read_rgb


@pytest.fixture(scope='module')
def table_run(tmp_path_factory):
    from miqa.testing import make_miqd_tree

    tmp = tmp_path_factory.mktemp('reference')
    tree = make_miqd_tree(tmp / 'miqd', tasks=('cls',), n_src=15, distortions=('gaussian_noise',),
                          image_size=(48, 64))
    cfg = tiny_config(tmp / 'tiny.py', tree['root'], train_n=16, val_n=75)
    with open(cfg, 'a') as f:
        f.write("val_dataloader = dict(dataset=dict(indices=None))\n"
                "custom_hooks = [dict(type='HVSReferenceHook', metrics=('PSNR', 'SSIM'), n_resamples=300)]\n")
    work = tmp / 'work'
    out = run([str(ROOT / 'tools/train.py'), str(cfg), '--work-dir', str(work)], cwd=tmp)
    return tmp, cfg, work, tree, out


def test_table_rows_intervals_and_differences(table_run):
    _, _, work, tree, out = table_run
    summary = json.loads((work / 'reference_table.json').read_text())
    rows = summary['rows']
    model = next(name for name in rows if name not in ('PSNR', 'SSIM'))
    assert set(rows) == {model, 'PSNR', 'SSIM'} and summary['num_photos'] == 3
    for row in rows.values():
        for iv in row.values():
            assert iv['low'] <= iv['value'] <= iv['high'] or np.isclose(iv['low'], iv['high'])
    assert f'{model} - max(PSNR, SSIM)' in summary['differences']
    assert 'SRCC difference' in out and (work / 'reference_table.md').is_file()
    # a readable log: no per-parameter optimizer lines, no deprecation notices of mmengine's own making
    for noise in ('paramwise_options --', 'requires_grad=False', '"FileClient" will be deprecated',
                  'HardDiskBackend', 'prefix is not set'):
        assert noise not in out, noise
    # 3 val photos: the table says loudly that it is not evidence (default min_photos=60)
    assert 'ONLY 3 VAL PHOTOS (fewer than 60)' in out
    assert 'not evidence' in (work / 'reference_table.md').read_text()

    # PSNR's SRCC against an independent computation (scikit-image) on the same val images
    ds = MIQDDataset(tree['root'], task='cls', split='val', split_file='official', cache_dir=False)
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    psnr = [peak_signal_noise_ratio(read_rgb(i['ref_path']), read_rgb(i['img_path'])) for i in infos]
    labels = [i['gt_score'] for i in infos]
    assert rows['PSNR']['SRCC']['value'] == pytest.approx(stats.spearmanr(psnr, labels).statistic, abs=1e-9)
    # the model row holds the predictions of the best validation: the best SRCC logged
    logged = [float(m) for m in re.findall(r'SRCC: (-?[0-9.]+)', out)]
    assert len(logged) == 4 and rows[model]['SRCC']['value'] == pytest.approx(max(logged), abs=1e-4)
    predictions = (work / 'reference_table_predictions.csv').read_text().splitlines()
    assert len(predictions) == 1 + len(infos) and predictions[0].startswith('img_path,src_id,photo,gt_score')


@pytest.mark.slow
def test_rerun_reuses_the_reference_cache(table_run):
    from miqa.hvs.benchmark import default_cache_dir

    tmp, cfg, work, tree, _ = table_run
    cache = Path(default_cache_dir(tree['root'])) / 'PSNR.csv'
    lines = cache.read_text().count('\n')
    run([str(ROOT / 'tools/train.py'), str(cfg), '--work-dir', str(work)], cwd=tmp)
    assert cache.read_text().count('\n') == lines
