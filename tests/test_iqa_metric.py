"""miqa.evaluation.IQAMetric: whole-set metrics, de-duplication, invalid samples, breakdown."""
import math
import random

import numpy as np
import pytest
import torch

import miqa.evaluation  # noqa: F401  (registers IQAMetric)
from miqa.evaluation import IQAMetric, breakdown_table, correlations
from miqa.registry import METRICS

DISTORTIONS = ('contrast', 'fog', 'gaussian_noise')
REGIONS = ('UD', 'ROI', 'BG')


def _samples(n: int = 90, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0, 1, size=n)
    pred = gt + rng.normal(scale=0.3, size=n)
    return [dict(pred_score=float(pred[i]), gt_score=float(gt[i]), sample_idx=i, valid=True,
                 distortion=DISTORTIONS[i % 3], region=REGIONS[(i // 3) % 3], fg_level=1 + i % 5,
                 bg_level=1 + i % 5, src_id=f'{i // 30:04d}', img_path=f'/data/{i}.png') for i in range(n)]


def _feed(metric: IQAMetric, samples: list, batch_size: int = 8) -> None:
    for start in range(0, len(samples), batch_size):
        metric.process(None, samples[start:start + batch_size])


def _build(**kwargs) -> IQAMetric:
    return METRICS.build(dict(type='IQAMetric', **kwargs))


def test_built_from_registry():
    metric = _build(fit='logistic4', breakdown=True)
    assert isinstance(metric, IQAMetric) and metric.fit == 'logistic4' and metric.breakdown
    with pytest.raises(ValueError, match='unknown fit'):
        _build(fit='cubic')


def test_shuffled_batches_with_duplicate_equal_functional():
    samples = _samples()
    fed = samples + [dict(samples[5])]  # sampler padding repeats a sample
    random.Random(0).shuffle(fed)
    metric = _build()
    _feed(metric, fed)
    out = metric.compute_metrics(metric.results)
    expected = correlations([s['pred_score'] for s in samples], [s['gt_score'] for s in samples], 'linear')
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, abs=1e-12), key
    assert out['num_samples'] == len(samples) and out['num_invalid'] == 0
    assert [p['sample_idx'] for p in metric.last_predictions] == list(range(len(samples)))


def test_evaluate_through_mmengine_gather_truncates_padding():
    samples = _samples(40)
    metric = _build(fit='logistic5')
    _feed(metric, samples + samples[:4], batch_size=11)  # padded to 44, as a sampler would
    out = metric.evaluate(len(samples))  # collect_results (non-distributed) cuts to size
    expected = correlations([s['pred_score'] for s in samples], [s['gt_score'] for s in samples], 'logistic5')
    assert out['SRCC'] == pytest.approx(expected['SRCC'])
    assert out['PLCC'] == pytest.approx(expected['PLCC'])
    assert out['num_samples'] == 40 and metric.results == []


def test_prefix_applies_to_keys():
    metric = _build(prefix='val')
    _feed(metric, _samples(10))
    assert set(metric.evaluate(10)) >= {'val/SRCC', 'val/num_samples'}


def test_invalid_samples_excluded_and_counted():
    samples = _samples(30)
    samples[2]['valid'] = False
    samples[7]['pred_score'] = float('nan')
    samples[9]['gt_score'] = float('inf')
    metric = _build(breakdown=True)
    _feed(metric, samples)
    out = metric.compute_metrics(metric.results)
    kept = [s for i, s in enumerate(samples) if i not in (2, 7, 9)]
    expected = correlations([s['pred_score'] for s in kept], [s['gt_score'] for s in kept])
    assert out['num_invalid'] == 3 and out['num_samples'] == 27
    assert out['SRCC'] == pytest.approx(expected['SRCC'])
    assert len(metric.last_predictions) == 30  # the dump keeps every sample
    assert sum(out[f'distortion/{d}/n'] for d in DISTORTIONS) == 27


def test_tensor_fields_become_plain_python():
    metric = _build()
    metric.process(None, [dict(pred_score=torch.tensor(0.5), gt_score=torch.tensor([0.25]),
                               sample_idx=torch.tensor(3), valid=torch.tensor(True), distortion='fog')])
    record = metric.results[0]
    assert record == dict(pred_score=0.5, gt_score=0.25, sample_idx=3, valid=True, distortion='fog')
    assert all(type(v) in (float, int, bool, str) for v in record.values())
    with pytest.raises(KeyError, match='sample_idx'):
        metric.process(None, [dict(pred_score=0.1, gt_score=0.2)])


def test_breakdown_groups_add_up_and_match_functional():
    samples = _samples()
    metric = _build(breakdown=True)
    _feed(metric, samples)
    out = metric.compute_metrics(metric.results)
    assert sum(out[f'distortion/{d}/n'] for d in DISTORTIONS) == out['num_samples']
    assert sum(out[f'region/{r}/n'] for r in ('UD', 'ROI-DD', 'BG-DD')) == out['num_samples']
    fog = [s for s in samples if s['distortion'] == 'fog']
    expected = correlations([s['pred_score'] for s in fog], [s['gt_score'] for s in fog])
    for key in ('SRCC', 'PLCC', 'KRCC', 'RMSE'):
        assert out[f'distortion/fog/{key}'] == pytest.approx(expected[key])
    assert not any(isinstance(v, float) and math.isnan(v) for v in out.values())


def test_small_group_reports_none():
    samples = _samples(30)
    samples[0]['distortion'], samples[3]['distortion'] = 'snow', 'snow'
    metric = _build(breakdown=True)
    _feed(metric, samples)
    out = metric.compute_metrics(metric.results)
    assert out['distortion/snow/n'] == 2
    assert all(out[f'distortion/snow/{k}'] is None for k in ('SRCC', 'PLCC', 'KRCC', 'RMSE'))
    table = breakdown_table(out)
    assert '| distortion/snow | 2 | n/a | n/a | n/a | n/a |' in table
    assert table.splitlines()[2].startswith('| overall | 30 |')


def test_too_few_samples_overall_is_none():
    metric = _build()
    _feed(metric, _samples(2))
    out = metric.compute_metrics(metric.results)
    assert out['SRCC'] is None and out['num_samples'] == 2


def test_breakdown_table_with_prefix():
    metric = _build(breakdown=True, prefix='val')
    _feed(metric, _samples())
    table = breakdown_table(metric.evaluate(90))
    assert '| overall | 90 |' in table and '| region/ROI-DD | 30 |' in table
