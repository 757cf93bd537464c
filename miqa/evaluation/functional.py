"""Correlation metrics between quality predictions and labels (pure functions).

SRCC (Spearman), KRCC (Kendall's tau-b), PLCC (Pearson) and RMSE, computed on the
whole set at once (correlations cannot be averaged over batches). SRCC and KRCC are
rank metrics and use the raw predictions; PLCC and RMSE are taken after an optional
mapping of the predictions onto the label scale (``fit``):

* ``None`` -- no mapping (raw predictions);
* ``'linear'`` -- least squares ``a * x + b``. The MIQD-2.5M paper's RMSEs equal
  ``std(labels, ddof=0) * sqrt(1 - PLCC^2)``, which is exactly what this fit gives;
* ``'logistic4'`` -- the 4-parameter logistic of the VQEG FR-TV Phase I final report
  (2000): ``f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``;
* ``'logistic5'`` -- the 5-parameter logistic of Sheikh, Sabir & Bovik, "A statistical
  evaluation of recent full reference image quality assessment algorithms", IEEE TIP
  15(11), 2006: ``f(x) = b1 * (0.5 - 1 / (1 + exp(b2 * (x - b3)))) + b4 * x + b5``.

The logistic parameters start from robust data-driven guesses (asymptotes at the label
extremes ordered by the trend, centre at the median prediction); a logistic fit that
does not converge within its evaluation budget falls back to the linear fit with a
``RuntimeWarning``. A fit absorbs the sign of the relation: with ``fit='linear'`` PLCC
is ``|PLCC_raw|`` (SRCC/KRCC keep their sign).

Inputs are any 1-D array-likes of equal length >= 2 with finite values (any range).
Degenerate sets never give NaN: a correlation with constant predictions or constant
labels is reported as ``0.0``; RMSE is computed as usual (with ``fit='linear'`` and
constant predictions it equals ``std(target)``).
"""
import inspect
import warnings
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.special import expit

__all__ = ['srcc', 'plcc', 'krcc', 'rmse', 'correlations', 'fit_mapping', 'FITS']

_Curve = Callable[..., np.ndarray]


def _validate(pred: ArrayLike, target: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """The one input check of this module: float64 1-D arrays, same length >= 2, finite."""
    arrays = []
    for name, value in (('pred', pred), ('target', target)):
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f'{name} must be a numeric array-like: {err}') from None
        if arr.ndim != 1:
            raise ValueError(f'{name} must be 1-D, got shape {arr.shape}')
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise ValueError(f'{name} has {bad} non-finite value(s) (NaN or inf)')
        arrays.append(arr)
    p, t = arrays
    if p.size != t.size:
        raise ValueError(f'pred and target differ in length: {p.size} != {t.size}')
    if p.size < 2:
        raise ValueError(f'need at least 2 samples, got {p.size}')
    return p, t


def _is_constant(x: np.ndarray) -> bool:
    return bool(x[0] == x[-1] and np.ptp(x) == 0)


def _guarded(corr: Callable[[np.ndarray, np.ndarray], object]) -> Callable[[np.ndarray, np.ndarray], float]:
    """Wrap a scipy correlation so constant inputs give 0.0 instead of NaN."""
    def wrapped(x: np.ndarray, y: np.ndarray) -> float:
        if _is_constant(x) or _is_constant(y):
            return 0.0
        return float(corr(x, y).statistic)
    return wrapped


_srcc = _guarded(stats.spearmanr)
_plcc = _guarded(stats.pearsonr)
_krcc = _guarded(lambda x, y: stats.kendalltau(x, y, variant='b'))


def _rmse(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((x - y) ** 2)))


# ---------------------------------------------------------------- mappings (fits)
def _linear(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Least-squares ``a * x + b`` (closed form); constant ``p`` maps to ``mean(t)``."""
    pc = p - p.mean()
    var = float(np.dot(pc, pc))
    slope = float(np.dot(pc, t - t.mean())) / var if var > 0 else 0.0
    return slope * pc + t.mean()


def _logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG FR-TV Phase I (2000): ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``."""
    return (b1 - b2) * expit((x - b3) / max(abs(b4), 1e-12)) + b2


def _logistic4_jac(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    scale = max(abs(b4), 1e-12)
    u = (x - b3) / scale
    s = expit(u)
    ds = (b1 - b2) * s * (1 - s) / scale
    return np.column_stack([s, 1 - s, -ds, -ds * u * np.sign(b4)])


def _logistic5(x: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    """Sheikh et al. (IEEE TIP 2006): ``b1 * (0.5 - 1 / (1 + exp(b2 * (x - b3)))) + b4 * x + b5``."""
    return b1 * (expit(b2 * (x - b3)) - 0.5) + b4 * x + b5


def _logistic5_jac(x: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    s = expit(b2 * (x - b3))
    ds = b1 * s * (1 - s)
    return np.column_stack([s - 0.5, ds * (x - b3), -ds * b2, x, np.ones_like(x)])


def _init_logistic4(z: np.ndarray, t: np.ndarray) -> List[float]:
    """Asymptotes at the label extremes (ordered by the trend), centre at the median,
    scale matching the linear slope at the centre (standardised data)."""
    r = float(np.dot(z, t)) / z.size  # the linear slope of standardised data = Pearson r
    lo, hi = float(t.min()), float(t.max())
    b1, b2 = (hi, lo) if r >= 0 else (lo, hi)
    scale = float(np.clip((hi - lo) / (4 * max(abs(r), 1e-3)), 0.25, 4.0))
    return [b1, b2, float(np.median(z)), scale]


def _init_logistic5(z: np.ndarray, t: np.ndarray) -> List[float]:
    """Logistic part spanning the label range with the linear slope at the centre,
    no linear term, offset at the label mean (standardised data)."""
    r = float(np.dot(z, t)) / z.size
    span = max(float(np.ptp(t)), 1e-6)
    return [span, 4 * r / span if r else 1e-3, float(np.median(z)), 0.0, 0.0]


def _max_evals(n: int) -> int:
    """Evaluation budget of a logistic fit: ample for small sets, bounded in time for big
    ones (200 evaluations of 250,000 points, about 6 s on 2 cores, before falling back)."""
    return int(np.clip(5e7 / n, 200, 5000))


class _Logistic(NamedTuple):
    curve: _Curve  # f(x, *params)
    jac: _Curve  # df/dparams, shape (n, n_params)
    init: Callable[[np.ndarray, np.ndarray], List[float]]  # from standardised (pred, target)


_LOGISTICS: Dict[str, _Logistic] = {
    'logistic4': _Logistic(_logistic4, _logistic4_jac, _init_logistic4),
    'logistic5': _Logistic(_logistic5, _logistic5_jac, _init_logistic5),
}


def _fit_logistic(name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    curve, jac, init = _LOGISTICS[name]
    n_params = len(inspect.signature(curve).parameters) - 1

    def fit(p: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Least-squares fit of the logistic (Levenberg-Marquardt, analytic Jacobian,
        evaluation budget :func:`_max_evals`), falling back to the linear fit with a
        ``RuntimeWarning`` when it cannot be fitted: no more samples than parameters,
        no convergence, or a non-finite result.

        The fit runs on standardised predictions and labels for conditioning; the
        logistic families are closed under these affine changes, so the fitted function
        is the one a direct fit of the formula would give.
        """
        if _is_constant(p) or _is_constant(t):
            return _linear(p, t)  # nothing to fit: the best mapping is mean(target)
        if p.size <= n_params:
            return _fallback(p, t, f'{name} needs more than {n_params} samples, got {p.size}')
        mp, sp, mt, st = p.mean(), p.std(), t.mean(), t.std()
        z, y = (p - mp) / sp, (t - mt) / st
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', OptimizeWarning)  # covariance not needed
                with np.errstate(over='ignore', invalid='ignore'):
                    params, _ = curve_fit(curve, z, y, p0=init(z, y), jac=jac, maxfev=_max_evals(p.size))
                    mapped = curve(z, *params) * st + mt
        except (RuntimeError, ValueError, TypeError) as err:
            return _fallback(p, t, f'{name} fit failed ({err})')
        if not np.all(np.isfinite(mapped)):
            return _fallback(p, t, f'{name} fit gave non-finite values')
        return mapped

    return fit


def _fallback(p: np.ndarray, t: np.ndarray, why: str) -> np.ndarray:
    warnings.warn(f'{why}; falling back to the linear fit', RuntimeWarning, stacklevel=4)
    return _linear(p, t)


#: fit name -> ``mapping(pred, target) -> mapped pred`` (validated float64 arrays).
FITS: Dict[Optional[str], Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    None: lambda p, t: p,
    'linear': _linear,
    'logistic4': _fit_logistic('logistic4'),
    'logistic5': _fit_logistic('logistic5'),
}


def _mapping(fit: Optional[str]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    try:
        return FITS[fit]
    except (KeyError, TypeError):
        raise ValueError(f'unknown fit {fit!r}; expected one of {list(FITS)}') from None


# ---------------------------------------------------------------- public functions
def fit_mapping(pred: ArrayLike, target: ArrayLike, fit: Optional[str] = 'linear') -> np.ndarray:
    """Map predictions onto the label scale with ``fit`` (see the module docstring).

    Returns the mapped predictions (float64, same order). A logistic fit that does not
    converge falls back to the linear fit with a ``RuntimeWarning``.
    """
    p, t = _validate(pred, target)
    return _mapping(fit)(p, t)


def srcc(pred: ArrayLike, target: ArrayLike, fit: Optional[str] = None) -> float:
    """Spearman rank-order correlation (ties get average ranks). ``fit`` is accepted for a
    uniform signature and ignored (a rank metric). Constant input -> 0.0."""
    _mapping(fit)
    return _srcc(*_validate(pred, target))


def krcc(pred: ArrayLike, target: ArrayLike, fit: Optional[str] = None) -> float:
    """Kendall rank correlation, tau-b (tie-corrected), O(n log n). ``fit`` is accepted for
    a uniform signature and ignored (a rank metric). Constant input -> 0.0."""
    _mapping(fit)
    return _krcc(*_validate(pred, target))


def plcc(pred: ArrayLike, target: ArrayLike, fit: Optional[str] = None) -> float:
    """Pearson linear correlation of the ``fit``-mapped predictions with the labels.
    Constant predictions (or a constant mapping) or constant labels -> 0.0."""
    p, t = _validate(pred, target)
    return _plcc(_mapping(fit)(p, t), t)


def rmse(pred: ArrayLike, target: ArrayLike, fit: Optional[str] = None) -> float:
    """Root-mean-square error of the ``fit``-mapped predictions against the labels
    (label units). With ``fit='linear'`` it equals ``std(target) * sqrt(1 - PLCC^2)``."""
    p, t = _validate(pred, target)
    return _rmse(_mapping(fit)(p, t), t)


def correlations(pred: ArrayLike, target: ArrayLike, fit: Optional[str] = 'linear') -> Dict[str, float]:
    """All four criteria in one pass (inputs validated and ``fit`` run once).

    Returns ``SRCC`` and ``KRCC`` (tau-b) on the raw predictions, ``PLCC`` and ``RMSE``
    after ``fit``, and ``PLCC_raw`` / ``RMSE_raw`` without mapping. Never NaN: constant
    predictions or labels give correlations of 0.0.
    """
    mapping = _mapping(fit)
    p, t = _validate(pred, target)
    mapped = mapping(p, t)
    return dict(SRCC=_srcc(p, t), KRCC=_krcc(p, t), PLCC=_plcc(mapped, t), RMSE=_rmse(mapped, t),
                PLCC_raw=_plcc(p, t), RMSE_raw=_rmse(p, t))
