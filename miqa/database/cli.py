"""The command line of the database builder (``tools/build_miqd.py``): parse, build, report.

Examples::

    python tools/build_miqd.py configs/build/my_cls.py --out data/my_miqd --workers 2
    # 4 machines, then one finalize (split CSVs + manifest from every shard's sources):
    python tools/build_miqd.py CONFIG --out /shared/db --num-shards 4 --shard-index $I
    python tools/build_miqd.py CONFIG --out /shared/db --finalize
    # three more train/val splits by photo (repeated experiments on a small database):
    python tools/build_miqd.py CONFIG --resplit 1 2 3
    # model selection: splits of the official train photos only (splits/train-seed<k>/)
    python tools/build_miqd.py CONFIG --resplit 1 2 3 --within train

A rerun resumes: finished sources (label CSVs present) are skipped. See configs/build/README.md.
"""
import argparse
import sys
from typing import Optional, Sequence

from mmengine.config import Config, DictAction

from .builder import build_database
from .manifest import BuildConflict, finalize_database
from .settings import build_settings
from .splitting import resplit_database, resplit_name


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Build a MIQD-style database from a build config')
    parser.add_argument('config', help='build config, e.g. configs/build/<name>.py')
    parser.add_argument('--out', help='output folder (default: out_root of the config)')
    parser.add_argument('--num-shards', type=int, default=1, help='split the sources into N shards')
    parser.add_argument('--shard-index', type=int, default=0, help='the shard this run builds (0-based)')
    parser.add_argument('--workers', type=int, help='processes (default: config workers or the CPU count)')
    parser.add_argument('--limit', type=int, help='only the first N sources (sorted by id), before sharding')
    parser.add_argument('--finalize', action='store_true',
                        help='only write split CSVs and the manifest from all finished sources')
    parser.add_argument('--resplit', type=int, nargs='+', metavar='SEED',
                        help='only write other train/val splits of a finalized database (by photo, '
                             'like the official one) to <out>/splits/seed<SEED>/')
    parser.add_argument('--within', choices=('train', 'val'),
                        help='with --resplit: split only the official train (or val) sources, to '
                             '<out>/splits/<WITHIN>-seed<SEED>/ (model selection that never sees the '
                             'official val photos)')
    parser.add_argument('--no-finalize', action='store_true', help='do not finalize after a 1-shard build')
    parser.add_argument('--force', action='store_true',
                        help='rebuild a folder built with other parameters (deletes its labels first)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. seed=1 max_short_side=256')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``tools/build_miqd.py ARGV``; 0 when done, 2 when the folder holds another database."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    try:
        if args.resplit:
            settings = build_settings(cfg, args.out)
            for seed in args.resplit:
                splits = resplit_database(settings['out_root'], settings['task'], seed, within=args.within)
                print(f'split seed {seed}: ' + ', '.join(f'{k} {len(v)} sources' for k, v in splits.items())
                      + f' -> {settings["out_root"]}/splits/{resplit_name(seed, args.within)}/')
            return 0
        if args.finalize:
            manifest = finalize_database(cfg, args.out)
            print(f'finalized {manifest["num_finished"]} sources: splits {manifest["splits"]}')
            return 0
        summary = build_database(cfg, args.out, num_shards=args.num_shards, shard_index=args.shard_index,
                                 workers=args.workers, limit=args.limit, force=args.force,
                                 finalize=False if args.no_finalize else None, progress=not args.no_progress)
    except BuildConflict as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'{summary.task}: built {summary.built}, already finished {summary.skipped_finished}, '
          f'unreadable {len(summary.unreadable)} of {summary.selected} sources in {summary.seconds:.1f} s'
          + ('; finalized' if summary.finalized else '; run --finalize when every shard is done'))
    return 0


__all__ = ['main', 'parse_args']
