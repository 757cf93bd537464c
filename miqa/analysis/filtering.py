"""The filtering experiment (MIQA spec §8) as pure functions: rank, drop the lowest, re-measure.

Rank a test set by predicted quality, drop the lowest fraction ``f`` (0, 10, ..., 70 %) and
measure the downstream task on the images that are kept. A useful quality model makes the
curve rise; the *oracle* ranks by the true label (an upper reference), *random* rankings
(mean and spread of ``repeats`` seeded permutations) are the baseline a useless model follows.

Conventions:

* ``round(f * n)`` images are dropped (half-up), the lowest-scored first; ties in the score keep
  the images' input order (a stable sort), so the result is deterministic.
* A metric is a function ``metric(kept_indices) -> {name: value or None}``: :func:`mean_metric`
  averages per-image values (cls top-1 accuracy: the mean of per-image correctness);
  :class:`miqa.database.coco.CocoSubsetAP` is COCO AP over the kept images (det / ins),
  pycocotools' matching done once for all images and accumulated per subset.
* ``None`` (e.g. no annotated object among the kept images) becomes NaN in curves and
  ``None`` in JSON.
"""
import contextlib
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

#: The paper's filtering ratios: 0 %, 10 %, ..., 70 %.
DEFAULT_FRACTIONS = tuple(round(0.1 * k, 1) for k in range(8))
Metric = Callable[[np.ndarray], Mapping[str, Optional[float]]]


def check_fractions(fractions: Sequence[float]) -> np.ndarray:
    """Fractions as a float array, each in [0, 1)."""
    values = np.asarray(list(fractions), dtype=np.float64)
    if values.ndim != 1 or not values.size:
        raise ValueError('fractions: give at least one value')
    if np.any(~np.isfinite(values)) or np.any(values < 0) or np.any(values >= 1):
        raise ValueError(f'fractions must be in [0, 1), got {values.tolist()}')
    return values


def num_dropped(n: int, fraction: float) -> int:
    """How many of ``n`` images a ``fraction`` drops: ``round(fraction * n)``, half-up."""
    return int(np.floor(fraction * n + 0.5 + 1e-9))


def ascending(scores: Sequence[float]) -> np.ndarray:
    """Indices from the lowest to the highest score (stable: ties keep input order)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f'scores must be 1-D, got shape {scores.shape}')
    if not np.all(np.isfinite(scores)):
        raise ValueError(f'scores hold {int(np.count_nonzero(~np.isfinite(scores)))} non-finite value(s)')
    return np.argsort(scores, kind='stable')


def kept_indices(order: np.ndarray, fraction: float) -> np.ndarray:
    """The images kept after dropping the lowest ``fraction`` of ``order`` (ascending ranks)."""
    return order[num_dropped(len(order), fraction):]


def _nan(value: Optional[float]) -> float:
    return np.nan if value is None else float(value)


def filter_curve(order: np.ndarray, metric: Metric, fractions: Sequence[float]) -> Dict[str, np.ndarray]:
    """``{metric name: values at each fraction}`` for one ranking (``order`` from :func:`ascending`)."""
    fractions = check_fractions(fractions)
    rows = [metric(kept_indices(order, f)) for f in fractions]
    return {name: np.array([_nan(row.get(name)) for row in rows]) for name in rows[0]}


def random_curves(n: int, metric: Metric, fractions: Sequence[float], repeats: int = 50,
                  seed: int = 0) -> Dict[str, Dict[str, np.ndarray]]:
    """Curves of ``repeats`` random rankings (``numpy`` ``default_rng(seed)`` permutations):
    per metric name ``mean``, ``std`` (ddof=0), ``p05`` and ``p95`` (5th / 95th percentiles, the
    band plotted) over the repeats, NaN-aware."""
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    rng = np.random.default_rng(seed)
    runs = [filter_curve(rng.permutation(n), metric, fractions) for _ in range(repeats)]
    out = {}
    for name in runs[0]:
        stack = np.stack([run[name] for run in runs])
        with np.errstate(invalid='ignore'), _quiet_nan_warnings():
            out[name] = dict(mean=np.nanmean(stack, 0), std=np.nanstd(stack, 0),
                             p05=np.nanpercentile(stack, 5, axis=0), p95=np.nanpercentile(stack, 95, axis=0))
    return out


@contextlib.contextmanager
def _quiet_nan_warnings():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)  # all-NaN columns stay NaN
        yield


def mean_metric(values: Mapping[str, Sequence[float]]) -> Metric:
    """A metric averaging per-image values over the kept images (``None`` when none is kept),
    e.g. ``{'top1': correct}`` gives the top-1 accuracy of the kept images."""
    arrays = {name: np.asarray(v, dtype=np.float64) for name, v in values.items()}

    def metric(kept: np.ndarray) -> Dict[str, Optional[float]]:
        return {name: float(a[kept].mean()) if len(kept) else None for name, a in arrays.items()}
    return metric


def filtering_curves(rankings: Mapping[str, Sequence[float]], metrics: Mapping[str, Metric],
                     fractions: Sequence[float] = DEFAULT_FRACTIONS, repeats: int = 50,
                     seed: int = 0) -> Dict[str, Dict[str, dict]]:
    """The experiment for every machine and ranking.

    Args:
        rankings: ``{name: quality scores}`` (higher = better; the lowest are dropped), e.g. the
            models' predictions and ``'oracle'``: the labels. All of the same length ``n``.
        metrics: ``{machine name: metric over kept indices}``.
        fractions: fractions dropped.
        repeats, seed: random rankings (key ``'random'``; ``repeats=0``: none).

    Returns:
        ``{machine: {ranking: {metric name: array}, 'random': {metric name: {mean, std, p05, p95}}}}``.
    """
    lengths = {name: len(s) for name, s in rankings.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f'rankings differ in length: {lengths}')
    n = next(iter(lengths.values()))
    orders = {name: ascending(scores) for name, scores in rankings.items()}
    out: Dict[str, Dict[str, dict]] = {}
    for machine, metric in metrics.items():
        curves: Dict[str, dict] = {name: filter_curve(order, metric, fractions)
                                   for name, order in orders.items()}
        if repeats:
            curves['random'] = random_curves(n, metric, fractions, repeats, seed)
        out[machine] = curves
    return out


def curves_to_rows(curves: Mapping[str, Mapping[str, Mapping]], fractions: Sequence[float],
                   n: int) -> List[Dict[str, object]]:
    """Long-format rows (machine, ranking, metric, fraction, n_kept, value, std, p05, p95) of
    :func:`filtering_curves`; NaN -> ``None``."""
    rows = []
    for machine, by_ranking in curves.items():
        for ranking, by_metric in by_ranking.items():
            for metric, values in by_metric.items():
                spread = isinstance(values, Mapping)
                for i, f in enumerate(fractions):
                    row = dict(machine=machine, ranking=ranking, metric=metric, fraction=float(f),
                               n_kept=n - num_dropped(n, f),
                               value=_none(values['mean'][i] if spread else values[i]))
                    row.update({k: _none(values[k][i]) if spread else None for k in ('std', 'p05', 'p95')})
                    rows.append(row)
    return rows


def _none(value: float) -> Optional[float]:
    return None if value is None or not np.isfinite(value) else float(value)


def curves_to_json(curves: Mapping[str, Mapping[str, Mapping]]) -> Dict[str, dict]:
    """:func:`filtering_curves` output with lists (``None`` for NaN) for ``json.dumps``."""
    def plain(value):
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        return [_none(v) for v in np.asarray(value, dtype=np.float64).tolist()]
    return plain(curves)


__all__ = ['DEFAULT_FRACTIONS', 'ascending', 'check_fractions', 'curves_to_json',
           'curves_to_rows', 'filter_curve', 'filtering_curves', 'kept_indices', 'mean_metric',
           'num_dropped', 'random_curves']
