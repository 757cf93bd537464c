"""Detector machines: images per second on CPU, batched, against a classifier machine in the same run.

The det build labels every degraded image with both COCO detectors of
:mod:`miqa.database.detectors` (issue target: >= 10 images/s per detector on 2 cores). Measured on
real photos (the darknet and OpenCV sample photos of Debian's ``darknet`` / ``opencv-doc``
packages when installed, else scikit-image's), resized to a ``--short-side`` px short side (320:
the size the builder stores; 0 keeps them as they are), cycled (mirrored on repeat) to
``--images``. Each machine runs ``predict`` over all images in batches of ``--batch`` with
``--threads`` torch threads, after one warm-up batch; ``--repeats`` passes, the best one counts.
``--processes 2 --threads 1`` splits the images over two concurrent processes of one thread each,
as the builder's labelling workers do (on a busy machine two threads in one process wait for each
other at every op).

Printed per machine: images/s (wall clock), CPU seconds per image (process time, all threads:
less sensitive to other jobs on the machine), and both as a ratio to the baseline
(EfficientNet-Lite1 at 224 px, a labelling machine of MIQD-mini) measured on the same images
in the same run. ``--profile`` adds where a detector's time goes: preprocessing (resize),
the graph by op type, and the post-processing (decode + NMS).

    python benchmarks/bench_detectors.py [--images 48] [--batch 8] [--threads 2] [--processes 1]
                                         [--short-side 320] [--repeats 3] [--vmap] [--profile]
"""
import argparse
import multiprocessing as mp
import os
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
import torch

from miqa.database.machines import build_machine

PHOTO_DIRS = ('/usr/share/darknet/data', '/usr/share/doc/opencv-doc/examples/data')
PHOTO_NAMES = ('dog.jpg', 'horses.jpg', 'person.jpg', 'kite.jpg', 'eagle.jpg', 'giraffe.jpg', 'messi5.jpg',
               'fruits.jpg', 'apple.jpg', 'orange.jpg', 'aero3.jpg', 'licenseplate_motion.jpg', 'home.jpg',
               'squirrel_cls.jpg', 'baboon.jpg', 'building.jpg')
SKIMAGE = ('astronaut', 'chelsea', 'coffee', 'rocket', 'motorcycle_left', 'hubble_deep_field')

MACHINES = {
    'EfficientNet-Lite1 (baseline)': dict(type='EfficientNetLite', variant='lite1'),
    'CenterNet': dict(type='CenterNet'),
    'NanoDet': dict(type='NanoDet'),
}


def load_photos(short_side: int) -> Tuple[List[np.ndarray], str]:
    """Real photos (RGB uint8) and where they came from."""
    paths = [Path(d, n) for d in PHOTO_DIRS for n in PHOTO_NAMES if Path(d, n).is_file()]
    if paths:
        photos = [cv2.imread(str(p), cv2.IMREAD_COLOR)[..., ::-1] for p in paths]
        origin = f'{len(paths)} darknet / OpenCV sample photos'
    else:
        from skimage import data
        photos = [np.asarray(getattr(data, n)()) for n in SKIMAGE]
        photos = [np.repeat(p[..., None], 3, 2) if p.ndim == 2 else p[..., :3] for p in photos]
        origin = f'{len(photos)} scikit-image photos'
    if short_side:
        out = []
        for p in photos:
            scale = short_side / min(p.shape[:2])
            size = (round(p.shape[1] * scale), round(p.shape[0] * scale))
            out.append(cv2.resize(p, size, interpolation=cv2.INTER_AREA))
        photos = out
    return [np.ascontiguousarray(p) for p in photos], origin


def cycle(photos: List[np.ndarray], count: int) -> List[np.ndarray]:
    return [photos[i % len(photos)] if (i // len(photos)) % 2 == 0 else np.ascontiguousarray(
        photos[i % len(photos)][:, ::-1]) for i in range(count)]


def measure(cfg: dict, images: List[np.ndarray], repeats: int, barrier=None) -> Tuple[float, float]:
    """(wall seconds, CPU seconds) of the best of ``repeats`` ``predict`` passes over ``images``
    with the machine ``cfg`` (built here, so that it can run in a worker process)."""
    machine = build_machine(cfg)
    machine.predict(images[:machine.batch_size])  # warm-up (oneDNN primitives, plans)
    best = (float('inf'), float('inf'))
    for _ in range(repeats):
        if barrier is not None:
            barrier.wait()  # every process starts each pass together
        wall, cpu = time.perf_counter(), time.process_time()
        machine.predict(images)
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def throughput(cfg: dict, images: List[np.ndarray], repeats: int, processes: int) -> Tuple[float, float]:
    """(images/s, CPU seconds per image) with ``processes`` concurrent processes, each on its own
    share of ``images`` (images/s: all images over the slowest process's time)."""
    if processes <= 1:
        wall, cpu = measure(cfg, images, repeats)
        return len(images) / wall, cpu / len(images)
    ctx = mp.get_context('spawn')
    shares = [images[i::processes] for i in range(processes)]
    with ctx.Manager() as manager:
        barrier = manager.Barrier(processes)
        with ctx.Pool(processes) as pool:
            results = pool.starmap(measure, [(cfg, share, repeats, barrier) for share in shares])
    return len(images) / max(w for w, _ in results), sum(c for _, c in results) / len(images)


def profile(machine, images: List[np.ndarray]) -> Dict[str, float]:
    """Seconds per image in preprocessing, each graph op type and post-processing (one pass)."""
    times: Counter = Counter()
    resize, post = machine.resize, machine.postprocess

    def timed(fn, key):
        def run(*args):
            t = time.perf_counter()
            out = fn(*args)
            times[key] += time.perf_counter() - t
            return out
        return run

    machine.resize = timed(resize, 'preprocess (resize)')
    machine.postprocess = timed(post, 'postprocess (decode + NMS)')
    machine.graph.timings = Counter()
    t = time.perf_counter()
    machine.predict(images)
    times['total'] = time.perf_counter() - t
    times.update({f'graph: {op}': sec for op, sec in machine.graph.timings.items()})
    machine.graph.timings = None
    machine.resize, machine.postprocess = resize, post
    return {k: v / len(images) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=48)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--short-side', type=int, default=320)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--processes', type=int, default=1,
                        help='concurrent processes of --threads threads each (the builder labels in workers)')
    parser.add_argument('--vmap', action='store_true', help='also time the detectors with vmap batches')
    parser.add_argument('--profile', action='store_true')
    args = parser.parse_args()

    photos, origin = load_photos(args.short_side)
    images = cycle(photos, args.images)
    print(f'{args.images} images from {origin}, short side {args.short_side or "as is"}; batch {args.batch}, '
          f'{args.processes} process(es) x {args.threads} torch thread(s), best of {args.repeats}; '
          f'torch {torch.__version__}; '
          f'load average before: {os.getloadavg()[0]:.2f}')
    results: Dict[str, Tuple[float, float]] = {}
    machines = {}
    table = dict(MACHINES)
    if args.vmap:
        table.update({'CenterNet (vmap batches)': dict(type='CenterNet', vmap=True),
                      'NanoDet (vmap batches)': dict(type='NanoDet', vmap=True)})
    for label, cfg in table.items():
        cfg = dict(cfg, device='cpu', batch_size=args.batch, num_threads=args.threads)
        try:
            machines[label] = build_machine(cfg)
        except (FileNotFoundError, ImportError) as err:
            print(f'{label}: skipped ({err})')
            continue
        results[label] = throughput(cfg, images, args.repeats, args.processes)
    base = results.get('EfficientNet-Lite1 (baseline)')
    print('\n| machine | images/s | CPU s / image | images/s vs baseline | CPU vs baseline |')
    print('|:--|--:|--:|--:|--:|')
    for label, (ips, cpu) in results.items():
        ratio = f'x{ips / base[0]:.2f} | x{cpu / base[1]:.2f}' if base else '- | -'
        print(f'| {label} | {ips:.1f} | {cpu:.3f} | {ratio} |')
    print(f'\nload average after: {os.getloadavg()[0]:.2f}')
    if args.profile:
        for label in ('CenterNet', 'NanoDet'):
            if label not in machines:
                continue
            with machines[label].running():
                prof = profile(machines[label], images)
            total = prof.pop('total')
            print(f'\n{label}: {total * 1000:.1f} ms per image; where it goes:')
            for key, value in sorted(prof.items(), key=lambda kv: -kv[1])[:12]:
                print(f'  {key:<34} {value * 1000:7.2f} ms  {100 * value / total:5.1f} %')


if __name__ == '__main__':
    main()
