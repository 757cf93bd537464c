"""Train a quality model: ``python tools/train.py CONFIG [options]``.

Single process, ``torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch``
(or ``tools/dist_train.sh CONFIG N``), on GPUs or CPUs (gloo) unchanged.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from miqa.utils import apply_overrides, setup_runtime


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a miqa model with mmengine')
    parser.add_argument('config', help='config file, e.g. configs/ra_miqa_cls.py')
    parser.add_argument('--work-dir', help='output folder (default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='auto|PATH',
                        help="resume training: 'auto' (the default when the flag is bare) takes the "
                             'latest checkpoint in the work dir; or a checkpoint path')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale lr by total batch / auto_scale_lr.base_batch_size (256)')
    parser.add_argument('--data-root', help='folder holding miqa_cls/, miqa_det/, miqa_ins/')
    parser.add_argument('--batch-size', type=int, help='training batch size per process')
    parser.add_argument('--lr', type=float, help='base learning rate')
    parser.add_argument('--epochs', type=int, help='training epochs (schedulers follow)')
    parser.add_argument('--seed', type=int, help='random seed (default from the config)')
    parser.add_argument('--wandb', metavar='PROJECT',
                        help='also log to Weights & Biases (offline unless WANDB_MODE=online; '
                             'offline runs need no account: `wandb sync` uploads them later)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. model.head_dropout=0.1 data_root=/data/miqd')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    apply_overrides(cfg, data_root=args.data_root, batch_size=args.batch_size, lr=args.lr,
                    epochs=args.epochs, work_dir=work_dir)
    if args.seed is not None:
        cfg.setdefault('randomness', {})['seed'] = args.seed
    if args.wandb:
        mode = os.environ.get('WANDB_MODE', 'offline')
        cfg.visualizer.vis_backends.append(
            dict(type='WandbVisBackend', init_kwargs=dict(project=args.wandb, mode=mode, dir=work_dir)))
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


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
