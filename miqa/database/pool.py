"""The builder's process pool: sources rendered (and labelled) in workers, records as they finish.

``label_in='worker'``: each worker makes its own labeller and builds whole sources;
``label_in='main'`` (or one worker): workers render, the main process labels with one
labeller. Workers start with :data:`~miqa.database.settings.DEFAULT_START_METHOD`, one thread
each, and exit with their parent.
"""
import json
import multiprocessing as mp
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import cv2

from miqa.utils.io import atomic_write_text
from miqa.utils.processes import exit_with_parent

from .labelling import build_source, label_source, write_record
from .render import Prepared, prepare_source
from .settings import DEFAULT_START_METHOD, Plan, plain

_WORKER: Dict[str, Any] = {}


def _limit_threads() -> None:
    cv2.setNumThreads(1)
    if 'torch' in sys.modules:
        sys.modules['torch'].set_num_threads(1)


def init_worker(plan: Plan, labeller_factory: Optional[Callable[[], Any]]) -> None:
    """Pool initializer: one thread, the plan and (``label_in='worker'``) a labeller of its own."""
    exit_with_parent('build worker')  # a killed build leaves no worker writing into the folder
    _limit_threads()
    _WORKER.update(plan=plan, labeller=labeller_factory() if labeller_factory else None, described=False)
    _limit_threads()  # again: the labeller may have imported torch


def _work_full(src: Mapping[str, Any]) -> Tuple[Dict[str, Any], Optional[dict]]:
    record = build_source(_WORKER['plan'], _WORKER['labeller'], src)
    description = None
    if not _WORKER['described']:
        description, _WORKER['described'] = _describe(_WORKER['labeller']), True
    return record, description


def _work_prepare(src: Mapping[str, Any]) -> Prepared:
    return prepare_source(_WORKER['plan'], src)


def _describe(labeller: Any) -> dict:
    describe = getattr(labeller, 'describe', None)
    return plain(describe()) if describe else dict(type=type(labeller).__name__)


def _save_description(plan: Plan, description: dict) -> None:
    path = Path(plan.state_dir) / 'labeller.json'
    text = json.dumps(description, indent=1, sort_keys=True)
    if not path.exists() or path.read_text() != text:
        atomic_write_text(str(path), text)


def _bounded(pool: Any, fn: Callable, jobs: Sequence, window: int) -> Iterator:
    """``pool.apply_async`` over ``jobs`` with at most ``window`` in flight; results in job order."""
    pending: deque = deque()
    jobs_iter = iter(jobs)
    for job in jobs_iter:
        pending.append(pool.apply_async(fn, (job,)))
        if len(pending) >= window:
            break
    while pending:
        result = pending.popleft().get()
        for job in jobs_iter:
            pending.append(pool.apply_async(fn, (job,)))
            break
        yield result


def default_labeller_factory(labeller_cfg: Any) -> Callable[[], Any]:
    """``() -> build_labeller(labeller_cfg)`` (``miqa.database.labels``), picklable."""
    if labeller_cfg is None:
        raise ValueError('the build config needs `labeller` (see configs/build/README.md)')
    return _LabellerFactory(labeller_cfg)


@dataclass(frozen=True)
class _LabellerFactory:
    cfg: Any

    def __call__(self) -> Any:
        from miqa.database.labels import build_labeller

        return build_labeller(self.cfg)


def run_sources(plan: Plan, factory: Callable[[], Any], todo: List[dict], workers: int,
                settings: Mapping[str, Any], progress: bool, desc: str) -> Iterator[Dict[str, Any]]:
    """Records of the ``todo`` sources as they finish (labelled in workers or here, see ``label_in``)."""
    from tqdm import tqdm

    if not todo:
        return
    label_here = settings['label_in'] == 'main' or workers <= 1
    labeller = factory() if label_here else None
    if labeller is not None:
        _save_description(plan, _describe(labeller))
    bar = tqdm(total=len(todo), desc=f'build {desc}', unit='src', disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1:
            for src in todo:
                yield build_source(plan, labeller, src)
                bar.update()
            return
        ctx = mp.get_context(settings['start_method'] or DEFAULT_START_METHOD)
        if ctx.get_start_method() == 'forkserver':
            ctx.set_forkserver_preload([__name__])
        worker_factory = None if label_here else factory
        with ctx.Pool(workers, initializer=init_worker, initargs=(plan, worker_factory)) as pool:
            if label_here:
                for prepared in _bounded(pool, _work_prepare, todo, 2 * workers):
                    if prepared.record['status'] == 'finished':
                        label_source(plan, labeller, prepared)
                    else:
                        write_record(plan, prepared.record)
                    bar.update()
                    yield prepared.record
            else:
                for record, description in pool.imap_unordered(_work_full, todo):
                    if description is not None:
                        _save_description(plan, description)
                    bar.update()
                    yield record
    finally:
        bar.close()


__all__ = ['default_labeller_factory', 'init_worker', 'run_sources']
