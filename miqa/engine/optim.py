"""The optimizer-wrapper constructor of every miqa config: mmengine's, with a readable log.

mmengine's ``DefaultOptimWrapperConstructor`` logs one warning per frozen parameter tensor ("...
is skipped since its requires_grad=False"): 150 lines for RA-MIQA's frozen region encoder and
frozen stem, drowning the progress bars and losses a user looks for. This constructor builds the
same optimizer (same groups, same paramwise rules) and logs one line: how many tensors and values
are frozen, and how many are trained.
"""
import logging

from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from miqa.registry import OPTIM_WRAPPER_CONSTRUCTORS

_FROZEN_MESSAGE = 'is skipped since its requires_grad=False'


class _DropFrozenNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _FROZEN_MESSAGE not in record.getMessage()


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MIQAOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` that summarises frozen parameters in one log line."""

    def __call__(self, model):
        logger = MMLogger.get_current_instance()
        quiet = _DropFrozenNotices()
        logger.addFilter(quiet)
        try:
            wrapper = super().__call__(model)
        finally:
            logger.removeFilter(quiet)
        params = list(getattr(model, 'module', model).parameters())
        frozen = [p for p in params if not p.requires_grad]
        print_log(f'optimizer: {sum(p.numel() for p in params) - sum(p.numel() for p in frozen):,} '
                  f'trainable values in {len(params) - len(frozen)} tensors; {len(frozen)} frozen tensors '
                  f'({sum(p.numel() for p in frozen):,} values) are not optimised', logger='current')
        return wrapper
