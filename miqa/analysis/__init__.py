"""Analyses of quality predictions: the filtering experiment (spec §8) and per-group correlations.

* :mod:`.predictions` -- per-image prediction CSVs (``tools/test.py``, ``tools/benchmark_hvs.py``);
* :mod:`.filtering` -- filtering curves (model / oracle / random rankings); COCO AP on subsets is
  :class:`miqa.database.coco.CocoSubsetAP`;
* :mod:`.downstream` -- downstream machines run once per image with an output cache, ground truth;
* :mod:`.breakdown` -- SRCC/PLCC/KRCC/RMSE per distortion, region type and level;
* :mod:`.plots` -- the PNGs (matplotlib Agg);
* :mod:`.filter_eval` -- the filtering experiment end to end (``tools/filter_eval.py``).

The command-line tools are ``tools/filter_eval.py`` and ``tools/analyze.py``.
"""
from .breakdown import breakdown, compare
from .filtering import DEFAULT_FRACTIONS, filter_curve, filtering_curves, random_curves
from .predictions import read_named, read_predictions

__all__ = ['DEFAULT_FRACTIONS', 'breakdown', 'compare', 'filter_curve', 'filtering_curves',
           'random_curves', 'read_named', 'read_predictions']
