"""The optimizer-wrapper constructor: mmengine's optimizer, one log line for frozen parameters."""
import logging

import torch
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from miqa.engine.optim import MIQAOptimWrapperConstructor


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    model[0].requires_grad_(False)
    return model


def test_same_optimizer_and_one_summary_line():
    cfg = dict(optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3,
                                                                          weight_decay=0.1)),
               paramwise_cfg=dict(norm_decay_mult=0.0))
    logger = MMLogger.get_instance('test_optim_constructor')
    model = _model()
    logs = []
    for constructor in (MIQAOptimWrapperConstructor, DefaultOptimWrapperConstructor):
        capture = _Capture()
        logger.addHandler(capture)
        try:
            wrapper = constructor(**cfg)(model)
        finally:
            logger.removeHandler(capture)
        logs.append((wrapper, capture.messages))
    (ours, mine_log), (theirs, their_log) = logs
    mine = [(g['lr'], g['weight_decay'], [id(p) for p in g['params']]) for g in ours.optimizer.param_groups]
    ref = [(g['lr'], g['weight_decay'], [id(p) for p in g['params']]) for g in theirs.optimizer.param_groups]
    assert mine == ref and len(mine) == 4                  # 2 norm (no decay) + 2 linear tensors
    assert sum('is skipped since' in m for m in their_log) == 2     # mmengine: one line per tensor
    assert sum('paramwise_options --' in m for m in their_log) == 2  # and one per decay-free norm tensor
    assert not any('is skipped since' in m or 'paramwise_options' in m for m in mine_log)
    assert [m for m in mine_log if m.startswith('optimizer:')] == [
        'optimizer: 25 trainable values in 4 tensors; 2 frozen tensors (40 values) are not optimised']
