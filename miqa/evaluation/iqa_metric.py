"""``IQAMetric``: SRCC / KRCC / PLCC / RMSE over the whole gathered evaluation set."""
import logging
import math
from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from miqa.registry import METRICS
from miqa.vocab import DISTORTIONS, LEVELS, METRIC_COLUMNS, REGION_NAMES

from .functional import FITS, correlations
from .tables import PLAIN, cell, markdown_table

#: per-sample fields kept by ``process`` -> converter to a plain Python value
REQUIRED_FIELDS: Dict[str, Callable[[Any], Any]] = {'pred_score': float, 'gt_score': float, 'sample_idx': int}
OPTIONAL_FIELDS: Dict[str, Callable[[Any], Any]] = {
    'valid': bool, 'distortion': str, 'region': str, 'fg_level': int, 'bg_level': int,
    'src_id': str, 'img_path': str}


def _level(field: str) -> Callable[[Mapping], Optional[str]]:
    return lambda s: str(int(s[field])) if s.get(field) is not None else None


def _strongest_level(sample: Mapping) -> Optional[str]:
    levels = [int(sample[k]) for k in ('fg_level', 'bg_level') if sample.get(k) is not None]
    return str(max(levels)) if levels else None


#: breakdown name -> the group a sample belongs to (``None``: the sample lacks the field).
#: ``level`` is the strongest distortion level in the image, ``max(fg_level, bg_level)`` (the
#: level itself for UD); ``fg_level`` / ``bg_level`` the level of one region; ``source`` the source
#: image (within-source correlations: how well the variants of one photo are ranked).
GROUPINGS: Dict[str, Callable[[Mapping], Optional[str]]] = {
    'distortion': lambda s: s.get('distortion') or None,
    'region': lambda s: REGION_NAMES.get(s['region'], s['region']) if s.get('region') else None,
    'level': _strongest_level,
    'fg_level': _level('fg_level'),
    'bg_level': _level('bg_level'),
    'source': lambda s: s.get('src_id') or None,
}
#: the breakdowns ``IQAMetric(breakdown=True)`` reports
BREAKDOWNS: Tuple[str, ...] = ('distortion', 'region')
#: report order of the groups of a breakdown (names not listed follow, sorted)
GROUP_ORDER: Dict[str, Sequence[str]] = {
    'distortion': tuple(DISTORTIONS), 'region': tuple(REGION_NAMES.values()),
    **{k: tuple(str(lv) for lv in LEVELS) for k in ('level', 'fg_level', 'bg_level')}}
OVERALL_METRICS = ('SRCC', 'KRCC', 'PLCC', 'RMSE', 'PLCC_raw', 'RMSE_raw')
#: a group (or the whole set) with fewer usable samples reports ``None`` values ("n/a")
MIN_GROUP_SIZE = 3


def _to_plain(value: Any, convert: Callable[[Any], Any]) -> Any:
    """A tensor / numpy scalar / Python value as a plain Python value on the CPU."""
    if hasattr(value, 'item') and convert is not str:
        value = value.item()
    return convert(value)


def is_usable(sample: Mapping) -> bool:
    """Whether a record counts: not flagged ``valid=False``, finite prediction and label."""
    return bool(sample.get('valid', True)) and math.isfinite(sample['pred_score']) \
        and math.isfinite(sample['gt_score'])


def group_samples(samples: Sequence[Mapping], by: str) -> Dict[str, List[Mapping]]:
    """``samples`` split by the breakdown ``by`` (a key of :data:`GROUPINGS`), in report order
    (:data:`GROUP_ORDER`); samples without the field are in no group."""
    if by not in GROUPINGS:
        raise KeyError(f'unknown breakdown {by!r}; choose from {list(GROUPINGS)}')
    name_of = GROUPINGS[by]
    groups: Dict[str, List[Mapping]] = {}
    for s in samples:
        name = name_of(s)
        if name is not None:
            groups.setdefault(name, []).append(s)
    order = list(GROUP_ORDER.get(by, ()))
    return {name: groups[name] for name in sorted(
        groups, key=lambda n: (order.index(n) if n in order else len(order), n))}


def group_metrics(samples: Sequence[Mapping], keys: Sequence[str] = METRIC_COLUMNS,
                  fit: Optional[str] = 'linear') -> Dict[str, Optional[float]]:
    """``keys`` of :func:`~miqa.evaluation.functional.correlations` on ``samples`` (each group
    a set of its own, its own ``fit``); all ``None`` ("n/a") below :data:`MIN_GROUP_SIZE`."""
    if len(samples) < MIN_GROUP_SIZE:
        return dict.fromkeys(keys)
    values = correlations([s['pred_score'] for s in samples], [s['gt_score'] for s in samples], fit)
    return {k: values[k] for k in keys}


@METRICS.register_module()
class IQAMetric(BaseMetric):
    """Correlation metrics of quality predictions against labels (MIQA spec §7).

    ``process`` keeps one plain-Python record per sample; ``compute_metrics`` sees the
    whole set gathered by mmengine's ``collect_results`` (dataset order, sampler padding
    removed), sorts it by ``sample_idx`` and drops repeated indices (first kept) in case
    padding survived. Correlations are never averaged over batches.

    Samples with ``valid=False`` (an unreadable image flagged by ``LoadImage``) or a
    non-finite prediction/label are left out and counted in ``num_invalid`` (with a
    warning in the log).

    Keys: ``SRCC``, ``KRCC`` (tau-b, raw predictions), ``PLCC``, ``RMSE`` (after ``fit``),
    ``PLCC_raw``, ``RMSE_raw``, ``num_samples`` (usable samples), ``num_invalid``. With
    ``breakdown=True`` also ``distortion/<name>/<SRCC|PLCC|KRCC|RMSE|n>`` and
    ``region/<UD|ROI-DD|BG-DD>/<...>``; each group is evaluated as a set of its own (its
    own ``fit``). A group -- or the whole set -- with fewer than 3 usable samples reports
    ``None`` ("n/a") for its metric values and keeps its ``n``.

    Args:
        fit: mapping of predictions to labels before PLCC/RMSE: ``None``, ``'linear'``
            (reproduces the paper's RMSEs), ``'logistic4'`` (VQEG 2000) or ``'logistic5'``
            (Sheikh et al. 2006). See :mod:`miqa.evaluation.functional`.
        breakdown: also report per distortion type and per region type.
        collect_device: ``'cpu'`` or ``'gpu'``, as in mmengine's ``BaseMetric``.
        prefix: prefix of the result keys (none by default: keys are ``SRCC`` ...).
        collect_dir: synchronisation folder for ``collect_device='cpu'``.

    Attributes:
        last_predictions: the per-sample records of the last ``compute_metrics`` (sorted
            by ``sample_idx``, de-duplicated, invalid ones included) for dumping to JSON.
    """

    default_prefix: Optional[str] = ''  # keys are SRCC ..., without mmengine's 'prefix is not set' warning

    def __init__(self,
                 fit: Optional[str] = 'linear',
                 breakdown: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        if fit not in FITS:
            raise ValueError(f'unknown fit {fit!r}; expected one of {list(FITS)}')
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.fit = fit
        self.breakdown = breakdown
        self.last_predictions: List[dict] = []

    def process(self, data_batch: Any, data_samples: Sequence[Mapping]) -> None:
        """Keep ``pred_score``, ``gt_score``, ``sample_idx`` and the optional fields
        (``valid``, ``distortion``, ``region``, levels, ``src_id``, ``img_path``) of each
        ``predict`` output as plain Python values."""
        for sample in data_samples:
            if not isinstance(sample, Mapping):
                sample = sample.to_dict()  # a BaseDataElement
            missing = [k for k in REQUIRED_FIELDS if k not in sample]
            if missing:
                raise KeyError(f'IQAMetric needs {missing} in every predict output; got {sorted(sample)}')
            record = {k: _to_plain(sample[k], conv) for k, conv in REQUIRED_FIELDS.items()}
            record.update({k: _to_plain(sample[k], conv) for k, conv in OPTIONAL_FIELDS.items()
                           if sample.get(k) is not None})
            self.results.append(record)

    def compute_metrics(self, results: List[dict]) -> Dict[str, Any]:
        """Metrics of the whole, de-duplicated set (see the class docstring)."""
        seen, samples = set(), []
        for sample in sorted(results, key=lambda s: s['sample_idx']):
            if sample['sample_idx'] not in seen:
                seen.add(sample['sample_idx'])
                samples.append(sample)
        self.last_predictions = samples
        usable = [s for s in samples if is_usable(s)]
        num_invalid = len(samples) - len(usable)
        if num_invalid:
            print_log(f'IQAMetric: {num_invalid} of {len(samples)} samples are invalid (unreadable '
                      'image or non-finite score) and left out', logger='current', level=logging.WARNING)

        metrics: Dict[str, Any] = self._group(usable, OVERALL_METRICS)
        metrics.update(num_samples=len(usable), num_invalid=num_invalid)
        if self.breakdown:
            for by in BREAKDOWNS:
                for name, group in group_samples(usable, by).items():
                    values = self._group(group, METRIC_COLUMNS)
                    metrics.update({f'{by}/{name}/{k}': v for k, v in values.items()})
                    metrics[f'{by}/{name}/n'] = len(group)
        return metrics

    def _group(self, samples: List[dict], keys: Sequence[str]) -> Dict[str, Optional[float]]:
        """``keys`` of :func:`correlations` on ``samples``; all ``None`` below the minimum size."""
        return group_metrics(samples, keys, self.fit)


TABLE_COLUMNS = ('n', 'SRCC', 'KRCC', 'PLCC', 'RMSE')


def breakdown_table(results: Mapping, digits: int = 4) -> str:
    """A markdown table of an ``IQAMetric`` result: the overall row, then one row per
    group (``distortion/...``, ``region/...``); ``None`` values print as ``n/a``.

    Works with a metric ``prefix`` (the overall row is the one with ``num_samples``).
    Raw PLCC/RMSE and the invalid count follow the table as a note.
    """
    rows: Dict[str, Dict[str, Any]] = {}
    for key, value in results.items():
        head, _, name = key.rpartition('/')
        name = 'n' if name == 'num_samples' else name
        if name in TABLE_COLUMNS or name in ('PLCC_raw', 'RMSE_raw', 'num_invalid'):
            rows.setdefault(head, {})[name] = value
    overall = next((h for h, r in rows.items() if 'num_invalid' in r), '')

    def label(head: str) -> str:
        return 'overall' if head == overall else head[len(overall) + 1:] if overall else head

    body = [[label(head), *(cell(rows.get(head, {}).get(c), digits) for c in TABLE_COLUMNS)]
            for head in [overall] + [h for h in rows if h != overall]]
    lines = [markdown_table(['group', *TABLE_COLUMNS], body, [PLAIN] * (len(TABLE_COLUMNS) + 1))]
    note = rows.get(overall, {})
    lines.append('')
    lines.append(f"raw (no fit): PLCC {cell(note.get('PLCC_raw'), digits)}, "
                 f"RMSE {cell(note.get('RMSE_raw'), digits)}; "
                 f"invalid samples left out: {note.get('num_invalid', 0)}")
    return '\n'.join(lines)
