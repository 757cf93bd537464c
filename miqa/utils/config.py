"""Command-line conveniences mapped onto a loaded mmengine ``Config``.

The data root is one variable: ``data_root`` at the top of the dataset base config. It is
copied into every dataloader's dataset when the config is parsed, so overriding it later
(``--data-root`` or ``--cfg-options data_root=...``) must re-apply it to the datasets; that
is what :func:`apply_overrides` does.
"""
import argparse
import logging
import os
import os.path as osp
from typing import Optional, Sequence

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from miqa.vocab import split_file_name

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _datasets(cfg: Config):
    for key in DATALOADERS:
        loader = cfg.get(key)
        if loader and loader.get('dataset') is not None:
            dataset = loader['dataset']
            # wrappers such as ConcatDataset/RepeatDataset keep theirs under dataset(s)
            inner = dataset.get('datasets') or [dataset.get('dataset', dataset)]
            yield from inner


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point every dataset of ``cfg`` (train/val/test) at ``data_root``."""
    cfg.data_root = data_root
    for dataset in _datasets(cfg):
        dataset['data_root'] = data_root


def set_max_epochs(cfg: Config, epochs: int) -> None:
    """Change the training length; epoch-based schedulers that ended at the old length (or
    past the new one) end at the new one, and those that would begin after it are dropped
    (e.g. ``--epochs 1`` keeps only the warm-up)."""
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs
    kept = []
    for sched in cfg.get('param_scheduler') or []:
        if not sched.get('by_epoch', True):
            kept.append(sched)
            continue
        if sched.get('begin', 0) >= epochs:
            print_log(f'--epochs {epochs}: dropping {sched["type"]} (begins at epoch {sched["begin"]})',
                      logger='current', level=logging.WARNING)
            continue
        if sched.get('end') == old or (sched.get('end') or 0) > epochs:
            sched['end'] = epochs
            if 'T_max' in sched:
                sched['T_max'] = epochs - sched.get('begin', 0)
        kept.append(sched)
    if cfg.get('param_scheduler') is not None:
        cfg.param_scheduler = kept


def set_split_dir(cfg: Config, split_dir: str) -> None:
    """Every MIQD dataset of ``cfg`` reads its split from ``<split_dir>/miqa_<cls|det>_<split>.csv``
    (the official file names; e.g. the repeated splits of ``tools/build_miqd.py --resplit``)."""
    for dataset in _datasets(cfg):
        task, split = dataset.get('task', 'cls'), dataset.get('split', 'train')
        dataset['split_file'] = osp.join(split_dir, split_file_name(task, split))


def apply_overrides(cfg: Config, data_root: Optional[str] = None, batch_size: Optional[int] = None,
                    lr: Optional[float] = None, epochs: Optional[int] = None,
                    work_dir: Optional[str] = None, split_dir: Optional[str] = None) -> Config:
    """Apply the convenience flags of ``tools/train.py``/``tools/test.py`` in place.

    ``batch_size`` is per process (the total is ``batch_size * world_size``, spec §6 uses 2x128).
    A ``data_root`` given through ``--cfg-options`` is propagated like ``--data-root``.
    """
    root = data_root or cfg.get('data_root')
    if root is not None:
        set_data_root(cfg, root)
    if split_dir is not None:
        set_split_dir(cfg, split_dir)
    if batch_size is not None:
        cfg.train_dataloader.batch_size = batch_size
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = lr
    if epochs is not None:
        set_max_epochs(cfg, epochs)
    if work_dir is not None:
        cfg.work_dir = work_dir
    return cfg


def add_runner_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options every Runner-based tool shares (work dir, data root, overrides, launcher)."""
    parser.add_argument('--work-dir', help='output folder (default: work_dirs/<config name>)')
    parser.add_argument('--data-root', help='folder holding miqa_cls/, miqa_det/, miqa_ins/')
    parser.add_argument('--split-dir', help='read the train/val split CSVs (official names) from this folder')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. model.head_dropout=0.1 data_root=/data/miqd')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def parse_runner_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None):
    args = add_runner_args(parser).parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(args, **overrides) -> Config:
    """``Config.fromfile`` + ``--cfg-options`` + launcher + work dir (default
    ``work_dirs/<config name>``) + :func:`apply_overrides` (``--data-root`` and ``overrides``).
    ``args.config`` is a path or a packaged config's name (:func:`miqa.utils.paths.resolve_config`)."""
    from miqa.utils.paths import resolve_config
    cfg = Config.fromfile(resolve_config(args.config))
    cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    return apply_overrides(cfg, data_root=args.data_root, work_dir=work_dir,
                           split_dir=getattr(args, 'split_dir', None), **overrides)
