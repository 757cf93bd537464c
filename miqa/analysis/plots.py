"""PNG plots of the analyses (matplotlib, Agg; no display, no global pyplot state).

* :func:`filtering_plot`: the filtering experiment (spec §8) as in the seed README's figures:
  x the fraction filtered out (%), y the task metric, one colour per downstream machine; the
  quality model solid with markers, the oracle dashed, random rankings dotted with their 5-95 %
  band; one panel per quality model.
* :func:`heatmap`: one correlation per model (rows) and group (columns), ``n/a`` cells grey.
* :func:`scatter`: predicted score vs label, coloured by region type, with the fitted mapping.

Every function writes its PNG atomically (:func:`miqa.utils.io.atomic_write_bytes`) to the
path it is given and returns it.
"""
import io
import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from miqa.utils.io import atomic_write_bytes
from miqa.vocab import REGION_NAMES

#: display names of the task metrics on the y axis
METRIC_LABELS = {'top1': 'Top-1 accuracy (%)', 'top5': 'Top-5 accuracy (%)', 'AP': 'AP (%)',
                 'AP50': 'AP@0.50 (%)', 'AP75': 'AP@0.75 (%)'}
#: column label prefix of a breakdown in the heat-map (levels are numbers)
GROUP_PREFIX = {'level': 'L', 'fg_level': 'fg', 'bg_level': 'bg'}
REGION_COLOURS = {'UD': 'tab:blue', 'ROI': 'tab:orange', 'BG': 'tab:green'}


def _save(fig: Figure, path: str, dpi: int = 130) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=dpi, bbox_inches='tight')
    atomic_write_bytes(path, buffer.getvalue())
    return path


def filtering_plot(result: Mapping[str, Any], metric: str, path: str, title: Optional[str] = None) -> str:
    """The filtering curves of ``result`` (the JSON of ``tools/filter_eval.py``: ``fractions``,
    ``models``, ``curves[machine][ranking][metric]``) for one task ``metric`` (values in [0, 1],
    plotted in %)."""
    fractions = 100 * np.asarray(result['fractions'], dtype=float)
    curves = result['curves']
    machines = list(curves)
    models = list(result['models']) or ['oracle']
    colours = {m: f'C{i % 10}' for i, m in enumerate(machines)}
    fig = Figure(figsize=(4.6 * len(models) + 0.4, 3.9))
    axes = fig.subplots(1, len(models), sharey=True, squeeze=False)[0]

    def values(seq: Sequence[Optional[float]]) -> np.ndarray:
        return 100 * np.array([np.nan if v is None else v for v in seq], dtype=float)

    for ax, model in zip(axes, models):
        for machine in machines:
            by_ranking, colour = curves[machine], colours[machine]
            if 'random' in by_ranking and metric in by_ranking['random']:
                rnd = by_ranking['random'][metric]
                ax.fill_between(fractions, values(rnd['p05']), values(rnd['p95']), color=colour, alpha=0.12,
                                linewidth=0)
                ax.plot(fractions, values(rnd['mean']), ':', color=colour, linewidth=1.3)
            if 'oracle' in by_ranking:
                ax.plot(fractions, values(by_ranking['oracle'][metric]), '--', color=colour, linewidth=1.2)
            if model in by_ranking:
                ax.plot(fractions, values(by_ranking[model][metric]), '-o', color=colour, linewidth=1.8,
                        markersize=4, label=machine)
        ax.set_title(model if model != 'oracle' else 'oracle and random', fontsize=10)
        ax.set_xlabel('Filtered out (%)')
        ax.set_xticks(fractions)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(METRIC_LABELS.get(metric, metric))
    handles = [axes[0].plot([], [], '-', color=colours[m], linewidth=1.8)[0] for m in machines]
    styles = [axes[0].plot([], [], ls, color='0.3', linewidth=1.3)[0] for ls in ('-o', '--', ':')]
    fig.legend(handles + styles, machines + ['quality model', 'oracle (true label)', 'random (5-95 % band)'],
               loc='lower center', ncol=min(6, len(machines) + 3), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.05 * ((len(machines) + 3) // 7)))
    fig.suptitle(title or f'Filtering by predicted quality: {METRIC_LABELS.get(metric, metric)}', fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _save(fig, path)


def heatmap(values: Mapping[str, Mapping[tuple, Optional[float]]], columns: Sequence[tuple], path: str,
            metric: str = 'SRCC', counts: Optional[Mapping[tuple, int]] = None,
            title: Optional[str] = None) -> str:
    """Models (rows) x groups (``columns``: ``(breakdown, group)``) of one correlation; ``None``
    cells are grey and marked ``n/a``. ``counts`` (per column) label the columns with ``n``."""
    models = list(values)
    data = np.array([[np.nan if values[m].get(c) is None else values[m][c] for c in columns] for m in models],
                    dtype=float)
    finite = data[np.isfinite(data)]
    low = min(0.0, float(finite.min())) if finite.size else 0.0
    fig = Figure(figsize=(max(5.0, 0.62 * len(columns) + 2.2), 0.5 * len(models) + 2.0))
    ax = fig.subplots()
    cmap = colormaps['viridis'].with_extremes(bad='0.85')
    image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=low, vmax=1.0, aspect='auto')
    for i in range(len(models)):
        for j in range(len(columns)):
            v = data[i, j]
            text = 'n/a' if math.isnan(v) else f'{v:.2f}'
            dark = not math.isnan(v) and (v - low) / max(1e-9, 1.0 - low) < 0.6
            ax.text(j, i, text, ha='center', va='center', fontsize=7, color='white' if dark else 'black')
    labels = [('all' if b == 'overall' else f'{GROUP_PREFIX.get(b, "")}{g}')
              + (f'\nn={counts[(b, g)]}' if counts and (b, g) in counts else '') for b, g in columns]
    ax.set_xticks(range(len(columns)), labels, rotation=60, ha='right', fontsize=7)
    ax.set_yticks(range(len(models)), models, fontsize=8)
    for j in range(1, len(columns)):  # separators between breakdowns
        if columns[j][0] != columns[j - 1][0]:
            ax.axvline(j - 0.5, color='white', linewidth=3)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02).set_label(metric)
    ax.set_title(title or f'{metric} per group', fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def scatter(records: Sequence[Mapping[str, Any]], path: str, title: str = '', fit: Optional[str] = 'linear',
            stats: Optional[Mapping[str, Optional[float]]] = None, max_points: int = 20000,
            seed: int = 0) -> str:
    """Predicted score (x) vs label (y) of usable ``records``, coloured by region type, with the
    ``fit`` mapping as a line; ``stats`` (e.g. SRCC, PLCC) go in the title. At most
    ``max_points`` points are drawn (a seeded sample; the fit uses all)."""
    from miqa.evaluation.functional import fit_mapping
    from miqa.evaluation.iqa_metric import is_usable

    usable = [r for r in records if is_usable(r)]
    pred = np.array([r['pred_score'] for r in usable], dtype=float)
    label = np.array([r['gt_score'] for r in usable], dtype=float)
    region = np.array([r.get('region', '') for r in usable], dtype=object)
    fig = Figure(figsize=(4.6, 4.2))
    ax = fig.subplots()
    shown = np.arange(len(usable))
    if len(shown) > max_points:
        shown = np.sort(np.random.default_rng(seed).choice(len(usable), max_points, replace=False))
    alpha = float(np.clip(600 / max(1, len(shown)), 0.3, 0.8))
    for code in list(REGION_COLOURS) + sorted(set(region.tolist()) - set(REGION_COLOURS)):
        pick = shown[region[shown] == code]
        if pick.size:
            ax.scatter(pred[pick], label[pick], s=5, alpha=alpha, linewidths=0,
                       color=REGION_COLOURS.get(code, '0.4'),
                       label=REGION_NAMES.get(code, code or 'unknown'))
    if len(usable) >= 3 and fit is not None:
        order = np.argsort(pred, kind='stable')
        ax.plot(pred[order], fit_mapping(pred, label, fit)[order], color='black', linewidth=1.2,
                label=f'{fit} fit')
    if ax.get_legend_handles_labels()[0]:
        legend = ax.legend(fontsize=7, markerscale=2.5, loc='best')
        for handle in legend.legend_handles:
            handle.set_alpha(1.0)
    ax.set_xlabel('predicted quality')
    ax.set_ylabel('label')
    ax.grid(alpha=0.3)
    text = ', '.join(f'{k} {v:.3f}' if v is not None else f'{k} n/a' for k, v in (stats or {}).items())
    ax.set_title(f'{title} (n={len(usable)})' + (f'\n{text}' if text else ''), fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


__all__ = ['filtering_plot', 'heatmap', 'scatter', 'METRIC_LABELS']
