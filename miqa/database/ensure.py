"""Build-on-first-use: make sure a training config's database exists before training.

A training config names the build config of its database in a top-level ``database`` key::

    data_root = 'data/miqd_mini_demo'
    database = dict(build_config='configs/build/miqd_mini_demo.py', out_root=data_root)

and ``tools/train.py`` calls :func:`ensure_database` before building the runner. The first
run builds (or resumes) the database; later runs find its manifest finalized with the same
parameters and every available source finished, and return at once (cached).
"""
import logging
import os
import time
from typing import Mapping, Optional, Union

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from miqa.utils.io import read_json
from miqa.utils.paths import resolve_config

from .builder import build_database
from .collectors import collect_sources
from .manifest import BuildConflict, finalize_database
from .settings import build_params, build_settings, manifest_path

#: Keys of the ``database`` dict besides ``build_config``.
ENSURE_KEYS = ('out_root', 'workers', 'cfg_options')


def _find_config(path: Union[str, os.PathLike]) -> str:
    """``path`` as given (relative to the working directory), else a packaged build config."""
    try:
        return resolve_config(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f'build config not found: {err}') from None


def load_build_config(spec: Union[str, os.PathLike, Mapping, Config]) -> Config:
    """The build ``Config`` of ``spec``: a build-config path, a build ``Config``, or a training
    config's ``database`` dict ``dict(build_config=PATH, out_root=None, workers=None,
    cfg_options=None)`` (``out_root`` and ``cfg_options`` override the build config)."""
    if isinstance(spec, Config):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        return Config.fromfile(_find_config(spec))
    spec = dict(spec.to_dict() if isinstance(spec, ConfigDict) else spec)
    if 'build_config' not in spec:
        raise KeyError('database=dict(build_config=PATH, ...) needs build_config (a configs/build/*.py file)')
    unknown = sorted(set(spec) - {'build_config', *ENSURE_KEYS})
    if unknown:
        raise KeyError(f'database: unknown keys {unknown}; known: build_config, {", ".join(ENSURE_KEYS)}')
    cfg = Config.fromfile(_find_config(spec['build_config']))
    cfg.merge_from_dict(dict(spec.get('cfg_options') or {}))
    for key in ('out_root', 'workers'):
        if spec.get(key) is not None:
            cfg[key] = spec[key]
    return cfg


def database_status(cfg: Config, out: Optional[str] = None) -> dict:
    """``dict(out, task, cached, reason)``: ``cached`` when the folder's manifest is finalized
    with ``cfg``'s parameters and every source the config collects is finished (or unreadable, or
    left out by the labeller)."""
    settings = build_settings(cfg, out)
    out, task = settings['out_root'], settings['task']
    manifest = read_json(manifest_path(out, task))
    status = dict(out=out, task=task, cached=False)
    if manifest is None:
        return dict(status, reason='no database yet')
    if manifest.get('params') != build_params(settings):
        return dict(status, reason='built with other parameters')
    if manifest.get('status') != 'finalized':
        return dict(status, reason='build unfinished')
    known = set(manifest.get('finished', [])) | {u['src_id'] for u in manifest.get('unreadable', [])} \
        | {u['src_id'] for u in manifest.get('excluded', [])}
    missing = [s['src_id'] for s in collect_sources(settings['sources']) if s['src_id'] not in known]
    if missing:
        return dict(status, reason=f'{len(missing)} source(s) not built yet ({", ".join(missing[:5])})')
    return dict(status, cached=True, reason='finalized')


def ensure_database(spec: Union[str, os.PathLike, Mapping, Config], out: Optional[str] = None,
                    workers: Optional[int] = None, force: bool = False, progress: bool = True,
                    wait_timeout: float = 24 * 3600.0) -> str:
    """Build (or resume) the database of ``spec`` unless it is finished; return its folder.

    Args:
        spec: see :func:`load_build_config` (a path, a build ``Config``, or a training config's
            ``database`` dict).
        out: output folder (default: the build config's ``out_root``).
        workers: build processes (default: the ``database`` dict's, the build config's, or the
            CPU count).
        force: passed to :func:`~miqa.database.builder.build_database` (rebuild a folder built
            with other parameters). Without it such a folder raises ``BuildConflict``.
        wait_timeout: under ``torchrun`` only rank 0 builds; the other ranks wait (poll) this
            many seconds for the finalized manifest.
    """
    cfg = load_build_config(spec)
    status = database_status(cfg, out)
    out = status['out']
    if status['cached']:
        print_log(f'database {out} ({status["task"]}): finished, using it', logger='current')
        return out
    rank = int(os.environ.get('RANK', os.environ.get('LOCAL_RANK', '0')) or 0)
    if rank != 0:
        deadline = time.monotonic() + wait_timeout
        while not database_status(cfg, out)['cached']:
            if time.monotonic() > deadline:
                raise TimeoutError(f'rank {rank}: database {out} not finished after {wait_timeout:.0f} s')
            time.sleep(5.0)
        return out
    if status['reason'] == 'built with other parameters' and not force:
        raise BuildConflict(f'{out} holds a {status["task"]} database built with other parameters than '
                            'the training config\'s build config: point data_root and '
                            'database.out_root at another folder, or rebuild it with '
                            '`python tools/build_miqd.py BUILD_CONFIG --force`')
    print_log(f'database {out} ({status["task"]}): {status["reason"]}; building it (resumable: '
              'interrupt and rerun at any time)', logger='current', level=logging.WARNING)
    summary = build_database(cfg, out, workers=workers, force=force, progress=progress)
    if not summary.finalized:  # pragma: no cover (one shard always finalizes)
        finalize_database(cfg, out)
    print_log(f'database {out}: built {summary.built} source(s), {summary.skipped_finished} already '
              f'finished, {len(summary.unreadable)} unreadable, {summary.excluded} left out by the labeller, '
              f'in {summary.seconds:.0f} s', logger='current')
    return out


def source_groups(data_root: str, task: str = 'cls') -> dict:
    """src_id -> photo group from the database manifest (crops and near-duplicate shots of one
    photo share a group); empty for a database without one (every source its own group)."""
    sources = (read_json(manifest_path(data_root, task)) or {}).get('sources', {})
    return {s: r.get('group') or s for s, r in sources.items()}
