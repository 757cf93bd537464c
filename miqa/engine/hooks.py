"""Checkpointing that stays correct when validation also runs inside an epoch."""
from mmengine.hooks import CheckpointHook

from miqa.registry import HOOKS


@HOOKS.register_module()
class MultiValCheckpointHook(CheckpointHook):
    """``CheckpointHook`` for :class:`~miqa.engine.loops.MultiValEpochBasedTrainLoop`.

    mmengine's hook, after a new best score, re-saves the latest *epoch* checkpoint so that
    it records the best score. After a mid-epoch validation that would overwrite
    ``epoch_<k>.pth`` with a half-trained epoch ``k+1`` (and ``--resume`` would then replay
    iterations with a shifted schedule). Here a mid-epoch best is saved as
    ``best_<key>_iter_<n>.pth`` and the epoch checkpoint is left alone; the best score still
    reaches the next epoch checkpoint through the message hub.
    """

    def after_val_epoch(self, runner, metrics):
        loop = getattr(runner, '_train_loop', None)
        if not getattr(loop, 'in_mid_epoch_val', False):
            return super().after_val_epoch(runner, metrics)
        by_epoch, last_ckpt = self.by_epoch, self.last_ckpt
        self.by_epoch, self.last_ckpt = False, None  # iteration naming, no epoch re-save
        try:
            return super().after_val_epoch(runner, metrics)
        finally:
            self.by_epoch, self.last_ckpt = by_epoch, last_ckpt
