"""Evaluation: correlation metrics (pure functions) and the mmengine ``IQAMetric``.

Names are imported on first use, so ``import miqa.evaluation.functional`` needs only numpy and
scipy; the ``METRICS`` registry imports :mod:`.iqa_metric` (its location) when a config builds one.
"""
from miqa.utils.lazy import lazy_exports

_EXPORTS = {**dict.fromkeys(('srcc', 'plcc', 'krcc', 'rmse', 'correlations', 'fit_mapping'), 'functional'),
            'IQAMetric': 'iqa_metric', 'breakdown_table': 'iqa_metric'}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
