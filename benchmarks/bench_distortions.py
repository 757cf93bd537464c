"""Cost of the MIQD distortion stage: ms per megapixel per type, and source images per minute.

One ``distortion_levels`` call = the 12 candidates of one type + PSNR ranking,
i.e. what the database builder pays per type and source image. A 250-variant
source (10 types x 25 images) needs the 10 calls; fusion (ROI/BG images) is not
included. Timings are single-threaded (``cv2.setNumThreads(1)``), best of
``--repeats``; the 2-core estimate runs one worker per core, and is checked by
running a 2-process pool.

    python benchmarks/bench_distortions.py [--repeats 3] [--pool-images 6]
"""
import argparse
import multiprocessing as mp
import os
import time
from typing import Dict, List, Tuple

import cv2
import numpy as np
from skimage import data

from miqa.distortions import distortion_levels, distortion_names

SIZES = {'0.25 MP': (577, 433), '1 MP': (1155, 866)}  # (w, h), 4:3 like ImageNet/COCO photos


def photo(size: tuple) -> np.ndarray:
    """The astronaut photo (skimage.data) resized to ``size`` = (w, h)."""
    img = data.astronaut()
    interp = cv2.INTER_AREA if size[0] < img.shape[1] else cv2.INTER_CUBIC
    return cv2.resize(img, size, interpolation=interp)


def time_types(img: np.ndarray, repeats: int) -> Dict[str, float]:
    """Best-of-``repeats`` seconds of one ``distortion_levels`` call per type."""
    best = {}
    for name in distortion_names():
        runs = []
        for r in range(repeats):
            start = time.perf_counter()
            distortion_levels(img, name, seed=r)
            runs.append(time.perf_counter() - start)
        best[name] = min(runs)
    return best


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _one_source(seed: int) -> float:
    """CPU seconds of the 10 ``distortion_levels`` calls for one 0.25 MP source."""
    img = photo(SIZES['0.25 MP'])
    start = time.process_time()
    for name in distortion_names():
        distortion_levels(img, name, seed=seed)
    return time.process_time() - start


def pool_rate(images: int, workers: int = 2) -> Tuple[float, float]:
    """(wall-clock source images per minute, mean CPU seconds per source) of a ``workers``-process pool."""
    ctx = mp.get_context('spawn')  # fresh interpreters, as a builder's workers would be
    with ctx.Pool(workers, initializer=_worker_init) as pool:
        pool.map(_one_source, range(workers))  # warm-up (imports, first allocations)
        start = time.perf_counter()
        cpu = pool.map(_one_source, range(images), chunksize=1)
        return images / (time.perf_counter() - start) * 60.0, sum(cpu) / len(cpu)


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--pool-images', type=int, default=6, help='0 skips the 2-process check')
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    results = {}
    for label, size in SIZES.items():
        img = photo(size)
        results[label] = (img.shape[0] * img.shape[1] / 1e6, time_types(img, args.repeats))

    labels = list(SIZES)
    head = f'{"distortion":18s}' + ''.join(f' | {lb + " ms/MP":>14s} {"(ms/call)":>10s}' for lb in labels)
    print(f'single thread, one distortion_levels call = 12 candidates + PSNR ranking '
          f'(best of {args.repeats}; {os.cpu_count()} CPUs seen)')
    print(head)
    print('-' * len(head))
    for name in distortion_names():
        row = f'{name:18s}'
        for lb in labels:
            mp_, t = results[lb]
            row += f' | {t[name] * 1e3 / mp_:14.0f} {t[name] * 1e3:10.0f}'
        print(row)
    print('-' * len(head))
    row = f'{"all 10 (1 source)":18s}'
    for lb in labels:
        mp_, t = results[lb]
        total = sum(t.values())
        row += f' | {total * 1e3 / mp_:14.0f} {total * 1e3:10.0f}'
    print(row)
    print()
    for lb in labels:
        mp_, t = results[lb]
        total = sum(t.values())
        print(f'estimate, {lb} sources, 2 single-threaded workers: {2 * 60.0 / total:6.1f} source images/min '
              f'({total:.2f} s per source per core, distortion part of the 250 variants only)')
    if args.pool_images:
        rate, cpu = pool_rate(args.pool_images)
        print(f'measured, 0.25 MP sources, 2-process pool over {args.pool_images} sources: '
              f'{rate:6.1f} source images/min wall clock (other load on the machine lowers it); '
              f'{cpu:.2f} CPU s per source -> {2 * 60.0 / cpu:.1f}/min on 2 free cores')


if __name__ == '__main__':
    main()
