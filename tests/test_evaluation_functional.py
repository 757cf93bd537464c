"""miqa.evaluation.functional: against scipy, fits, degenerate inputs, validation."""
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from miqa.evaluation import correlations, fit_mapping, krcc, plcc, rmse, srcc
from miqa.evaluation.functional import FITS as FIT_FUNCTIONS
from miqa.vocab import FIT_CHOICES

FITS = tuple(FIT_FUNCTIONS)


def _data(n: int = 500, seed: int = 0, ties: bool = False):
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=n)
    target = 0.6 * pred + rng.normal(scale=0.8, size=n)
    if ties:
        pred, target = np.round(pred), np.round(target * 2) / 2
    return pred, target


def _logistic_data(n: int = 2000, seed: int = 1, decreasing: bool = False, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    pred = rng.uniform(-4, 4, size=n)
    target = 1 / (1 + np.exp(-2.5 * pred)) + rng.normal(scale=0.02, size=n)
    return (-pred if decreasing else pred) * scale + 3.0, target


@pytest.mark.parametrize('ties', [False, True])
def test_matches_scipy(ties):
    pred, target = _data(ties=ties)
    assert srcc(pred, target) == pytest.approx(stats.spearmanr(pred, target).statistic, abs=1e-12)
    tau_b = stats.kendalltau(pred, target, variant='b').statistic
    assert krcc(pred, target) == pytest.approx(tau_b, abs=1e-12)
    assert plcc(pred, target) == pytest.approx(stats.pearsonr(pred, target).statistic, abs=1e-12)
    assert rmse(pred, target) == pytest.approx(np.sqrt(np.mean((pred - target) ** 2)), abs=1e-12)


def test_accepts_lists_and_ignores_fit_for_rank_metrics():
    pred, target = _data(50)
    assert srcc(list(pred), tuple(target), fit='logistic4') == pytest.approx(srcc(pred, target))
    assert krcc(pred.tolist(), target.tolist(), fit='linear') == pytest.approx(krcc(pred, target))


def test_linear_fit_rmse_identity():
    pred, target = _data(1000, seed=3)
    out = correlations(pred, target, fit='linear')
    r = stats.pearsonr(pred, target).statistic
    assert out['PLCC'] == pytest.approx(abs(r), abs=1e-10)
    assert out['RMSE'] == pytest.approx(np.std(target) * math.sqrt(1 - out['PLCC'] ** 2), rel=1e-10)
    assert rmse(pred, target, fit='linear') == pytest.approx(out['RMSE'])
    slope, intercept = np.polyfit(pred, target, 1)
    np.testing.assert_allclose(fit_mapping(pred, target, 'linear'), slope * pred + intercept, atol=1e-10)


def test_correlations_keys_and_raw_values():
    pred, target = _data(300, seed=5)
    out = correlations(pred, target, fit=None)
    assert set(out) == {'SRCC', 'KRCC', 'PLCC', 'RMSE', 'PLCC_raw', 'RMSE_raw'}
    assert out['PLCC'] == out['PLCC_raw'] and out['RMSE'] == out['RMSE_raw']
    assert all(isinstance(v, float) for v in out.values())


@pytest.mark.parametrize('fit', ['logistic4', 'logistic5'])
@pytest.mark.parametrize('decreasing,scale', [(False, 1.0), (True, 1.0), (False, 1e3), (True, 1e-3)])
def test_logistic_fits_recover_monotone_mapping(fit, decreasing, scale):
    pred, target = _logistic_data(decreasing=decreasing, scale=scale)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no fallback to the linear fit
        out = correlations(pred, target, fit=fit)
    assert out['PLCC'] > 0.99
    assert abs(out['PLCC_raw']) < out['PLCC'] - 0.02
    assert out['RMSE'] < 0.03  # the noise level is 0.02
    assert out['RMSE'] < correlations(pred, target, fit='linear')['RMSE']


def test_logistic_fit_falls_back_to_linear_with_warning():
    pred, target = np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.1, 0.5, 0.2, 0.9])
    with pytest.warns(RuntimeWarning, match='falling back to the linear fit'):
        mapped = fit_mapping(pred, target, 'logistic5')
    np.testing.assert_allclose(mapped, fit_mapping(pred, target, 'linear'))


@pytest.mark.parametrize('fit', FITS)
def test_constant_inputs_give_zero_not_nan(fit):
    target = np.linspace(0, 1, 20)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no scipy ConstantInputWarning, no fallback warning
        const_pred = correlations(np.full(20, 0.7), target, fit=fit)
        const_target = correlations(target, np.full(20, 0.3), fit=fit)
    for out in (const_pred, const_target):
        assert all(math.isfinite(v) for v in out.values())
        assert out['SRCC'] == out['KRCC'] == out['PLCC'] == out['PLCC_raw'] == 0.0
    if fit is not None:
        assert const_pred['RMSE'] == pytest.approx(np.std(target))
        assert const_target['RMSE'] == pytest.approx(0.0, abs=1e-12)
    assert const_pred['RMSE_raw'] == pytest.approx(np.sqrt(np.mean((0.7 - target) ** 2)))


def test_two_samples_work():
    out = correlations([0.0, 1.0], [1.0, 3.0])
    assert out['SRCC'] == pytest.approx(1.0) and out['RMSE'] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize('pred,target,match', [
    ([1.0, 2.0, 3.0], [1.0, 2.0], 'differ in length'),
    ([1.0], [1.0], 'at least 2'),
    ([[1.0, 2.0], [3.0, 4.0]], [1.0, 2.0], 'pred must be 1-D'),
    ([1.0, float('nan'), 3.0], [1.0, 2.0, 3.0], 'pred has 1 non-finite'),
    ([1.0, 2.0, 3.0], [1.0, float('inf'), 3.0], 'target has 1 non-finite'),
    (['a', 'b'], [1.0, 2.0], 'numeric'),
])
def test_validation_errors(pred, target, match):
    for fn in (srcc, plcc, krcc, rmse, correlations, fit_mapping):
        with pytest.raises(ValueError, match=match):
            fn(pred, target)


def test_unknown_fit():
    with pytest.raises(ValueError, match='unknown fit'):
        correlations([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], fit='cubic')
    with pytest.raises(ValueError, match='unknown fit'):
        srcc([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], fit='cubic')


def test_non_converging_fit_falls_back(monkeypatch):
    import miqa.evaluation.functional as functional

    def no_convergence(*args, **kwargs):
        raise RuntimeError('Optimal parameters not found')

    monkeypatch.setattr(functional, 'curve_fit', no_convergence)
    pred, target = _logistic_data(200)
    with pytest.warns(RuntimeWarning, match='logistic4 fit failed'):
        out = correlations(pred, target, fit='logistic4')
    assert out == correlations(pred, target, fit='linear')


def test_the_tools_fit_choices_are_the_fits():
    """``--fit`` offers exactly the mappings :func:`fit_mapping` knows ('none' is no mapping)."""
    assert [None if c == 'none' else c for c in FIT_CHOICES] == list(FIT_FUNCTIONS)
