"""Per-group correlations, prediction CSVs, plots and ``miqa.analysis.analyze`` (``tools/analyze.py``)
end to end."""
import contextlib
import csv
import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from miqa.analysis.analyze import analyze
from miqa.analysis.breakdown import breakdown, columns, compare, markdown, matrix, to_csv
from miqa.analysis.plots import filtering_plot, heatmap, scatter
from miqa.analysis.predictions import parse_named, read_predictions
from miqa.datasets.naming import VARIANTS, format_name, parse_name
from miqa.evaluation.iqa_metric import GROUPINGS, group_samples

ROOT = Path(__file__).resolve().parents[1]
PNG = b'\x89PNG\r\n\x1a\n'


def records(n_src: int = 2, distortions=('fog', 'snow', 'contrast'), seed: int = 0):
    """Every variant of ``n_src`` sources: label falling with the levels, prediction = label + noise."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(n_src):
        for d in distortions:
            for region, fg, bg in VARIANTS:
                label = 1 - 0.1 * (fg + bg) + rng.normal(0, 0.05)
                out.append(dict(pred_score=label + rng.normal(0, 0.1), gt_score=label, sample_idx=len(out),
                                src_id=f'src{s}', distortion=d, region=region, fg_level=fg, bg_level=bg,
                                img_path=f'/data/miqa_cls/images/src{s}/'
                                         + format_name(f'src{s}', d, region, fg, bg)))
    return out


def test_counts_add_up_and_correlations_equal_scipy():
    recs = records()
    rows = breakdown(recs, by=list(GROUPINGS))
    overall = rows[0]
    assert (overall['breakdown'], overall['group'], overall['n']) == ('overall', 'all', len(recs))
    for by in GROUPINGS:
        assert sum(r['n'] for r in rows if r['breakdown'] == by) == len(recs), by
    fog = [r for r in recs if r['distortion'] == 'fog']
    pred, label = [r['pred_score'] for r in fog], [r['gt_score'] for r in fog]
    row = next(r for r in rows if r['group'] == 'fog')
    assert row['SRCC'] == pytest.approx(stats.spearmanr(pred, label).statistic)
    assert row['KRCC'] == pytest.approx(stats.kendalltau(pred, label).statistic)
    assert row['PLCC'] == pytest.approx(abs(stats.pearsonr(pred, label).statistic))  # linear fit
    raw = breakdown(fog, by=['region'], fit=None)[0]
    assert raw['PLCC'] == pytest.approx(stats.pearsonr(pred, label).statistic)
    slope, intercept = np.polyfit(pred, label, 1)
    expected_rmse = np.sqrt(np.mean((slope * np.asarray(pred) + intercept - label) ** 2))
    assert row['RMSE'] == pytest.approx(expected_rmse)


def test_groups_in_report_order_and_level_is_the_strongest():
    recs = records(1, distortions=('gaussian_noise', 'fog', 'contrast'))
    assert list(group_samples(recs, 'distortion')) == ['contrast', 'fog', 'gaussian_noise']  # spec order
    assert list(group_samples(recs, 'region')) == ['UD', 'ROI-DD', 'BG-DD']
    levels = group_samples(recs, 'level')
    assert list(levels) == ['1', '2', '3', '4', '5']
    # level l: the UD variant at l plus the 2 (l - 1) two-level variants whose stronger level is l
    assert [len(levels[str(lv)]) for lv in range(1, 6)] == [3 * (1 + 2 * (lv - 1)) for lv in range(1, 6)]
    assert all(max(r['fg_level'], r['bg_level']) == 4 for r in levels['4'])
    with pytest.raises(KeyError, match='unknown breakdown'):
        group_samples(recs, 'colour')


def test_small_groups_are_na_not_nan():
    recs = records(1, distortions=('fog',))[:5] + [dict(pred_score=0.1, gt_score=0.2, distortion='snow',
                                                        region='UD', fg_level=1, bg_level=1)]
    recs.append(dict(pred_score=math.nan, gt_score=0.3, distortion='snow'))  # unusable: left out
    recs.append(dict(pred_score=0.5, gt_score=0.3, distortion='snow', valid=False))
    rows = compare(dict(a=recs, b=recs[:3]), by=['distortion', 'region'])
    snow = next(r for r in rows if r['model'] == 'a' and r['group'] == 'snow')
    assert snow['n'] == 1 and all(snow[k] is None for k in ('SRCC', 'PLCC', 'KRCC', 'RMSE'))
    assert next(r for r in rows if r['model'] == 'b')['SRCC'] is not None  # 3 images: computed
    assert not any(isinstance(v, float) and math.isnan(v) for r in rows for v in r.values())
    text = markdown(rows)
    srcc_table = text.split('**SRCC per distortion**')[1].split('**')[0]
    for model in 'ab':  # a: snow has 1 usable image; b: no snow image at all
        assert re.search(rf'\| {model} \| -?\d\.\d{{4}} \| n/a \|', srcc_table), srcc_table
    assert '| n (a) | 5 | 1 |' in text and '| n (b) | 3 | 0 |' in text  # counts differ: one row per model
    table = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert {r['SRCC'] for r in table if r['group'] == 'snow'} == {'n/a'}
    values = matrix(rows, 'SRCC')
    assert values['b'].get(('distortion', 'snow')) is None and ('distortion', 'snow') in columns(rows)


def write_csv(path: Path, recs, drop=()):
    fields = sorted({k for r in recs for k in r} - set(drop))
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        writer.writerows([[r.get(k, '') for k in fields] for r in recs])


def test_read_predictions(tmp_path):
    recs = records(1, distortions=('snow',))
    recs[0]['valid'] = False
    recs[1]['pred_score'] = ''
    write_csv(tmp_path / 'full.csv', recs)
    back = read_predictions(tmp_path / 'full.csv')
    assert back[0]['valid'] is False and 'valid' not in back[2] and math.isnan(back[1]['pred_score'])
    assert back[5] == {k: v for k, v in recs[5].items()}
    assert type(back[5]['fg_level']) is int and type(back[5]['gt_score']) is float
    # naming fields missing from the file are read from the official file name
    write_csv(tmp_path / 'names.csv', recs, drop=('distortion', 'region', 'fg_level', 'bg_level', 'src_id',
                                                  'sample_idx'))
    slim = read_predictions(tmp_path / 'names.csv')
    for a, b in zip(slim, back):
        keys = ('distortion', 'region', 'fg_level', 'bg_level', 'src_id', 'sample_idx')
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    (tmp_path / 'bad.csv').write_text('score,label\n1,2\n')
    with pytest.raises(ValueError, match='bad.csv: missing column'):
        read_predictions(tmp_path / 'bad.csv')
    (tmp_path / 'cell.csv').write_text('pred_score,gt_score,fg_level\n1,2,x\n')
    with pytest.raises(ValueError, match='line 2, column fg_level'):
        read_predictions(tmp_path / 'cell.csv')
    assert parse_named('RA=a/b.csv') == ('RA', 'a/b.csv')
    assert parse_named('x/test_best_predictions.csv') == ('test_best', 'x/test_best_predictions.csv')


def test_plots_are_written(tmp_path):
    recs = records()
    rows = compare(dict(good=recs, noisy=[dict(r, pred_score=r['pred_score'] + 1.0 * (r['region'] == 'BG'))
                                          for r in recs]))
    path = heatmap(matrix(rows, 'SRCC'), columns(rows), str(tmp_path / 'h.png'))
    data = Path(path).read_bytes()
    assert data.startswith(PNG) and len(data) > 5000
    path = scatter(recs, str(tmp_path / 's.png'), title='good', stats=dict(SRCC=0.9, PLCC=None))
    assert Path(path).read_bytes().startswith(PNG)
    fractions = [0, 0.1, 0.2]
    result = dict(fractions=fractions, models=['m'], curves=dict(
        lite0=dict(m=dict(top1=[0.5, 0.6, 0.7]), oracle=dict(top1=[0.5, 0.7, 0.9]),
                   random=dict(top1=dict(mean=[0.5, 0.5, 0.5], p05=[0.5, 0.4, 0.3], p95=[0.5, 0.6, None])))))
    path = filtering_plot(result, 'top1', str(tmp_path / 'f.png'))
    assert Path(path).read_bytes().startswith(PNG) and Path(path).stat().st_size > 5000


def test_analyze_on_the_fixture_tree(miqd_root, tmp_path):
    """Prediction CSVs in tools/test.py's layout from the fixture tree's labels (label + noise)."""
    tree = miqd_root['cls']
    rng = np.random.default_rng(0)
    recs = []
    for name, (consistency, accuracy) in sorted(tree['labels'].items()):
        src = parse_name(name).src_id
        label = 0.5 * consistency + 0.5 * accuracy
        recs.append(dict(img_path=str(tree['layout'].images / src / name), gt_score=label,
                         sample_idx=len(recs), valid=True, pred_score=label + rng.normal(0, 0.05)))
    write_csv(tmp_path / 'a_predictions.csv', recs)
    write_csv(tmp_path / 'b.csv', [dict(r, pred_score=rng.random()) for r in recs])
    out = tmp_path / 'out'
    preds = [str(tmp_path / 'a_predictions.csv'), f'random={tmp_path / "b.csv"}']
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        rows = analyze(preds, out_dir=str(out))
    assert '**SRCC per region**' in printed.getvalue()
    overall = {r['model']: r for r in rows if r['breakdown'] == 'overall'}
    assert set(overall) == {'a', 'random'} and overall['a']['n'] == len(recs)
    assert overall['a']['SRCC'] > 0.8 > abs(overall['random']['SRCC'])
    table = list(csv.DictReader(open(out / 'breakdown.csv')))
    per_distortion = [int(r['n']) for r in table if r['model'] == 'a' and r['breakdown'] == 'distortion']
    assert sum(per_distortion) == len(recs) and len(per_distortion) == 2
    for name in ('heatmap_SRCC.png', 'heatmap_PLCC.png', 'scatter_a.png', 'scatter_random.png'):
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name
    first = (out / 'breakdown.md').read_text()
    assert '| model | n | SRCC | PLCC | KRCC | RMSE |' in first
    with contextlib.redirect_stdout(io.StringIO()):
        analyze(preds, by=['region'], heatmaps=['SRCC'], scatter_plots=False, out_dir=str(out))
    assert (out / 'breakdown.md').read_text() == first  # nothing overwritten
    assert len(list(out.glob('breakdown*.md'))) == 2
