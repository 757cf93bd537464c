"""The optimizer-wrapper constructor of every miqa config: mmengine's, with a readable log.

mmengine's ``DefaultOptimWrapperConstructor`` logs one warning per frozen parameter tensor ("...
is skipped since its requires_grad=False": 150 lines for RA-MIQA's frozen region encoder and
frozen stem) and one line per parameter that a paramwise rule touches ("paramwise_options --
..."), drowning the progress bars and losses a user looks for. This constructor builds the same
optimizer (same groups, same paramwise rules) and logs one line: how many tensors and values are
frozen, and how many are trained.
"""
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from miqa.registry import OPTIM_WRAPPER_CONSTRUCTORS

from .log_filters import dropped_log_lines

#: per-parameter lines of mmengine's constructor, summarised by :class:`MIQAOptimWrapperConstructor`
_PER_PARAMETER = ('is skipped since its requires_grad=False', 'paramwise_options -- ')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MIQAOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` that summarises frozen parameters in one log line."""

    def __call__(self, model):
        with dropped_log_lines(*_PER_PARAMETER):
            wrapper = super().__call__(model)
        params = list(getattr(model, 'module', model).parameters())
        frozen = [p for p in params if not p.requires_grad]
        print_log(f'optimizer: {sum(p.numel() for p in params) - sum(p.numel() for p in frozen):,} '
                  f'trainable values in {len(params) - len(frozen)} tensors; {len(frozen)} frozen tensors '
                  f'({sum(p.numel() for p in frozen):,} values) are not optimised', logger='current')
        return wrapper
