"""The filtering experiment: curve functions, COCO AP on subsets, machine output cache, ground truth
and ``miqa.analysis.filter_eval`` (``tools/filter_eval.py``) end to end on the fixture tree."""
import contextlib
import csv
import io
import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from miqa.analysis import downstream
from miqa.analysis.filter_eval import filter_eval
from miqa.analysis.filtering import (
    ascending,
    check_fractions,
    curves_to_json,
    curves_to_rows,
    filter_curve,
    filtering_curves,
    kept_indices,
    mean_metric,
    num_dropped,
    random_curves,
)
from miqa.database.coco import CocoSubsetAP
from miqa.database.detector_adapter import DetectorAdapter
from miqa.database.machines import ClassifierMachine
from miqa.database.sources import imagenet_classes
from miqa.registry import MACHINES


# ---------------------------------------------------------------- curve functions
def test_hand_made_curve():
    scores = [0.1, 0.9, 0.5, 0.3, 0.7]
    correct = [0, 1, 1, 0, 1]
    curve = filter_curve(ascending(scores), mean_metric(dict(top1=correct)), [0.0, 0.2, 0.4, 0.6])
    # drop nothing: 3/5; drop #0: 3/4; drop #0, #3: 3/3; drop #0, #3, #2: 2/2
    np.testing.assert_allclose(curve['top1'], [0.6, 0.75, 1.0, 1.0])
    # a ranking that drops the correct ones first: 3/5, 2/4, 1/3, 0/2
    worst = filter_curve(ascending([-s for s in scores]), mean_metric(dict(top1=correct)), [0, 0.2, 0.4, 0.6])
    np.testing.assert_allclose(worst['top1'], [0.6, 0.5, 1 / 3, 0.0])


def test_drop_rule_and_ties():
    assert [num_dropped(10, f) for f in (0, 0.1, 0.3, 0.7)] == [0, 1, 3, 7]
    assert num_dropped(7, 0.5) == 4 and num_dropped(5, 0.1) == 1 and num_dropped(4, 0.1) == 0  # half-up
    # ties keep input order: of the three 1.0s the first is dropped first
    order = ascending([1.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(kept_indices(order, 0.5), [1, 2])
    with pytest.raises(ValueError, match=r'\[0, 1\)'):
        check_fractions([0.0, 1.0])
    with pytest.raises(ValueError, match='non-finite'):
        ascending([0.1, math.nan])


def test_oracle_never_decreases_accuracy():
    """With the per-image correctness as label, the oracle drops wrong answers first."""
    rng = np.random.default_rng(0)
    for p in (0.2, 0.55, 0.9):
        correct = (rng.random(501) < p).astype(float)
        fractions = np.arange(0, 0.96, 0.05)
        curve = filter_curve(ascending(correct), mean_metric(dict(top1=correct)), fractions)['top1']
        assert curve[0] == pytest.approx(correct.mean())
        assert np.all(np.diff(curve) >= 0), curve
        dropped_all_wrong = num_dropped(501, fractions[-1]) >= np.count_nonzero(correct == 0)
        assert curve[-1] == 1.0 or not dropped_all_wrong


def test_random_ranking_stays_within_noise():
    """Random subsets of k of n images: the mean is unbiased and the spread is the hypergeometric
    standard deviation sqrt(p (1 - p) / k * (n - k) / (n - 1))."""
    n, repeats = 1000, 400
    correct = (np.random.default_rng(1).random(n) < 0.6).astype(float)
    p = correct.mean()
    fractions = [0.0, 0.1, 0.3, 0.5, 0.7]
    rnd = random_curves(n, mean_metric(dict(top1=correct)), fractions, repeats=repeats, seed=3)['top1']
    assert rnd['mean'][0] == pytest.approx(p) and rnd['std'][0] == pytest.approx(0, abs=1e-12)
    for i, f in enumerate(fractions[1:], 1):
        k = n - num_dropped(n, f)
        sd = math.sqrt(p * (1 - p) / k * (n - k) / (n - 1))
        assert abs(rnd['mean'][i] - p) < 4 * sd / math.sqrt(repeats)
        assert rnd['std'][i] == pytest.approx(sd, rel=0.15)
        assert rnd['p05'][i] <= rnd['mean'][i] <= rnd['p95'][i]


def test_filtering_curves_all_rankings_and_rows():
    rng = np.random.default_rng(2)
    correct = {'m1': rng.random(50) < 0.5, 'm2': rng.random(50) < 0.7}
    label = correct['m1'] * 0.5 + correct['m2'] * 0.5
    metrics = {m: mean_metric(dict(top1=c)) for m, c in correct.items()}
    curves = filtering_curves(dict(model=label + rng.normal(0, 0.3, 50), oracle=label), metrics,
                              [0, 0.2, 0.4], repeats=5, seed=0)
    assert set(curves) == {'m1', 'm2'} and set(curves['m1']) == {'model', 'oracle', 'random'}
    for m, c in correct.items():  # every ranking starts from the unfiltered accuracy
        assert curves[m]['model']['top1'][0] == curves[m]['oracle']['top1'][0] == pytest.approx(c.mean())
    rows = curves_to_rows(curves, [0, 0.2, 0.4], 50)
    assert len(rows) == 2 * 3 * 3 and [r['n_kept'] for r in rows[:3]] == [50, 40, 30]
    saved = json.loads(json.dumps(curves_to_json(curves)))
    assert saved['m1']['random']['top1']['std'][0] == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match='differ in length'):
        filtering_curves(dict(a=[1, 2], b=[1, 2, 3]), metrics)


# ---------------------------------------------------------------- COCO AP on subsets
BOX = [10.0, 10.0, 20.0, 20.0]  # xywh, in a 64 x 64 image
#: the image index is in pixel (0, 0, 0); the stand-in detector answers with fixed detections:
#: 0 the exact box (0.9), 1 a box of IoU 400 / 640 = 0.625 (0.8), 2 nothing, 3 a false positive on
#: an image without objects (0.95)
DETECTIONS = {0: [([10, 10, 30, 30], 0.9)], 1: [([10, 10, 30, 42], 0.8)], 2: [],
              3: [([40, 40, 60, 60], 0.95)]}
QUALITY = [0.9, 0.5, 0.2, 0.1]  # the false positive rated lowest, then the miss


def fixed_detector(images):
    out = []
    for image in images:
        dets = DETECTIONS[int(image[0, 0, 0]) % 4]
        boxes = np.array([b for b, _ in dets], float).reshape(-1, 4)
        masks = np.zeros((len(dets), *image.shape[:2]), bool)
        for k, (x0, y0, x1, y1) in enumerate(boxes.round().astype(int)):
            masks[k, y0:y1, x0:x1] = True
        out.append(dict(boxes=boxes, scores=[s for _, s in dets], labels=[1] * len(dets), masks=masks))
    return out


def ap101(tp, scores, n_gt):
    """Reference 101-point interpolated AP (COCO): precision made monotone, sampled at recall
    0, 0.01, ..., 1 (first recall >= threshold)."""
    order = np.argsort(-np.asarray(scores), kind='mergesort')
    tp = np.asarray(tp, float)[order]
    recall = np.cumsum(tp) / n_gt
    precision = np.cumsum(tp) / np.arange(1, len(tp) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    thresholds = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, thresholds, side='left')
    return float(np.mean([envelope[i] if i < len(envelope) else 0.0 for i in idx]))


@pytest.fixture(scope='module')
def det_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp('det_images')
    paths = {}
    for i in range(4):
        image = np.full((64, 64, 3), 128, np.uint8)
        image[0, 0] = i
        paths[f'img{i}.png'] = str(folder / f'img{i}.png')
        cv2.imwrite(paths[f'img{i}.png'], image)
    return paths


def test_coco_subset_ap_hand_computed(det_images, tmp_path):
    machine = DetectorAdapter(fixed_detector, task='det', name='fixed', device='cpu')
    outputs, errors = downstream.run_machines([machine], det_images, tmp_path / 'cache', progress=False)
    assert not errors
    keys = sorted(det_images)
    gt = [dict(bbox=BOX, category_id=1, area=400.0, iscrowd=0)]
    refs = [(gt, (64, 64))] * 3 + [([], (64, 64))]
    metric = downstream.det_metric(outputs['fixed'], keys, refs, 'det')
    curve = filter_curve(ascending(QUALITY), metric, [0.0, 0.25, 0.5, 0.75])
    # all 4: FP .95, TP .9, TP@.5 / FP@.75 .8 over 3 objects
    assert curve['AP50'][0] == pytest.approx(67 / 101 * 2 / 3)  # precision 2/3 up to recall 2/3
    assert curve['AP75'][0] == pytest.approx(34 / 101 * 0.5)  # precision 1/2 up to recall 1/3
    assert curve['AP50'][1] == pytest.approx(67 / 101)  # the false positive's image dropped
    assert curve['AP75'][1] == pytest.approx(34 / 101)
    assert curve['AP50'][2] == pytest.approx(ap101([1, 1], [0.9, 0.8], 2))  # the miss dropped too: 1.0
    assert curve['AP75'][2] == pytest.approx(ap101([1, 0], [0.9, 0.8], 2))
    assert curve['AP75'][3] == pytest.approx(1.0)
    # AP@[.5:.95] against the reference formula at each IoU threshold (the IoU-0.625 box: TP up to .6)
    ious = np.linspace(0.5, 0.95, 10)
    expected = np.mean([ap101([0, 1, t <= 0.6 + 1e-9], [0.95, 0.9, 0.8], 3) for t in ious])
    assert curve['AP'][0] == pytest.approx(expected)
    # equals pycocotools run afresh on the subset only
    for f in (0.0, 0.25, 0.5):
        kept = kept_indices(ascending(QUALITY), f)
        fresh = CocoSubsetAP([(64, 64)] * len(kept), [refs[i][0] for i in kept],
                             [outputs['fixed'][keys[i]]['dets'] for i in kept])
        assert fresh(np.arange(len(kept))) == pytest.approx(metric(kept))
    assert metric(np.array([3])) == dict(AP=None, AP50=None, AP75=None)  # no object kept: n/a


def test_instance_masks_and_scaled_annotations(det_images, tmp_path):
    """ins: mask AP of rectangle masks equals box AP; annotations of a larger original are scaled."""
    machine = DetectorAdapter(fixed_detector, task='ins', name='fixed_ins', device='cpu')
    outputs, _ = downstream.run_machines([machine], det_images, tmp_path / 'cache', progress=False)
    keys = sorted(det_images)
    big = [dict(bbox=[20.0, 20.0, 40.0, 40.0], category_id=1, area=1600.0, iscrowd=0,
                segmentation=[[20, 20, 60, 20, 60, 60, 20, 60]])]  # the same object at 128 x 128
    refs = [(big, (128, 128))] * 3 + [([], (128, 128))]
    metric = downstream.det_metric(outputs['fixed_ins'], keys, refs, 'ins')
    assert metric(np.arange(4))['AP50'] == pytest.approx(67 / 101 * 2 / 3)
    assert metric(np.array([0, 1]))['AP50'] == pytest.approx(1.0)


def test_coco_subset_ap_without_detections():
    ap = CocoSubsetAP([(8, 8)] * 2, [[dict(bbox=[0, 0, 4, 4], category_id=1)], []], [[], []])
    assert ap(np.array([0, 1])) == dict(AP=0.0, AP50=0.0, AP75=0.0)
    assert ap(np.array([1])) == dict(AP=None, AP50=None, AP75=None)


# ---------------------------------------------------------------- machines and their cache
class RedGreen(nn.Module):
    """Answers class ``a`` when the image is redder than green, else class ``b``."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        d = x[:, 0].mean((1, 2)) - x[:, 1].mean((1, 2))
        logits = torch.zeros(x.shape[0], 1000)
        logits[:, self.a], logits[:, self.b] = 20 * d, -20 * d
        return logits


def class_index(name: str) -> int:
    return [n for _, n in imagenet_classes()].index(name)


@MACHINES.register_module(force=True)
class RedGreenClassifier(ClassifierMachine):
    """A tiny real classifier machine for the tests (class ``sea snake`` or ``ski``)."""

    calls = 0

    def __init__(self, name: str = 'redgreen', **kwargs) -> None:
        super().__init__(RedGreen(class_index('sea snake'), class_index('ski')), name, input_size=16,
                         **{'device': 'cpu', **kwargs})

    def predict(self, images):
        type(self).calls += len(images)
        return super().predict(images)


@MACHINES.register_module(force=True)
class FixedDetector(DetectorAdapter):
    """The stand-in detector of these tests as a registered machine."""

    def __init__(self, task: str = 'det', **kwargs) -> None:
        super().__init__(fixed_detector, task=task, name=f'fixed_{task}', **{'device': 'cpu', **kwargs})


def test_machine_config_short_forms():
    config = downstream.machine_config
    assert config('EfficientNetLite:lite0') == dict(type='EfficientNetLite', variant='lite0')
    cfg = config('DetectorAdapter:fn=pkg.mod:make,task=ins,min_score=0.5,label_map=coco80')
    assert cfg == dict(type='DetectorAdapter', fn='pkg.mod:make', task='ins', min_score=0.5,
                       label_map='coco80')
    assert downstream.machine_config('RedGreenClassifier') == dict(type='RedGreenClassifier')
    with pytest.raises(KeyError, match='Did you mean: EfficientNetLite'):
        downstream.machine_config('EfficientNetLight:lite0')
    with pytest.raises(ValueError, match='only the first item'):
        downstream.machine_config('EfficientNetLite:lite0,lite1')
    machines = downstream.build_machines(['RedGreenClassifier', dict(type='RedGreenClassifier', name='b')],
                                         dict(batch_size=3))
    assert [m.name for m in machines] == ['redgreen', 'b'] and machines[0].batch_size == 3
    with pytest.raises(ValueError, match='unique'):
        downstream.build_machines(['RedGreenClassifier', 'RedGreenClassifier'])


def test_cache_reused_resumed_and_invalidated(tmp_path):
    paths = {}
    rng = np.random.default_rng(0)
    for i in range(5):
        paths[f'im{i}.png'] = str(tmp_path / f'im{i}.png')
        cv2.imwrite(paths[f'im{i}.png'], rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    paths['broken.png'] = str(tmp_path / 'broken.png')
    Path(paths['broken.png']).write_bytes(b'not an image')
    machine = RedGreenClassifier()
    RedGreenClassifier.calls = 0
    first, errors = downstream.run_machines([machine], paths, tmp_path / 'cache', chunk_size=2,
                                            progress=False)
    assert RedGreenClassifier.calls == 5 and list(errors) == ['broken.png']
    assert len(list((tmp_path / 'cache').glob('redgreen-*/part-*.json'))) == 3  # 2 + 2 + 1 images
    assert set(first['redgreen']) == {f'im{i}.png' for i in range(5)}
    again, _ = downstream.run_machines([RedGreenClassifier()], paths, tmp_path / 'cache', progress=False)
    assert RedGreenClassifier.calls == 5 and again == first  # nothing recomputed
    cv2.imwrite(paths['im3.png'], np.zeros((20, 24, 3), np.uint8))
    os.utime(paths['im3.png'], ns=(1, 1))  # a changed file (size and mtime) is recomputed
    downstream.run_machines([RedGreenClassifier()], paths, tmp_path / 'cache', progress=False)
    assert RedGreenClassifier.calls == 6
    entry = first['redgreen']['im0.png']
    assert entry['hw'] == [20, 24] and len(entry['top5']) == 5 and entry['prob5'][0] >= entry['prob5'][1]


def test_cls_ground_truth_sources(miqd_root, tmp_path):
    src_ids = miqd_root['cls']['src_ids']
    root = miqd_root['root']
    # the split files' categories (MIQD-2.5M): the full synset name or its first synonym
    found = downstream.cls_ground_truth(src_ids, root)
    names = [n for _, n in imagenet_classes()]
    for src in src_ids:
        category = miqd_root['categories'][src]
        assert [names[c] for c in found[src]] == [category.split(',')[0]]
    assert downstream.classes_of_name('crane') == [i for i, n in enumerate(names) if n == 'crane']
    # an annotation file wins
    table = tmp_path / 'classes.csv'
    table.write_text('src_id,labels\n' + ''.join(f'{s},1 2\n' for s in src_ids))
    assert downstream.cls_ground_truth(src_ids, root, str(table)) == {s: [1, 2] for s in src_ids}
    # a built database's manifest
    db = tmp_path / 'db'
    db.mkdir()
    (db / 'manifest_cls.json').write_text(json.dumps(dict(sources={'a': dict(annotation=[3, 4])})))
    assert downstream.cls_ground_truth(['a'], db) == {'a': [3, 4]}
    with pytest.raises(ValueError, match='--annotations'):
        downstream.cls_ground_truth(['a', 'b'], db)


# ---------------------------------------------------------------- the experiment end to end
def write_predictions(path: Path, rows) -> None:
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['img_path', 'pred_score', 'gt_score', 'valid'])
        writer.writerows(rows)


def all_images(tree: dict, task: str):
    layout = tree[task]['layout']
    return sorted(str(p) for src in tree[task]['src_ids'] for p in (layout.images / src).glob('*.png'))


def test_filter_eval_cls(miqd_root, tmp_path):
    images = all_images(miqd_root, 'cls')
    out = tmp_path / 'out'
    # the machine's own correctness as label: the oracle drops the wrong answers first
    outputs, _ = downstream.run_machines([RedGreenClassifier()], {os.path.basename(p): p for p in images},
                                         out / 'machine_cache', progress=False)
    classes = downstream.cls_ground_truth(miqd_root['cls']['src_ids'], miqd_root['root'])
    src_of = {os.path.basename(p): Path(p).parent.name for p in images}
    correct = {k: float(o['top5'][0] in classes[src_of[k]]) for k, o in outputs['redgreen'].items()}
    assert 0.1 < np.mean(list(correct.values())) < 0.9
    rng = np.random.default_rng(0)
    label = [correct[os.path.basename(p)] for p in images]
    pairs = list(zip(images, label))
    write_predictions(tmp_path / 'good.csv', [(p, y + rng.normal(0, 0.1), y, True) for p, y in pairs])
    write_predictions(tmp_path / 'bad.csv', [(p, rng.random(), y, p != images[0]) for p, y in pairs])
    calls = RedGreenClassifier.calls
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        result = filter_eval([f'good={tmp_path / "good.csv"}', str(tmp_path / 'bad.csv')],
                             ['RedGreenClassifier'], out_dir=str(out), random_repeats=10, progress=False)
    assert RedGreenClassifier.calls == calls  # every output came from the cache
    assert result['num_images'] == len(images) - 1  # the image flagged invalid in bad.csv is left out
    assert result['models'] == ['good', 'bad'] and result['metrics'] == ['top1', 'top5']
    curves = result['curves']['redgreen']
    oracle = curves['oracle']['top1']
    n_correct = sum(correct[os.path.basename(p)] for p in images[1:])
    assert oracle == pytest.approx([min(1.0, n_correct / k) for k in result['n_kept']])  # wrong out first
    assert curves['good']['top1'][-1] > curves['random']['top1']['mean'][-1] > 0
    stem = out / 'filter_cls'
    saved = json.loads(stem.with_suffix('.json').read_text())
    assert saved['curves']['redgreen']['oracle']['top1'] == oracle
    with open(stem.with_suffix('.csv')) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 4 * 8  # (good, bad, oracle, random) x (top1, top5) x 8 fractions
    png = (out / 'filter_cls_top1.png').read_bytes()
    assert png.startswith(b'\x89PNG\r\n\x1a\n') and len(png) > 5000
    assert '| redgreen | oracle |' in printed.getvalue()
    # a second run never overwrites the first
    with contextlib.redirect_stdout(io.StringIO()):
        filter_eval([str(tmp_path / 'good.csv')], ['RedGreenClassifier'], out_dir=str(out), random_repeats=2,
                    progress=False, fractions=[0, 0.5])
    assert json.loads(stem.with_suffix('.json').read_text()) == saved
    assert len(list(out.glob('filter_cls_*.json'))) == 1


def test_filter_eval_det(miqd_root, tmp_path):
    images = all_images(miqd_root, 'det')
    rng = np.random.default_rng(1)
    write_predictions(tmp_path / 'p.csv', [(p, rng.random(), rng.random(), True) for p in images])
    with contextlib.redirect_stdout(io.StringIO()):
        result = filter_eval([f'model={tmp_path / "p.csv"}'], ['FixedDetector:det'],
                             out_dir=str(tmp_path / 'out'), random_repeats=3, progress=False)
    assert result['task'] == 'det' and result['metrics'] == ['AP', 'AP50', 'AP75']
    curves = result['curves']['fixed_det']
    start = {r: curves[r]['AP75'][0] for r in ('model', 'oracle')}
    assert start['model'] == start['oracle'] == curves['random']['AP75']['mean'][0]
    assert all(0 <= v <= 1 for r in ('model', 'oracle') for v in curves[r]['AP'] if v is not None)
    assert (tmp_path / 'out' / 'filter_det_AP75.png').stat().st_size > 0
    with pytest.raises(ValueError, match='one task at a time'):
        filter_eval([str(tmp_path / 'p.csv')], ['FixedDetector:det'], task='cls')


def test_filter_eval_det_annotated_only(miqd_root, tmp_path):
    """--annotated-only keeps the images of sources with an annotated object: a source without
    boxes, or with only an ignore (crowd) region, is left out (MIQD-mini-det's consistency-only
    sources, whose pseudo ground truth is empty)."""
    images = all_images(miqd_root, 'det')
    coco = json.loads(Path(miqd_root['coco']).read_text())
    src_ids = sorted(miqd_root['det']['src_ids'])
    keep, crowd = int(src_ids[0]), int(src_ids[1])
    anns = [a for a in coco['annotations'] if a['image_id'] in (keep, crowd)]
    for ann in anns:
        ann['iscrowd'] = int(ann['image_id'] == crowd)
    (tmp_path / 'coco.json').write_text(json.dumps(dict(coco, annotations=anns)))
    rng = np.random.default_rng(2)
    write_predictions(tmp_path / 'p.csv', [(p, rng.random(), rng.random(), True) for p in images])
    args = dict(preds=[f'model={tmp_path / "p.csv"}'], machines=['FixedDetector:det'], random_repeats=2,
                annotations=str(tmp_path / 'coco.json'), progress=False)
    with contextlib.redirect_stdout(io.StringIO()):
        result = filter_eval(**args, annotated_only=True, out_dir=str(tmp_path / 'out'))
        everything = filter_eval(**args, out_dir=str(tmp_path / 'all'))
    expected = [p for p in images if Path(p).parent.name == src_ids[0]]
    assert expected and result['num_images'] == len(expected) and result['annotated_only']
    assert everything['num_images'] == len(images) and not everything['annotated_only']


def test_filter_eval_cls_annotated_only(miqd_root, tmp_path):
    """cls: sources without ImageNet classes (MIQD-mini's consistency-only photos) stop the run
    with the fix named, or are left out with --annotated-only."""
    images = all_images(miqd_root, 'cls')
    src_ids = sorted(miqd_root['cls']['src_ids'])
    table = tmp_path / 'classes.csv'
    table.write_text('src_id,labels\n' + f'{src_ids[0]},1 2\n')        # classes for one source only
    rng = np.random.default_rng(3)
    write_predictions(tmp_path / 'p.csv', [(p, rng.random(), rng.random(), True) for p in images])
    args = dict(preds=[f'model={tmp_path / "p.csv"}'], machines=['RedGreenClassifier'], random_repeats=2,
                annotations=str(table), progress=False)
    with pytest.raises(ValueError, match='--annotated-only'):
        with contextlib.redirect_stdout(io.StringIO()):
            filter_eval(**args, out_dir=str(tmp_path / 'all'))
    with contextlib.redirect_stdout(io.StringIO()):
        result = filter_eval(**args, annotated_only=True, out_dir=str(tmp_path / 'out'))
    expected = [p for p in images if Path(p).parent.name == src_ids[0]]
    assert expected and result['num_images'] == len(expected) and result['annotated_only']
