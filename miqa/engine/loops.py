"""Training loop with validation several times per epoch (spec §6: twice per epoch)."""
from typing import Sequence

from mmengine.runner import EpochBasedTrainLoop

from miqa.registry import LOOPS


@LOOPS.register_module()
class MultiValEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that also validates at evenly spaced points inside each epoch.

    Use it with :class:`~miqa.engine.hooks.MultiValCheckpointHook` (the default runtime does),
    which keeps mid-epoch best checkpoints from overwriting the epoch checkpoints.

    Args:
        val_per_epoch: validations per epoch; the last one is the usual end-of-epoch
            validation (governed by ``val_begin``/``val_interval``), the others run after
            iterations ``k * len(dataloader) // val_per_epoch``. ``1`` is plain mmengine.
    """

    def __init__(self, runner, dataloader, max_epochs: int, val_per_epoch: int = 2, **kwargs) -> None:
        super().__init__(runner, dataloader, max_epochs, **kwargs)
        if val_per_epoch < 1:
            raise ValueError(f'val_per_epoch must be >= 1, got {val_per_epoch}')
        n = len(self.dataloader)
        self.mid_epoch_points = {k * n // val_per_epoch for k in range(1, val_per_epoch)} - {0, n}
        self.in_mid_epoch_val = False  # read by MultiValCheckpointHook

    def run_iter(self, idx, data_batch: Sequence[dict]) -> None:
        super().run_iter(idx, data_batch)
        if (idx + 1) in self.mid_epoch_points and self.runner.val_loop is not None \
                and self._epoch + 1 >= self.val_begin:
            self.in_mid_epoch_val = True
            try:
                self.runner.val_loop.run()
            finally:
                self.in_mid_epoch_val = False
            self.runner.model.train()  # ValLoop leaves the model in eval mode
