"""Loader throughput per worker: PNG decode alone vs every configured pipeline, one core, same run.

The images are real photos (scikit-image, scikit-learn, and Debian's opencv-doc / darknet photos
when installed) downscaled to MIQD-2.5M's 500x375, distorted with the MIQD distortion types, and
written as PNGs into a MIQD tree. Each row runs ``MIQDDataset[i]`` (its pipeline) and
``miqa_collate`` over the same images in this process, with torch and OpenCV on one thread (what a
DataLoader worker gets), timed in this process's CPU time; the rows are interleaved in every
round, so a changing machine load touches them alike, and a row's ratio is the median over rounds
of its time against decode alone in the same round.

Rows: decode alone (``read_rgb``, ``LoadImage``'s reader); each configured train/test pipeline with
the reference PIL warp and with the default warp (``Resize(backend='torch')``), RA-MIQA's before
and after its region-token cache is warm (after the first epoch ``RegionView`` skips every view);
and the optional preprocessed cache (the 288x288 warp stored as PNG: decode, disk, build time).
From the rates: workers needed to feed a train step of X ms at batch B (``--step-json`` from
``bench_train_step.py --out``; default the H100 numbers of issue 15).

    python benchmarks/bench_dataloader.py                     # about 3 min on an idle core
    python benchmarks/bench_dataloader.py --rounds 7 --out work_dirs/bench_dataloader.json
"""
import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from miqa.datasets import MIQDDataset  # noqa: E402
from miqa.datasets.collate import miqa_collate  # noqa: E402
from miqa.distortions import get_distortion  # noqa: E402
from miqa.testing import make_miqd_tree  # noqa: E402
from miqa.utils import register_all_modules  # noqa: E402
from miqa.utils.image import read_rgb  # noqa: E402
from miqa.utils.shared_keys import shared_key_index  # noqa: E402

#: (config, label) whose pipelines are measured; identical pipelines are measured once
CONFIGS = [('configs/ra_miqa_cls.py', 'RA-MIQA cls'), ('configs/ra_miqa_det.py', 'RA-MIQA det'),
           ('configs/vit_small/vit_small_cls.py', 'baselines cls'),
           ('configs/resnet50/resnet50_det.py', 'baselines det')]
#: issue 15, measured on one H100 (bf16, batch 128): the train step the loader must feed
H100_STEPS = dict(device='H100 (issue 15)', batch_size=128, amp=True,
                  ms={'ViT-S baseline': 36.3, 'RA-MIQA, cache': 39.8})
DISTORTIONS = ('gaussian_noise', 'jpeg_compression', 'motion_blur', 'defocus_blur', 'fog', 'snow',
               'contrast', 'pixelate', 'darkness', 'glass_blur')
DEBIAN_PHOTOS = ['/usr/share/doc/opencv-doc/examples/data/' + n for n in
                 ('baboon.jpg', 'fruits.jpg', 'home.jpg', 'butterfly.jpg', 'aero1.jpg', 'building.jpg',
                  'orange.jpg', 'squirrel_cls.jpg')] + \
                ['/usr/share/darknet/data/' + n for n in ('dog.jpg', 'eagle.jpg', 'giraffe.jpg', 'horses.jpg',
                                                          'person.jpg', 'kite.jpg')]


def photos() -> List[np.ndarray]:
    """RGB photos from whichever of scikit-image, scikit-learn and Debian's opencv-doc / darknet
    are installed (the dev install has the first two)."""
    out = []
    try:
        from skimage import data
        out += [data.chelsea(), data.astronaut(), data.coffee(), data.rocket()]
    except ImportError:
        pass
    try:
        from sklearn.datasets import load_sample_images
        out += list(load_sample_images().images)
    except ImportError:
        pass
    out += [cv2.imread(p)[:, :, ::-1] for p in DEBIAN_PHOTOS if os.path.isfile(p)]
    if not out:
        raise SystemExit('no photos: pip install scikit-image scikit-learn (or apt-get install opencv-doc)')
    return out


def make_tree(folder: Path, n_src: int) -> dict:
    """A MIQD cls tree (official layout, labels, split files) whose images are real photos at
    500x375, one MIQD distortion each (the candidate settings cycled mild -> severe)."""
    tree = make_miqd_tree(folder, tasks=('cls',), n_src=n_src, distortions=('fog',), image_size=(8, 8))
    shots = [cv2.resize(p, (500, 375), interpolation=cv2.INTER_AREA) for p in photos()]
    images = sorted((Path(tree['root']) / 'miqa_cls' / 'images').rglob('*.png'))
    for i, path in enumerate(images):
        fn = get_distortion(DISTORTIONS[i % len(DISTORTIONS)])
        img = fn(shots[i % len(shots)], fn.params[(i * 5) % len(fn.params)], np.random.default_rng(i))
        cv2.imwrite(str(path), np.ascontiguousarray(img[:, :, ::-1]))
    tree['images'] = [str(p) for p in images]
    return tree


def with_backend(pipeline: List[dict], backend: str) -> List[dict]:
    steps = copy.deepcopy(pipeline)
    for step in steps:
        if step['type'] in ('Resize', 'RegionView'):
            step['backend'] = backend
    return steps


def pipelines() -> Dict[str, dict]:
    """Row name -> dict(pipeline, warm): every distinct configured pipeline, PIL and torch warps."""
    rows, seen = {}, {}
    for path, label in CONFIGS:
        cfg = Config.fromfile(str(ROOT / path))
        for split, loader in (('train', cfg.train_dataloader), ('test', cfg.test_dataloader)):
            steps = [dict(s) for s in loader.dataset.pipeline]
            sig = json.dumps(steps, sort_keys=True)
            if sig in seen:
                seen[sig].append(f'{label} {split}')
                continue
            names = seen[sig] = [f'{label} {split}']
            region = any(s['type'] == 'RegionView' for s in steps)
            for backend in ('pil', 'torch'):
                rows[f'{sig}|{backend}|cold'] = dict(names=names, backend=backend, cache='',
                                                     pipeline=with_backend(steps, backend))
            if region:
                rows[f'{sig}|torch|warm'] = dict(names=names, backend='torch', cache='warm',
                                                 pipeline=with_backend(steps, 'torch'))
    return rows


def dataset(root: str, pipeline: List[dict]) -> MIQDDataset:
    with DefaultScope.overwrite_default_scope('miqa'):
        return MIQDDataset(root, task='cls', split='train', split_file=None, val_ratio=0.01,
                           pipeline=pipeline, cache_dir=False, on_missing='error')


# The clock is this process's CPU time: with torch and OpenCV on one thread it is what the work
# costs one core, whatever else shares the machine (wall time would also count the time other
# processes held the core, unevenly between long C calls and short Python ones).
def time_loader(ds: MIQDDataset, idx: List[int], batch: int) -> float:
    """CPU seconds for ``ds[i]`` over ``idx`` plus ``miqa_collate`` of each batch."""
    start = time.process_time()
    for b in range(0, len(idx), batch):
        miqa_collate([ds[i] for i in idx[b:b + batch]])
    return time.process_time() - start


def time_decode(paths: List[str]) -> float:
    start = time.process_time()
    for p in paths:
        read_rgb(p)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sources', type=int, default=4, help='MIQD sources x 25 images')
    parser.add_argument('--per-round', type=int, default=64, help='images per row and round')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--step-json', help='bench_train_step.py --out file (default: H100 of issue 15)')
    parser.add_argument('--cores', type=int, default=16, help='a node with this many cores for workers')
    parser.add_argument('--idle-decode', type=float, default=342.0,
                        help='PNG decode rate of an idle core (images/s; issue 15 measured 342) for the '
                             'workers estimate, scaled by the measured ratios')
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    register_all_modules(init_default_scope=False)
    MMLogger.get_instance('bench', log_level='WARNING')  # the results only, not the build logs
    load_before = os.getloadavg()
    index = shared_key_index()
    with tempfile.TemporaryDirectory() as tmp:
        tree = make_tree(Path(tmp) / 'miqd', args.sources)
        rows = pipelines()
        sets = {name: dataset(tree['root'], row['pipeline']) for name, row in rows.items()}
        n = len(next(iter(sets.values())))
        rng = np.random.default_rng(0)
        paths = [sets[next(iter(sets))].get_data_info(i)['img_path'] for i in range(n)]
        for name, row in rows.items():  # warm caches: every key of the warm rows held by "the model"
            if row['cache'] == 'warm':
                index.ready = False
                for i in range(n):
                    index.add(sets[name][i]['data_samples']['region_key'])
        prewarped = Path(tmp) / 'prewarped'
        prewarped.mkdir()
        build = time.process_time()
        from miqa.datasets.transforms import _resize
        small = []
        for i, p in enumerate(paths):
            out = prewarped / f'{i}.png'
            cv2.imwrite(str(out), np.ascontiguousarray(_resize(read_rgb(p), (288, 288))[:, :, ::-1]))
            small.append(str(out))
        build_s = (time.process_time() - build) / n
        disk = dict(original=float(np.mean([os.path.getsize(p) for p in paths])),
                    prewarped_png=float(np.mean([os.path.getsize(p) for p in small])),
                    raw_288=288 * 288 * 3.0)
        timers: Dict[str, Callable[[List[int]], float]] = {
            'decode': lambda idx: time_decode([paths[i] for i in idx]),
            'decode_prewarped': lambda idx: time_decode([small[i] for i in idx])}
        for name, ds in sets.items():
            def timer(idx, ds=ds, warm=rows[name]['cache'] == 'warm'):
                index.ready = warm
                return time_loader(ds, idx, args.batch_size)
            timers[name] = timer
        times: Dict[str, List[float]] = {k: [] for k in timers}
        order = list(timers)
        for r in range(args.rounds + 1):  # round 0 warms up
            idx = rng.choice(n, size=min(args.per_round, n), replace=False).tolist()
            for key in order[r % len(order):] + order[:r % len(order)]:
                t = timers[key](idx) / len(idx)
                if r:
                    times[key].append(t)
    load_after = os.getloadavg()
    dec = times['decode']
    results = dict(load_before=load_before, load_after=load_after, images=n, disk_bytes=disk,
                   prewarp_build_s_per_image=build_s, rows=[])
    print(f'loader throughput, one core (torch/OpenCV 1 thread, process CPU time), {n} real 500x375 PNGs '
          f'({disk["original"] / 1e3:.0f} kB each), median of {args.rounds} interleaved rounds of '
          f'{args.per_round}; load average {load_before[0]:.1f} -> {load_after[0]:.1f} (1 min)')
    print(f'decode alone (read_rgb): {1 / statistics.median(dec):.0f} images/s\n')
    print('| pipeline (configs) | warp | region cache | images/s | x decode alone |')
    print('|:--|:--|:--|--:|--:|')
    for name, row in rows.items():
        ratio = statistics.median(d / t for d, t in zip(dec, times[name]))
        rate = 1 / statistics.median(times[name])
        results['rows'].append(dict(configs=row['names'], backend=row['backend'], cache=row['cache'],
                                    images_per_s=rate, ratio=ratio))
        steps = ' -> '.join(s['type'] for s in row['pipeline'])
        print(f'| {steps} ({", ".join(row["names"])}) | {row["backend"]} | {row["cache"] or "-"} | '
              f'{rate:.0f} | {ratio:.2f} |')
    pre = statistics.median(d / t for d, t in zip(dec, times['decode_prewarped']))
    pre_rate = 1 / statistics.median(times['decode_prewarped'])
    print(f'\npreprocessed cache (the 288x288 warp stored as PNG): decode {pre_rate:.0f} images/s '
          f'({pre:.2f}x the 500x375 decode); {disk["prewarped_png"] / 1e3:.0f} kB per image '
          f'({disk["prewarped_png"] * 1.25e6 / 1e9:.0f} GB for 1.25 M cls images; raw uint8: '
          f'{disk["raw_288"] * 1.25e6 / 1e9:.0f} GB); build {build_s * 1e3:.1f} ms per image on one core '
          f'({build_s * 1.25e6 / 3600 / args.cores:.1f} h for 1.25 M on {args.cores} cores)')
    results['prewarped_ratio'] = pre

    steps = json.loads(Path(args.step_json).read_text()) if args.step_json else H100_STEPS
    train = [r for r in results['rows'] if 'RA-MIQA cls train' in r['configs']]
    ref = next(r for r in train if r['backend'] == 'pil')
    best = max(train, key=lambda r: r['ratio'])
    print(f'\nworkers to feed one {steps["device"]} train step (batch {steps["batch_size"]}), RA-MIQA cls '
          f'train pipeline; a worker = the ratio above x {args.idle_decode:.0f} images/s (PNG decode on an '
          'idle core); measured here: the rates above')
    print('| model | step ms | images/s needed | workers: reference (PIL, views always) | '
          f'workers: now ({best["backend"]} warp, cache {best["cache"] or "cold"}) | '
          'same, at the rates measured here |')
    print('|:--|--:|--:|--:|--:|--:|')
    for model, ms in steps['ms'].items():
        need = steps['batch_size'] / (ms / 1e3)
        print(f'| {model} | {ms:.1f} | {need:.0f} | {need / (ref["ratio"] * args.idle_decode):.1f} | '
              f'{need / (best["ratio"] * args.idle_decode):.1f} | {need / best["images_per_s"]:.1f} |')
    results['steps'] = steps
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
