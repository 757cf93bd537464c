"""Registries of miqa: children of mmengine's roots, scope ``miqa``.

Configs build components by ``type`` name; every registry knows the modules
that register into it (``locations``), so nothing needs a manual import. Packages
whose ``__init__`` is lazy (``miqa.models``, ``miqa.evaluation``) are listed by
module: a new module that registers something is added here
(``tests/test_registry.py`` checks it).
An unknown ``type`` fails with the closest registered names (did-you-mean).
"""
import difflib
from typing import List, Optional, Type

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry as _MMRegistry


class Registry(_MMRegistry):
    """mmengine ``Registry`` whose failed look-ups suggest close names.

    ``get`` raises ``KeyError`` (instead of returning ``None``) for a plain
    name that is registered neither here nor in an ancestor; mmengine's
    build path only reaches a child registry through ``get``, so every
    config build gets the suggestion. With ``case_insensitive=True`` a name
    that matches one registered name up to case finds it (``SCORERS``:
    ``'psnr'`` is ``'PSNR'``).
    """

    def __init__(self, *args, case_insensitive: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.case_insensitive = case_insensitive

    def known_names(self) -> List[str]:
        names, node = set(), self
        while node is not None:
            names.update(node.module_dict)
            node = node.parent
        return sorted(names)

    def get(self, key: str) -> Optional[Type]:
        obj = super().get(key)
        if obj is None and isinstance(key, str) and '.' not in key:
            names = self.known_names()
            if self.case_insensitive:  # 'psnr' finds 'PSNR' (pyiqa users type lower case)
                same = [n for n in names if n.lower() == key.lower()]
                if len(same) == 1:
                    return super().get(same[0])
                by_lower = {n.lower(): n for n in names}
                close = [by_lower[n] for n in difflib.get_close_matches(key.lower(), list(by_lower), n=5,
                                                                       cutoff=0.5)]
            else:
                close = difflib.get_close_matches(key, names, n=5, cutoff=0.5)
            hint = f' Did you mean: {", ".join(close)}?' if close else ''
            raise KeyError(f'{key!r} is not registered in {self.scope}::{self.name}.{hint} '
                           f'Registered here: {", ".join(sorted(self.module_dict)) or "(none)"}.')
        return obj


def _child(name: str, parent: _MMRegistry, locations: List[str]) -> Registry:
    return Registry(name, parent=parent, scope='miqa', locations=locations)


# runtime pieces
RUNNERS = _child('runner', MMENGINE_RUNNERS, ['miqa.engine'])
LOOPS = _child('loop', MMENGINE_LOOPS, ['miqa.engine'])
HOOKS = _child('hook', MMENGINE_HOOKS, ['miqa.engine'])
LOG_PROCESSORS = _child('log_processor', MMENGINE_LOG_PROCESSORS, ['miqa.engine'])
FUNCTIONS = _child('function', MMENGINE_FUNCTIONS, ['miqa.datasets.collate'])
DATA_SAMPLERS = _child('data sampler', MMENGINE_DATA_SAMPLERS, ['miqa.datasets'])
OPTIMIZERS = _child('optimizer', MMENGINE_OPTIMIZERS, ['miqa.engine'])
OPTIM_WRAPPERS = _child('optim_wrapper', MMENGINE_OPTIM_WRAPPERS, ['miqa.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, ['miqa.engine'])
PARAM_SCHEDULERS = _child('parameter scheduler', MMENGINE_PARAM_SCHEDULERS, ['miqa.engine'])
MODEL_WRAPPERS = _child('model_wrapper', MMENGINE_MODEL_WRAPPERS, ['miqa.engine'])
VISBACKENDS = _child('vis_backend', MMENGINE_VISBACKENDS, ['miqa.engine'])
VISUALIZERS = _child('visualizer', MMENGINE_VISUALIZERS, ['miqa.engine'])

# data, models, evaluation
DATASETS = _child('dataset', MMENGINE_DATASETS, ['miqa.datasets.miqd'])
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS, ['miqa.datasets.transforms'])
MODELS = _child('model', MMENGINE_MODELS, [f'miqa.models.{m}' for m in (
    'data_preprocessor', 'losses', 'ra_miqa', 'region_encoder', 'regressor')])
METRICS = _child('metric', MMENGINE_METRICS, ['miqa.evaluation.iqa_metric'])
EVALUATOR = _child('evaluator', MMENGINE_EVALUATOR, ['miqa.evaluation.iqa_metric'])
DISTORTIONS = Registry('distortion', scope='miqa', locations=['miqa.distortions'])
MACHINES = Registry('machine', scope='miqa', locations=[
    'miqa.database.machines', 'miqa.database.detector_adapter', 'miqa.database.detectors'])
SOURCES = Registry('source collector', scope='miqa', locations=['miqa.database.collectors',
                                                                 'miqa.database.sources'])
LABELLERS = Registry('labeller', scope='miqa', locations=['miqa.database.labels'])
PSEUDO_GT_RULES = Registry('pseudo ground truth rule', scope='miqa', locations=['miqa.database.pseudo_gt'])
SCORERS = Registry('hvs scorer', scope='miqa', locations=['miqa.hvs'], case_insensitive=True)
