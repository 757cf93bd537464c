"""Confidence intervals of correlation metrics by a bootstrap over photos (cluster bootstrap).

Images of one source photo are not independent samples: their labels share how recognisable
the photo is at all, so the uncertainty of a correlation over a val set is set by the number
of photos, not of images. :func:`group_bootstrap` resamples whole groups (photos, with all
their images) with replacement (the cluster bootstrap, Davison & Hinkley, *Bootstrap Methods
and their Application*, 1997, §3.8), recomputes every metric of every method on the same
resamples, and returns scipy's intervals (``scipy.stats.bootstrap``, BCa by default: Efron,
JASA 1987). Differences between methods are computed on the same resamples (paired), so their
intervals account for the methods being scored on the same images. A difference against a set
of methods (``('RA-MIQA', ('PSNR', 'SSIM'))``) takes the best of the set in every resample.

BCa fails for a statistic at the edge of its range (PLCC after a fit is ``|r|``: a method
uncorrelated with the labels has its estimate at 0 and every resample above it, so the bias
correction is infinite and the interval NaN, or excludes the estimate). Such intervals are
replaced by the percentile interval of the same resamples, widened to include the estimate,
and listed in ``BootstrapResult.fallbacks`` (the table marks them with ``*``).
"""
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from miqa.vocab import METRIC_COLUMNS

from .functional import correlations
from .tables import markdown_table

Versus = Union[str, Sequence[str]]


class Interval(NamedTuple):
    """A point estimate on the whole set and its confidence interval."""
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f'{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]'


class BootstrapResult(NamedTuple):
    rows: Dict[str, Dict[str, Interval]]           # method -> metric -> interval
    differences: Dict[str, Interval]               # 'A - B' / 'A - max(B, C)' (the metric of ``metric``)
    metric: str                                    # the metric of the differences
    n_groups: int
    n_images: int
    n_resamples: int
    confidence: float
    method: str
    fallbacks: Tuple[str, ...] = ()               # 'method/metric' (or a difference's name) where
                                                  # BCa failed: percentile interval incl. the estimate


def difference_name(a: str, versus: Versus) -> str:
    return f'{a} - {versus}' if isinstance(versus, str) else f'{a} - max({", ".join(versus)})'


def group_bootstrap(preds: Mapping[str, ArrayLike], target: ArrayLike, groups: Sequence,
                    metrics: Sequence[str] = METRIC_COLUMNS, differences: Sequence[Tuple[str, Versus]] = (),
                    metric: str = 'SRCC', fit: Optional[str] = 'linear', n_resamples: int = 2000,
                    confidence: float = 0.95, seed: int = 0, method: str = 'BCa') -> BootstrapResult:
    """Intervals for ``metrics`` of every method in ``preds`` and for ``differences`` of ``metric``.

    Args:
        preds: method name -> predictions (one per image, same order as ``target``).
        target: labels.
        groups: the photo (cluster) of each image; resampled as wholes.
        metrics: keys of :func:`miqa.evaluation.correlations` (PLCC/RMSE after ``fit``).
        differences: ``(a, b)`` pairs: ``metric(a) - metric(b)``, ``b`` a method or a list of
            methods (then the best of them in each resample, higher is better).
        n_resamples, confidence, method: of ``scipy.stats.bootstrap`` (``'BCa'``,
            ``'percentile'`` or ``'basic'``); ``seed`` makes the intervals reproducible.
    """
    target = np.asarray(target, dtype=np.float64)
    names = list(preds)
    values = {n: np.asarray(preds[n], dtype=np.float64) for n in names}
    bad = [n for n, v in values.items() if v.shape != target.shape]
    if bad:
        raise ValueError(f'predictions of {bad} do not match the {target.size} labels')
    codes, group_ids = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    if group_ids.size != target.size:
        raise ValueError(f'{group_ids.size} group ids for {target.size} labels')
    if codes.size < 3:
        raise ValueError(f'a bootstrap over groups needs at least 3 groups, got {codes.size}')
    members: List[np.ndarray] = [np.flatnonzero(group_ids == g) for g in range(codes.size)]
    for a, versus in differences:
        unknown = [m for m in [a, *([versus] if isinstance(versus, str) else versus)] if m not in values]
        if unknown:
            raise KeyError(f'differences: unknown method(s) {unknown}; known: {names}')

    def scores(index: np.ndarray) -> Dict[str, Dict[str, float]]:
        return {n: correlations(values[n][index], target[index], fit) for n in names}

    def diff(table: Mapping[str, Mapping[str, float]], a: str, versus: Versus) -> float:
        others = [versus] if isinstance(versus, str) else list(versus)
        return table[a][metric] - max(table[o][metric] for o in others)

    def statistic(sample: np.ndarray) -> np.ndarray:
        table = scores(np.concatenate([members[g] for g in sample.astype(int)]))
        return np.array([table[n][m] for n in names for m in metrics]
                        + [diff(table, a, v) for a, v in differences])

    full = scores(np.arange(target.size))
    point = [full[n][m] for n in names for m in metrics] + [diff(full, a, v) for a, v in differences]
    res = stats.bootstrap((np.arange(codes.size),), statistic, vectorized=False, n_resamples=n_resamples,
                          confidence_level=confidence, method=method, rng=np.random.default_rng(seed))
    low, high = np.atleast_1d(res.confidence_interval.low), np.atleast_1d(res.confidence_interval.high)
    point = np.asarray(point, dtype=np.float64)
    failed = ~(np.isfinite(low) & np.isfinite(high) & (low <= point) & (point <= high))
    if failed.any():  # the percentile interval of the same resamples, widened to the estimate
        dist = np.atleast_2d(res.bootstrap_distribution)[failed]
        tail = 100 * (1 - confidence) / 2
        low, high = low.copy(), high.copy()
        low[failed] = np.minimum(np.nanpercentile(dist, tail, axis=-1), point[failed])
        high[failed] = np.maximum(np.nanpercentile(dist, 100 - tail, axis=-1), point[failed])
    intervals = [Interval(float(p), float(lo), float(hi)) for p, lo, hi in zip(point, low, high)]
    k = len(metrics)
    labels = [f'{n}/{m}' for n in names for m in metrics] + [difference_name(a, v) for a, v in differences]
    rows = {n: dict(zip(metrics, intervals[i * k:(i + 1) * k])) for i, n in enumerate(names)}
    diffs = {difference_name(a, v): iv for (a, v), iv in zip(differences, intervals[len(names) * k:])}
    return BootstrapResult(rows, diffs, metric, int(codes.size), int(target.size), n_resamples, confidence,
                           method, tuple(lab for lab, bad in zip(labels, failed) if bad))


def interval_table(result: BootstrapResult, title: str = '') -> str:
    """Markdown: one row per method, ``value [low, high]`` per metric, then the differences."""
    metrics = list(next(iter(result.rows.values())))
    lines = [title] if title else []
    lines += [f'{result.n_images} images of {result.n_groups} photos; '
              f'{round(100 * result.confidence)} % {result.method} bootstrap intervals over photos '
              f'({result.n_resamples} resamples)', '',
              markdown_table(['method', *metrics], [[name, *row] for name, row in _cells(result).items()])]
    mark = set(result.fallbacks)
    if result.differences:
        lines.append('')
        lines += [f'{result.metric} difference {name}: {iv}' + ('*' if name in mark else '') + _verdict(iv)
                  for name, iv in result.differences.items()]
    if mark:
        lines += ['', f'* {result.method} undefined at the edge of the range (e.g. PLCC = |r| near 0): '
                      'percentile interval of the same resamples, widened to include the estimate']
    return '\n'.join(lines)


def _cells(result: BootstrapResult) -> Dict[str, List[str]]:
    """``value [low, high]`` per method and metric, ``*`` where BCa fell back to the percentile."""
    mark = set(result.fallbacks)
    return {name: [str(iv) + ('*' if f'{name}/{m}' in mark else '') for m, iv in row.items()]
            for name, row in result.rows.items()}


def _verdict(interval: Interval) -> str:
    if interval.low > 0:
        return '  (interval above 0)'
    if interval.high < 0:
        return '  (interval below 0)'
    return '  (interval contains 0: no significant difference)'
