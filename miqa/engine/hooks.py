"""Checkpointing that stays correct when validation also runs inside an epoch, and after a crash;
hook options that are checked when the hook is built."""
import difflib
import functools
import inspect
from typing import Any, Callable, Iterable, List, Set, Type

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from miqa.registry import HOOKS
from miqa.utils.io import remove_temporaries

from .log_filters import DropLines

#: mmengine's deprecation notices from ``CheckpointHook.before_train`` and ``Runner.save_checkpoint``
#: (both always build a FileClient), dropped from the run's log
_FILE_CLIENT_NOTICES = ('"FileClient" will be deprecated', '"HardDiskBackend" is the alias')


def init_options(cls: Type) -> Set[str]:
    """Keyword options ``cls(...)`` accepts: the named parameters of every ``__init__`` along the
    MRO down to the first one without ``**kwargs``."""
    names: Set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names.update(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    names.discard('self')
    return names


def strict_options(extra: Callable[[], Iterable[str]] = tuple) -> Callable[[Type], Type]:
    """Class decorator: an unknown keyword option of the hook raises ``TypeError`` when the hook is
    built (the Runner builds hooks at start-up), naming the closest known options (did-you-mean)
    instead of failing later, e.g. at the first checkpoint save. ``extra()`` adds options that
    reach ``**kwargs`` legitimately."""
    def decorate(cls: Type) -> Type:
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            known = init_options(cls) | set(extra())
            unknown = sorted(k for k in kwargs if k not in known)
            if unknown:
                raise TypeError(unknown_options_message(cls.__name__, unknown, known))
            init(self, *args, **kwargs)

        cls.__init__ = __init__
        return cls
    return decorate


def unknown_options_message(owner: str, unknown: List[str], known: Iterable[str]) -> str:
    known = sorted(known)
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hints.append(f'{name!r}' + (f' (did you mean {", ".join(map(repr, close))}?)' if close else ''))
    return f'{owner}: unknown option(s) {", ".join(hints)}. Options: {", ".join(known)}.'


def _save_checkpoint_extras() -> Set[str]:
    """Options of ``CheckpointHook`` that go through ``**kwargs`` to ``Runner.save_checkpoint``:
    its parameters that the hook does not pass itself (none for mmengine 0.10.7's Runner)."""
    from mmengine.runner import Runner

    passed = {'self', 'out_dir', 'filename', 'file_client_args', 'save_optimizer', 'save_param_scheduler',
              'meta', 'by_epoch', 'backend_args'}
    return set(inspect.signature(Runner.save_checkpoint).parameters) - passed


class _DeferRemovals:
    """A file backend whose ``remove`` / ``rmtree`` are recorded, not done (the rest passes through)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.deferred: List[tuple] = []

    def remove(self, path: Any) -> None:
        self.deferred.append(('remove', path))

    def rmtree(self, path: Any) -> None:
        self.deferred.append(('rmtree', path))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


@HOOKS.register_module()
@strict_options(_save_checkpoint_extras)
class MultiValCheckpointHook(CheckpointHook):
    """``CheckpointHook`` for :class:`~miqa.engine.loops.MultiValEpochBasedTrainLoop`, safe after a crash.

    mmengine's hook, after a new best score, re-saves the latest *epoch* checkpoint so that
    it records the best score. After a mid-epoch validation that would overwrite
    ``epoch_<k>.pth`` with a half-trained epoch ``k+1`` (and ``--resume`` would then replay
    iterations with a shifted schedule). Here a mid-epoch best is saved as
    ``best_<key>_iter_<n>.pth`` and the epoch checkpoint is left alone; the best score still
    reaches the next epoch checkpoint through the message hub.

    Crash safety: every checkpoint is written to a temporary file and renamed (the tools make
    mmengine's local writes atomic, :func:`miqa.utils.setup_env.patch_checkpoint_io`), and the
    previous best is deleted only after the new best is complete, so a kill at any moment leaves
    whole files only (at worst the old and the new best side by side; the next new best removes
    the old one). Temporaries a killed run left in the work dir are deleted at the next start.
    When a validation follows an epoch (iteration) checkpoint, the checkpoint is saved after it:
    mmengine saves it before, and ``--resume`` from it never replays that validation, so a kill
    during the validation or the best write would lose that best for good; saved after, a resume
    replays the epoch and its validation and ends with the same files as an uninterrupted run.
    Options are checked when the hook is built: a typo fails at start-up with a did-you-mean.
    """

    _pending = None  # (step, meta) of an epoch/iteration checkpoint deferred until after validation

    def _validation_follows(self, runner, step: int) -> bool:
        """Whether the train loop validates right after finishing ``step`` (epoch or iteration)."""
        loop = runner.train_loop
        last = getattr(loop, 'max_epochs' if self.by_epoch else 'max_iters', None)
        interval = getattr(loop, 'val_interval', None)
        return (runner.val_loop is not None and interval is not None and step >= getattr(loop, 'val_begin', 1)
                and (step % interval == 0 or step == last))

    def after_train_epoch(self, runner) -> None:
        step = runner.epoch + 1
        if self.by_epoch and self._validation_follows(runner, step) and (
                self.every_n_epochs(runner, self.interval, self.save_begin)
                or (self.save_last and self.is_last_train_epoch(runner))):
            self._pending = (step, dict(epoch=step, iter=runner.iter))
            return
        super().after_train_epoch(runner)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        step = runner.iter + 1
        if not self.by_epoch and self._validation_follows(runner, step) and (
                self.every_n_train_iters(runner, self.interval, self.save_begin)
                or (self.save_last and self.is_last_train_iter(runner))):
            self._pending = (step, dict(epoch=runner.epoch, iter=step))
            return
        super().after_train_iter(runner, batch_idx, data_batch, outputs)

    def _save_pending(self, runner) -> None:
        if self._pending is not None:
            (step, meta), self._pending = self._pending, None
            runner.logger.info(f'Saving checkpoint at {step} {"epochs" if self.by_epoch else "iterations"}')
            self._save_checkpoint_with_step(runner, step, meta)

    def before_train_epoch(self, runner) -> None:  # the predicted validation did not run
        self._save_pending(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._save_pending(runner)

    def after_train(self, runner) -> None:
        self._save_pending(runner)
        super().after_train(runner)

    def before_train(self, runner) -> None:
        runner.logger.addFilter(DropLines(_FILE_CLIENT_NOTICES))  # for the whole run: every save logs them
        super().before_train(runner)
        if is_main_process() and self.file_backend.name == 'LocalBackend':
            removed = [path for pattern in ('*.pth', 'last_checkpoint')
                       for path in remove_temporaries(self.out_dir, pattern)]
            if removed:
                runner.logger.info(f'removed {len(removed)} partial checkpoint(s) of an interrupted run: '
                                   + ', '.join(removed))

    def after_val_epoch(self, runner, metrics):
        loop = getattr(runner, '_train_loop', None)
        if not getattr(loop, 'in_mid_epoch_val', False):
            if self._pending is None:
                return super().after_val_epoch(runner, metrics)
            last_ckpt, self.last_ckpt = self.last_ckpt, None  # no re-save of the previous checkpoint
            try:
                super().after_val_epoch(runner, metrics)  # the best first, then the checkpoint recording it
            finally:
                self.last_ckpt = last_ckpt
            return self._save_pending(runner)
        by_epoch, last_ckpt, tmpl = self.by_epoch, self.last_ckpt, self.filename_tmpl
        # iteration naming, no epoch re-save
        self.by_epoch, self.last_ckpt, self.filename_tmpl = False, None, 'iter_{}.pth'
        try:
            return super().after_val_epoch(runner, metrics)
        finally:
            self.by_epoch, self.last_ckpt, self.filename_tmpl = by_epoch, last_ckpt, tmpl

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """mmengine's best-checkpoint logic with its deletions moved after the new file is complete."""
        backend = self.file_backend
        deferring = _DeferRemovals(backend)
        self.file_backend = deferring
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
        keep = {str(p) for p in ([getattr(self, 'best_ckpt_path', None)]
                                 + list(getattr(self, 'best_ckpt_path_dict', {}).values())) if p}
        for action, path in deferring.deferred:
            if str(path) not in keep:
                getattr(backend, action)(path)
