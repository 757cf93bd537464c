"""``IQAMetric``: SRCC / KRCC / PLCC / RMSE over the whole gathered evaluation set."""
import logging
import math
from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from miqa.registry import METRICS

from .functional import FITS, correlations

#: per-sample fields kept by ``process`` -> converter to a plain Python value
REQUIRED_FIELDS: Dict[str, Callable[[Any], Any]] = {'pred_score': float, 'gt_score': float, 'sample_idx': int}
OPTIONAL_FIELDS: Dict[str, Callable[[Any], Any]] = {
    'valid': bool, 'distortion': str, 'region': str, 'fg_level': int, 'bg_level': int,
    'src_id': str, 'img_path': str}
#: dataset region code -> name used in reports (uniform, ROI-dominated, background-dominated)
REGION_NAMES = {'UD': 'UD', 'ROI': 'ROI-DD', 'BG': 'BG-DD'}
#: sample field -> key group of the breakdown, with how a value is named in keys
BREAKDOWNS: Dict[str, Callable[[str], str]] = {
    'distortion': lambda name: name,
    'region': lambda code: REGION_NAMES.get(code, code),
}
OVERALL_METRICS = ('SRCC', 'KRCC', 'PLCC', 'RMSE', 'PLCC_raw', 'RMSE_raw')
GROUP_METRICS = ('SRCC', 'PLCC', 'KRCC', 'RMSE')
#: a group (or the whole set) with fewer usable samples reports ``None`` values ("n/a")
MIN_GROUP_SIZE = 3


def _to_plain(value: Any, convert: Callable[[Any], Any]) -> Any:
    """A tensor / numpy scalar / Python value as a plain Python value on the CPU."""
    if hasattr(value, 'item') and convert is not str:
        value = value.item()
    return convert(value)


def _usable(sample: dict) -> bool:
    return sample.get('valid', True) and math.isfinite(sample['pred_score']) \
        and math.isfinite(sample['gt_score'])


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

    default_prefix: Optional[str] = None

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
        usable = [s for s in samples if _usable(s)]
        num_invalid = len(samples) - len(usable)
        if num_invalid:
            print_log(f'IQAMetric: {num_invalid} of {len(samples)} samples are invalid (unreadable '
                      'image or non-finite score) and left out', logger='current', level=logging.WARNING)

        metrics: Dict[str, Any] = self._group(usable, OVERALL_METRICS)
        metrics.update(num_samples=len(usable), num_invalid=num_invalid)
        if self.breakdown:
            for field, name_of in BREAKDOWNS.items():
                groups: Dict[str, List[dict]] = {}
                for s in usable:
                    if field in s:
                        groups.setdefault(name_of(s[field]), []).append(s)
                for name in sorted(groups, key=_group_order(field)):
                    group = groups[name]
                    values = self._group(group, GROUP_METRICS)
                    metrics.update({f'{field}/{name}/{k}': v for k, v in values.items()})
                    metrics[f'{field}/{name}/n'] = len(group)
        return metrics

    def _group(self, samples: List[dict], keys: Sequence[str]) -> Dict[str, Optional[float]]:
        """``keys`` of :func:`correlations` on ``samples``; all ``None`` below the minimum size."""
        if len(samples) < MIN_GROUP_SIZE:
            return dict.fromkeys(keys)
        values = correlations([s['pred_score'] for s in samples], [s['gt_score'] for s in samples], self.fit)
        return {k: values[k] for k in keys}


def _group_order(field: str) -> Callable[[str], tuple]:
    """Regions in report order (UD, ROI-DD, BG-DD, then others); anything else by name."""
    order = list(REGION_NAMES.values()) if field == 'region' else []
    return lambda name: (order.index(name) if name in order else len(order), name)


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

    def cell(value: Any) -> str:
        if value is None:
            return 'n/a'
        return str(value) if isinstance(value, int) else f'{value:.{digits}f}'

    def label(head: str) -> str:
        return 'overall' if head == overall else head[len(overall) + 1:] if overall else head

    lines = ['| group | ' + ' | '.join(TABLE_COLUMNS) + ' |', '|---' * (len(TABLE_COLUMNS) + 1) + '|']
    for head in [overall] + [h for h in rows if h != overall]:
        row = rows.get(head, {})
        lines.append(f'| {label(head)} | ' + ' | '.join(cell(row.get(c)) for c in TABLE_COLUMNS) + ' |')
    note = rows.get(overall, {})
    lines.append('')
    lines.append(f"raw (no fit): PLCC {cell(note.get('PLCC_raw'))}, RMSE {cell(note.get('RMSE_raw'))}; "
                 f"invalid samples left out: {note.get('num_invalid', 0)}")
    return '\n'.join(lines)
