"""Database build throughput: source images per minute for full 250-variant sources (spec §3).

Sources are skimage photos resized to a 320 px short side (about 0.14 MP, the demo setting).

1. Stage costs in one process (``cv2.setNumThreads(1)``), per source: the 10 ``distortion_levels``
   calls, mask + soft mask, the 200 fusions, PNG encoding + writing of the 250 images.
2. Images only (distortion + fusion + PNG, no labels): ``--workers`` processes, the builder's
   worker code (``prepare_source``), wall clock.
3. The labeller's CPU cost per source in-process, and full builds (``build_database``) with the
   EfficientNet-Lite classifier machine
   (``miqa.database.labels.build_labeller``), labelling in the workers (each its model, torch
   threads = 1) and in the main process (``label_in='main'``, ``--main-threads`` torch threads)
   while the workers make the images. Skipped, and said so, when the machine is unavailable.

    python benchmarks/bench_build.py [--sources 4] [--workers 2] [--variant lite0] [--skip-labels]
"""
import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
from skimage import data

from miqa.database import builder, collectors, pool, render
from miqa.database import settings as build_settings
from miqa.database.fusion import fuse, soft_mask
from miqa.database.masks import source_mask
from miqa.distortions import distortion_levels, distortion_names

PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'motorcycle_left', 'hubble_deep_field')


def write_sources(folder: Path, count: int, short_side: int = 320) -> None:
    """``count`` skimage photos (cycled, flipped on repeat) with a ``short_side`` px short side, as PNG."""
    for i in range(count):
        img = getattr(data, PHOTOS[i % len(PHOTOS)])()
        img = img if i < len(PHOTOS) else img[:, ::-1]
        h, w = img.shape[:2]
        scale = short_side / min(h, w)
        img = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f'src{i:02d}.png'), np.ascontiguousarray(img[..., ::-1]))


def stage_costs(folder: Path) -> Dict[str, float]:
    """Seconds per source of each stage, one process, one OpenCV thread (first source)."""
    cv2.setNumThreads(1)
    img = cv2.imread(str(sorted(folder.glob('*.png'))[0]))[..., ::-1].copy()
    times: Dict[str, float] = {}
    t = time.perf_counter()
    levels = {name: distortion_levels(img, name, 0) for name in distortion_names()}
    times['distortion levels (10 types)'] = time.perf_counter() - t
    t = time.perf_counter()
    soft = soft_mask(source_mask(img)[0])
    times['mask + soft mask'] = time.perf_counter() - t
    t = time.perf_counter()
    fused = [fuse(lv[i], lv[j], soft) for lv in levels.values() for i in range(5) for j in range(5) if i != j]
    times['fusion (200 images)'] = time.perf_counter() - t
    images = fused + [im for lv in levels.values() for im in lv]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
        for k, im in enumerate(images):
            ok, buf = cv2.imencode('.png', im[..., ::-1], params)
            Path(tmp, f'{k}.png').write_bytes(buf.tobytes())
        times['PNG encode + write (250)'] = time.perf_counter() - t
    times['total'] = sum(times.values())
    return times


def base_cfg(folder: Path, **kw) -> dict:
    return dict(task='cls', sources=dict(type='folder', root=str(folder)), max_short_side=320, seed=0, **kw)


def images_only(folder: Path, workers: int) -> Tuple[float, float]:
    """Sources per minute of the builder's image stage in a pool of ``workers`` (wall clock), and
    the CPU seconds per source the workers spent (robust to other load on the machine)."""
    import multiprocessing as mp

    with tempfile.TemporaryDirectory() as out:
        settings = build_settings.build_settings(base_cfg(folder, labeller=None), out)
        plan = build_settings.make_plan(settings)
        sources = collectors.collect_sources(settings['sources'])
        ctx = mp.get_context(build_settings.DEFAULT_START_METHOD)
        with ctx.Pool(workers, initializer=pool.init_worker, initargs=(plan, None)) as workers_pool:
            workers_pool.map(_noop, range(workers))  # workers started before the clock
            t = time.perf_counter()
            cpu = list(workers_pool.imap_unordered(_prepare, [(plan, s) for s in sources]))
            seconds = time.perf_counter() - t
    return len(sources) / seconds * 60, float(np.mean(cpu))


def _noop(_):
    return None


def _prepare(job) -> float:
    plan, src = job
    start = time.process_time()
    render.prepare_source(plan, src, keep_images=False)
    return time.process_time() - start


def labeller_cost(folder: Path, variant: str) -> float:
    """CPU seconds to label one source's 250 variants, one torch thread, in this process."""
    from miqa.database.labels import build_labeller

    labeller = build_labeller(dict(type='MachineLabeller', task='cls', missing_annotation='nan', machines=[
        dict(type='EfficientNetLite', variant=variant, batch_size=16, num_threads=1, device='cpu')]))
    img = cv2.imread(str(sorted(folder.glob('*.png'))[0]))[..., ::-1].copy()
    variants = {f'{k}.png': img for k in range(250)}
    labeller.label(img, dict(list(variants.items())[:2]), None)  # warm-up
    start = time.process_time()
    labeller.label(img, variants, None)
    return time.process_time() - start


def full_build(folder: Path, workers: int, variant: str, label_in: str, main_threads: int) -> float:
    """Sources per minute of ``build_database`` with one EfficientNet-Lite machine."""
    threads = main_threads if label_in == 'main' else 1
    labeller = dict(type='MachineLabeller', task='cls', missing_annotation='nan',
                    machines=[dict(type='EfficientNetLite', variant=variant, batch_size=16,
                                   num_threads=threads, device='cpu')])
    with tempfile.TemporaryDirectory() as out:
        cfg = base_cfg(folder, labeller=labeller, label_in=label_in)
        t = time.perf_counter()
        summary = builder.build_database(cfg, out, workers=workers, progress=False)
        seconds = time.perf_counter() - t
    return summary.built / seconds * 60


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sources', type=int, default=4)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--variant', default='lite0', help='EfficientNet-Lite variant of the labeller')
    parser.add_argument('--main-threads', type=int, default=2, help="torch threads with label_in='main'")
    parser.add_argument('--skip-labels', action='store_true')
    args = parser.parse_args(argv)
    print(f'{os.cpu_count()} CPUs; {args.sources} sources of 320 px short side; 250 variants each')
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_sources(folder, args.sources)
        h, w = cv2.imread(str(sorted(folder.glob('*.png'))[0])).shape[:2]
        print(f'\n1. stage costs, one process (first source, {w}x{h} = {w * h / 1e6:.2f} MP):')
        for stage, seconds in stage_costs(folder).items():
            print(f'   {stage:<30s} {seconds:6.2f} s')
        rate, cpu = images_only(folder, args.workers)
        ideal = 60 * args.workers / cpu
        print(f'\n2. images only (distortion + fusion + PNG), {args.workers} workers: {rate:.1f} sources/min '
              f'wall clock; {cpu:.2f} CPU s per source in a worker = {ideal:.1f} sources/min on idle cores')
        if args.skip_labels:
            print('\n3. labelled builds skipped (--skip-labels)')
            return
        try:
            from miqa.database.machines import LITE_VARIANTS
            from miqa.hub import find_weights
            find_weights(LITE_VARIANTS[args.variant].weights)
        except Exception as err:  # the machine or its weights are not installed here
            print(f'\n3. labelled builds skipped: EfficientNet-{args.variant} unavailable ({err})')
            return
        label_cpu = labeller_cost(folder, args.variant)
        ideal = 60 * args.workers / (cpu + label_cpu)
        print(f'\n3. labelling 250 variants with EfficientNet-{args.variant}, 1 torch thread: '
              f'{label_cpu:.1f} CPU s per source; with the images: {ideal:.1f} sources/min '
              f'on {args.workers} idle cores')
        print(f'   full builds (build_database), {args.workers} workers, wall clock:')
        for label_in in ('worker', 'main'):
            rate = full_build(folder, args.workers, args.variant, label_in, args.main_threads)
            where = ('in the workers (torch threads 1 each)' if label_in == 'worker'
                     else f'in the main process (torch threads {args.main_threads})')
            print(f'   labelling {where:<42s} {rate:6.1f} sources/min')


if __name__ == '__main__':
    main()
