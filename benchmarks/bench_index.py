"""Time the MIQD label index and ``MIQDDataset`` init at the real cls size.

Builds (once; reused when present) a zero-byte cls tree of ``--n-src`` sources x 250 label
rows (the real set: 5,000 x 250 = 1.25 M) under ``--root``, then times name parsing, the
index build cold (cache removed) and cached, and ``MIQDDataset(split='train')`` cold and
cached. "Cold" means no index cache; the OS file cache is warm in both. Targets are
wall-clock; the CPU column tells how much other load on the machine inflated them.

    python benchmarks/bench_index.py [--root /tmp/miqa_bench_tree] [--n-src 5000]
"""
import argparse
import shutil
import tempfile
import time
from pathlib import Path

from miqa.datasets import DISTORTIONS, MIQDDataset, load_index, parse_name, parse_names, variant_names
from miqa.datasets.naming import variant_codes
from miqa.testing import make_miqd_tree

TARGETS = {'cold': 60.0, 'cached': 5.0}


def timed(fn):
    """(result, (wall seconds, CPU seconds of this process)); CPU time shows contention."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, (time.perf_counter() - wall, time.process_time() - cpu)


def bench_parsing(n_src: int) -> list:
    """Parse the names of ``n_src`` sources one by one, and per source (the index's path)."""
    src_ids = [f'ILSVRC2012_val_{i:08d}' for i in range(n_src)]
    per_src = [[n for d in DISTORTIONS for n in variant_names(s, d)] for s in src_ids]
    count = sum(map(len, per_src))
    _, single = timed(lambda: [parse_name(n) for names in per_src for n in names])
    _, per_source = timed(lambda: [parse_names(names, s) for s, names in zip(src_ids, per_src)])
    _, codes = timed(lambda: [variant_codes(names, s) for s, names in zip(src_ids, per_src)])
    return [(f'parse_name x {count:,}', single, None),
            (f'parse_names(names, src_id) x {count:,}', per_source, None),
            (f'variant_codes(names, src_id) x {count:,} (index)', codes, None)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default='/tmp/miqa_bench_tree', help='where the synthetic tree lives')
    parser.add_argument('--n-src', type=int, default=5000, help='number of cls source images')
    args = parser.parse_args()

    root = Path(args.root)
    marker = root / f'.complete-{args.n_src}'
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        _, (seconds, _) = timed(lambda: make_miqd_tree(root, tasks=('cls',), n_src=args.n_src,
                                                       distortions=tuple(DISTORTIONS), zero_byte=True))
        marker.touch()
        print(f'wrote {args.n_src} sources x 250 zero-byte images under {root} in {seconds:.1f} s')

    rows = bench_parsing(args.n_src)
    cache_dir = Path(tempfile.mkdtemp(prefix='miqa_bench_cache_'))
    try:
        index, seconds = timed(lambda: load_index(root, 'cls', cache_dir))
        rows.append((f'index cold ({len(index):,} rows)', seconds, TARGETS['cold']))
        _, seconds = timed(lambda: load_index(root, 'cls', cache_dir))
        rows.append(('index cached', seconds, TARGETS['cached']))
        del index
        shutil.rmtree(cache_dir)
        dataset, seconds = timed(lambda: MIQDDataset(root, task='cls', split='train', cache_dir=cache_dir))
        rows.append((f'MIQDDataset train cold ({len(dataset):,} samples)', seconds, TARGETS['cold']))
        del dataset
        _, seconds = timed(lambda: MIQDDataset(root, task='cls', split='train', cache_dir=cache_dir))
        rows.append(('MIQDDataset train cached', seconds, TARGETS['cached']))
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print(f'\n{"step":<{width}}  {"wall s":>7}  {"CPU s":>6}  {"target":>7}  ok')
    for name, (wall, cpu), target in rows:
        verdict = '' if target is None else ('yes' if wall < target else 'NO')
        limit = '' if target is None else f'< {target:.0f} s'
        print(f'{name:<{width}}  {wall:7.2f}  {cpu:6.2f}  {limit:>7}  {verdict}')


if __name__ == '__main__':
    main()
