"""A training run from a config and the flags of ``tools/train.py``: its parser
(:func:`parse_args`), the config the flags make (:func:`build_config`) and the run (:func:`main`).

Single process, ``torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch``
(or ``tools/dist_train.sh CONFIG N``), on GPUs or CPUs (gloo) unchanged.
"""
import argparse
import os
from typing import Optional, Sequence

from mmengine.config import Config

from miqa.utils import setup_runtime
from miqa.utils.config import load_config, parse_runner_args


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a miqa model with mmengine')
    parser.add_argument('config', help='config file or packaged config name, e.g. configs/ra_miqa_cls.py '
                                           'or ra_miqa_cls')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='auto|PATH',
                        help="resume training: 'auto' (the default when the flag is bare) takes the "
                             'latest checkpoint in the work dir; or a checkpoint path')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale lr by total batch / auto_scale_lr.base_batch_size (256)')
    parser.add_argument('--batch-size', type=int, help='training batch size per process')
    parser.add_argument('--lr', type=float, help='base learning rate')
    parser.add_argument('--epochs', type=int, help='training epochs (schedulers follow)')
    parser.add_argument('--seed', type=int, help='random seed (default from the config)')
    parser.add_argument('--wandb', metavar='PROJECT',
                        help='also log to Weights & Biases (offline unless WANDB_MODE=online; '
                             'offline runs need no account: `wandb sync` uploads them later)')
    return parse_runner_args(parser, argv)


def build_config(args: argparse.Namespace) -> Config:
    """The config with the flags applied and the runtime set up (:func:`miqa.utils.setup_runtime`)."""
    cfg = load_config(args, batch_size=args.batch_size, lr=args.lr, epochs=args.epochs)
    if args.seed is not None:
        cfg.setdefault('randomness', {})['seed'] = args.seed
    if args.wandb:
        mode = os.environ.get('WANDB_MODE', 'offline')
        cfg.visualizer.vis_backends.append(
            dict(type='WandbVisBackend', init_kwargs=dict(project=args.wandb, mode=mode, dir=cfg.work_dir)))
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', dict(base_batch_size=256))['enable'] = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    return setup_runtime(cfg, args.launcher)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Parse ``argv`` (default ``sys.argv``), build the database when the config names one
    (``configs/demo/*``: built on first use, cached afterwards) and train."""
    from mmengine.runner import Runner

    cfg = build_config(parse_args(argv))
    if cfg.get('database'):
        from miqa.database import ensure_database  # the builder's machines load only when needed
        ensure_database(cfg.database, out=cfg.get('data_root'))
    Runner.from_cfg(cfg).train()
