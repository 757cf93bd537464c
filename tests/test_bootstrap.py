"""Cluster-bootstrap intervals (miqa.evaluation.bootstrap) against closed forms and invariances."""
import warnings

import numpy as np
import pytest
from scipy import stats

from miqa.evaluation.bootstrap import difference_name, group_bootstrap, interval_table


def _pairs(n: int, rho: float, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = rho * x + np.sqrt(1 - rho ** 2) * rng.standard_normal(n)
    return x, y


def test_width_matches_the_normal_theory_standard_error():
    """Independent bivariate-normal pairs: the bootstrap SE of Pearson's r is close to the
    large-sample (1 - rho^2) / sqrt(n) (Fisher 1915), and the interval holds the estimate."""
    n, rho = 600, 0.6
    x, y = _pairs(n, rho, 1)
    res = group_bootstrap({'x': x}, y, groups=np.arange(n), metrics=('PLCC',), fit=None,
                          n_resamples=1500, method='percentile')
    iv = res.rows['x']['PLCC']
    r = stats.pearsonr(x, y).statistic
    assert iv.value == pytest.approx(r) and iv.low < r < iv.high
    expected = 2 * stats.norm.ppf(0.975) * (1 - r ** 2) / np.sqrt(n)
    assert (iv.high - iv.low) == pytest.approx(expected, rel=0.15)


def test_groups_are_resampled_whole():
    """k identical copies of every image in one group give exactly the intervals of the
    de-duplicated set with one image per group (SRCC and PLCC are unchanged by duplication)."""
    x, y = _pairs(80, 0.5, 2)
    k = 4
    single = group_bootstrap({'m': x}, y, groups=np.arange(80), metrics=('SRCC', 'PLCC'),
                             n_resamples=300, seed=5)
    dup = group_bootstrap({'m': np.repeat(x, k)}, np.repeat(y, k), groups=np.repeat(np.arange(80), k),
                          metrics=('SRCC', 'PLCC'), n_resamples=300, seed=5)
    for m in ('SRCC', 'PLCC'):
        np.testing.assert_allclose(tuple(dup.rows['m'][m]), tuple(single.rows['m'][m]), rtol=1e-9)
    assert dup.n_groups == 80 and dup.n_images == 320
    # treating the 320 images as independent would (wrongly) give a narrower interval
    naive = group_bootstrap({'m': np.repeat(x, k)}, np.repeat(y, k), groups=np.arange(320),
                            metrics=('SRCC',), n_resamples=300, seed=5)
    width = lambda iv: iv.high - iv.low  # noqa: E731
    assert width(naive.rows['m']['SRCC']) < 0.7 * width(dup.rows['m']['SRCC'])


def test_differences_are_paired_and_take_the_best_of_a_set():
    rng = np.random.default_rng(3)
    y = rng.standard_normal(300)
    groups = np.repeat(np.arange(60), 5)
    good = y + 0.3 * rng.standard_normal(300)
    b = y + 1.0 * rng.standard_normal(300)
    c = y + 2.0 * rng.standard_normal(300)
    res = group_bootstrap({'good': good, 'b': b, 'c': c}, y, groups,
                          differences=[('good', ('b', 'c')), ('c', 'b')], n_resamples=400)
    name = difference_name('good', ('b', 'c'))
    s = {k: stats.spearmanr(v, y).statistic for k, v in (('good', good), ('b', b), ('c', c))}
    assert res.differences[name].value == pytest.approx(s['good'] - max(s['b'], s['c']))
    assert res.differences[name].low > 0                      # clearly better
    assert res.differences['c - b'].high < 0                  # clearly worse
    text = interval_table(res)
    assert 'interval above 0' in text and 'interval below 0' in text and '60 photos' in text


def test_bad_input():
    y = np.arange(6.0)
    with pytest.raises(ValueError, match='at least 3 groups'):
        group_bootstrap({'m': y}, y, groups=[0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match='do not match'):
        group_bootstrap({'m': y[:5]}, y, groups=np.arange(6))
    with pytest.raises(KeyError, match='unknown method'):
        group_bootstrap({'m': y}, y, groups=np.arange(6), differences=[('m', 'x')])


def test_an_estimate_at_the_edge_of_its_range_gets_a_percentile_interval():
    """A prediction exactly uncorrelated with the labels: PLCC after a fit (|r|) is 0 and every
    resample is above it, so BCa is undefined (NaN); the interval falls back to the percentile
    interval of the same resamples, widened to the estimate, and the table marks it."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 10)
    y = rng.random(400) + np.repeat(rng.random(40), 10)
    p = rng.random(400)
    yc = y - y.mean()
    p = p - (p - p.mean()) @ yc / (yc @ yc) * yc            # Pearson r = 0 exactly (to 1e-16)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        result = group_bootstrap({'orthogonal': p, 'label': y + 0.1 * rng.random(400)}, y, groups,
                                 n_resamples=300, seed=0)
    plcc = result.rows['orthogonal']['PLCC']
    assert plcc.value == pytest.approx(0, abs=1e-12)
    assert np.isfinite([plcc.low, plcc.high]).all() and plcc.low <= plcc.value < plcc.high
    assert result.fallbacks == ('orthogonal/PLCC',)                  # only the cell where BCa failed
    table = interval_table(result)
    assert f'{plcc}*' in table and 'percentile interval' in table
    for row in result.rows.values():
        for iv in row.values():
            assert iv.low <= iv.value <= iv.high
