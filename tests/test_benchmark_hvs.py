"""miqa.hvs.benchmark (``tools/benchmark_hvs.py``) and miqa.analysis.report (``tools/report.py``) on
the fixture tree: rows, cache reuse, resume."""
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from miqa.analysis.report import combine, read_rows
from miqa.hvs import build_scorer
from miqa.hvs.benchmark import ScoreCache, benchmark_hvs, evaluate, load_split, score_split
from miqa.hvs.classic import PSNR
from miqa.utils.image import read_rgb

ROOT = Path(__file__).resolve().parents[1]


def tree_config(tmp_path: Path, data_root: str) -> str:
    path = tmp_path / 'cfg.py'
    path.write_text(f"_base_ = ['{ROOT / 'configs' / 'ra_miqa_cls.py'}']\ndata_root = '{data_root}'\n")
    return str(path)


@pytest.fixture
def tree(make_tree):
    return make_tree(tasks=('cls',), n_src=2)


def _infos(tree):
    cfg = tree_config(Path(tree['root']), str(tree['root']))
    return load_split(cfg)


def test_rows_breakdown_and_paper(tree, tmp_path, capsys):
    cfg = tree_config(tmp_path, str(tree['root']))
    out = tmp_path / 'out'
    summary = benchmark_hvs(cfg, ['PSNR', 'SSIM', 'LPIPS'], out_dir=str(out), workers=0, progress=False,
                            paper=True)
    printed = capsys.readouterr().out
    rows = summary['rows']
    assert rows['PSNR']['status'] == rows['SSIM']['status'] == 'ok'
    # no LPIPS weights in the test MIQA_HOME: reported as skipped, with the file to obtain, not a number
    assert rows['LPIPS']['status'] == 'skipped' and 'http' in rows['LPIPS']['reason']
    assert '| LPIPS | skipped |' in printed and '(paper, MIQD-2.5M)' in printed
    n = summary['num_images']
    assert rows['PSNR']['metrics']['num_samples'] == n > 0

    # the same numbers as an independent computation: skimage PSNR per image, scipy SRCC
    from skimage.metrics import peak_signal_noise_ratio
    with open(out / 'PSNR_predictions.csv') as f:
        preds = list(csv.DictReader(f))
    assert len(preds) == n
    split = _infos(tree)
    for row, info in zip(preds[:5], split['infos'][:5]):
        assert row['img_path'] == info['img_path']
        ref = peak_signal_noise_ratio(read_rgb(info['ref_path']), read_rgb(info['img_path']), data_range=255)
        assert float(row['raw_score']) == pytest.approx(min(ref, 100.0), abs=1e-3)
    srcc = stats.spearmanr([float(r['pred_score']) for r in preds], [float(r['gt_score']) for r in preds])[0]
    assert rows['PSNR']['SRCC'] == pytest.approx(srcc, abs=1e-9)
    assert 'distortion/gaussian_noise/SRCC' in rows['PSNR']['metrics']
    for name in ('hvs_results.md', 'hvs_results.csv', 'SSIM_predictions.csv'):
        assert (out / name).stat().st_size > 0


def test_rerun_reuses_cache(tree, tmp_path):
    cfg = tree_config(tmp_path, str(tree['root']))
    out = tmp_path / 'out'
    args = dict(out_dir=str(out), workers=0, progress=False, cache_dir=str(tmp_path / 'cache'))
    first = benchmark_hvs(cfg, ['PSNR'], **args)
    cache = tmp_path / 'cache' / 'PSNR.csv'
    lines = cache.read_text().splitlines()
    # plant a value: a rerun that reads the cache reports it, one that recomputed would not
    key = lines[0].rsplit(',', 1)[0]
    cache.write_text('\n'.join([f'{key},12.5'] + lines[1:]) + '\n')
    benchmark_hvs(cfg, ['PSNR'], **args)
    with open(out / 'PSNR_predictions.csv') as f:
        raw = [float(r['raw_score']) for r in csv.DictReader(f)]
    assert raw[0] == 12.5
    assert len(cache.read_text().splitlines()) == first['num_images']  # nothing scored again


class _Interrupting(PSNR):
    """PSNR that is interrupted (like Ctrl-C) at its third batch."""

    calls = 0

    def forward(self, distorted, reference=None):
        type(self).calls += 1
        if type(self).calls == 3:
            raise KeyboardInterrupt
        return super().forward(distorted, reference)


def test_interrupted_run_resumes(tree, tmp_path):
    infos = _infos(tree)['infos']
    cache_dir = str(tmp_path / 'cache')
    with pytest.raises(KeyboardInterrupt):
        score_split({'PSNR': _Interrupting()}, infos, cache_dir, batch_size=8, num_workers=0, progress=False)
    done = len(ScoreCache(f'{cache_dir}/PSNR.csv'))
    assert done == 16  # two batches of 8 were kept
    full = score_split({'PSNR': build_scorer('PSNR')}, infos, cache_dir, batch_size=8, num_workers=0,
                       progress=False)['PSNR']
    lines = Path(cache_dir, 'PSNR.csv').read_text().splitlines()
    assert len(lines) == len(infos)  # the rest was scored once, the first 16 not again
    fresh = score_split({'PSNR': build_scorer('PSNR')}, infos, str(tmp_path / 'fresh'), batch_size=5,
                        num_workers=0, progress=False)['PSNR']
    np.testing.assert_allclose(full, fresh, rtol=1e-6)


def test_torn_cache_line_and_unreadable_image(tree, tmp_path):
    infos = _infos(tree)['infos']
    cache_dir = tmp_path / 'cache'
    score_split({'SSIM': build_scorer('SSIM')}, infos[:4], str(cache_dir), num_workers=0, progress=False)
    with open(cache_dir / 'SSIM.csv', 'a') as f:
        f.write('half-a-key|12')  # an interrupted write
    Path(infos[5]['img_path']).write_bytes(b'not an image')
    scores = score_split({'SSIM': build_scorer('SSIM')}, infos[:8], str(cache_dir), num_workers=0,
                         progress=False)['SSIM']
    assert math.isnan(scores[5]) and np.isfinite(np.delete(scores, 5)).all()
    assert len(ScoreCache(str(cache_dir / 'SSIM.csv'))) == 7


def test_distance_sign_in_correlation(tree, tmp_path):
    """A lower-is-better scorer that tracks the label gets a positive SRCC after quality()."""
    infos = _infos(tree)['infos']
    labels = np.array([i['gt_score'] for i in infos])

    class Distance(PSNR):
        lower_is_better = True

    result = evaluate(-labels, Distance(), infos, 'linear')
    assert result['metrics']['SRCC'] == pytest.approx(1.0)


def test_report_combines_hvs_and_model_rows(tree, tmp_path):
    cfg = tree_config(tmp_path, str(tree['root']))
    out = tmp_path / 'out'
    benchmark_hvs(cfg, ['PSNR', 'LPIPS'], out_dir=str(out), workers=0, progress=False)
    model = tmp_path / 'test_model.json'
    model.write_text(json.dumps(dict(method='RA-MIQA', task='cls', label_type='composite',
                                     metrics=dict(SRCC=0.5, PLCC=0.6, KRCC=0.4, RMSE=0.2))))
    table = combine([read_rows(str(out / 'hvs_results.json')), read_rows(str(model))], paper=True)
    lines = table.splitlines()
    psnr = next(i for i, line in enumerate(lines) if line.startswith('| PSNR |'))
    ra = next(i for i, line in enumerate(lines) if line.startswith('| RA-MIQA |'))
    assert psnr < ra and '0.5000 (0.7003)' in lines[ra]  # the paper's cls composite SRCC in brackets
    assert '| LPIPS | skipped |' in table
    other = tmp_path / 'det.json'
    other.write_text(json.dumps(dict(method='X', task='det', label_type='composite', metrics={})))
    with pytest.raises(ValueError, match='mix tasks'):
        combine([read_rows(str(out / 'hvs_results.json')), read_rows(str(other))])


def test_unknown_metric_did_you_mean(tree, tmp_path):
    cfg = tree_config(tmp_path, str(tree['root']))
    with pytest.raises(KeyError, match='PSNR'):
        benchmark_hvs(cfg, ['PSRN'], out_dir=str(tmp_path / 'o'))


def test_reference_resized_to_distorted(tmp_path):
    """A reference of another size is resized to the distorted image (INTER_AREA), not cropped."""
    import cv2

    from miqa.hvs.benchmark import PairDataset
    img = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'd.png'), img)
    cv2.imwrite(str(tmp_path / 'r.png'), cv2.resize(img, (120, 80)))
    _, dist, ref, err = PairDataset([(str(tmp_path / 'd.png'), str(tmp_path / 'r.png'))])[0]
    assert err is None and dist.shape == ref.shape == torch.Size([3, 40, 60])


def test_default_cache_is_per_database_under_miqa_home(miqa_home, tmp_path):
    from miqa.hvs.benchmark import default_cache_dir

    a, b = default_cache_dir(str(tmp_path / 'db')), default_cache_dir(str(tmp_path / 'other' / 'db'))
    assert a.startswith(str(miqa_home)) and a != b and default_cache_dir(str(tmp_path / 'db') + '/') == a
