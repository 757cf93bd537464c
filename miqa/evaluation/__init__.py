"""Evaluation: correlation metrics (pure functions) and the mmengine ``IQAMetric``."""
from .functional import correlations, fit_mapping, krcc, plcc, rmse, srcc
from .iqa_metric import IQAMetric, breakdown_table

__all__ = ['srcc', 'plcc', 'krcc', 'rmse', 'correlations', 'fit_mapping', 'IQAMetric', 'breakdown_table']
