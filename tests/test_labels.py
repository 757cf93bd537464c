"""Label formulas on hand-computed cases, COCO AP through pycocotools, aggregation, the labeller."""
import json
import math

import numpy as np
import pytest
from mmengine.config import ConfigDict

from miqa.database.coco import detections_to_annotations
from miqa.database.detector_adapter import DetectorAdapter
from miqa.database.labels import (
    CLS_ACCURACY,
    CLS_CONSISTENCY,
    MachineLabeller,
    aggregate,
    build_labeller,
    coco_ap,
    normalise_weights,
)
from miqa.database.machines import Machine
from miqa.database.tasks import LABEL_KEYS

pytest.importorskip('pycocotools')


# ---------------------------------------------------------------- cls formulas
def test_identical_predictions_are_fully_consistent():
    p = np.random.default_rng(0).dirichlet(np.ones(1000))
    for name, fn in CLS_CONSISTENCY.items():
        np.testing.assert_allclose(fn(p, p[None]), [1.0], atol=1e-9, err_msg=name)


def test_flipped_class_hand_computed():
    p, q = np.array([0.8, 0.2, 0.0]), np.array([[0.2, 0.8, 0.0]])
    expected_js = 1 - (0.8 * math.log(1.6) + 0.2 * math.log(0.4)) / math.log(2)  # both KL terms equal
    values = {name: float(fn(p, q)[0]) for name, fn in CLS_CONSISTENCY.items()}
    assert values == pytest.approx(dict(prob_overlap=0.4, retained_top1=0.25, js_similarity=expected_js,
                                        top1_agreement=0.0))
    disjoint = np.array([[0.0, 0.0, 1.0]])
    assert all(float(fn(p, disjoint)[0]) == pytest.approx(0.0, abs=1e-9) for fn in CLS_CONSISTENCY.values())


def test_consistency_in_unit_interval_and_retained_clipped():
    rng = np.random.default_rng(1)
    p, q = rng.dirichlet(np.ones(50)), rng.dirichlet(np.ones(50) * 0.1, size=20)
    for fn in CLS_CONSISTENCY.values():
        values = fn(p, q)
        assert values.shape == (20,) and np.all((values >= -1e-12) & (values <= 1 + 1e-12))
    sharper = np.array([[0.0, 0.9, 0.1]])
    assert CLS_CONSISTENCY['retained_top1'](np.array([0.2, 0.5, 0.3]), sharper)[0] == 1.0


def test_accuracy_hit_and_miss():
    q = np.zeros((1, 10))
    q[0, [1, 2, 3]] = [0.7, 0.2, 0.1]
    hit = {name: float(fn(q, [1])[0]) for name, fn in CLS_ACCURACY.items()}
    assert hit == pytest.approx(dict(gt_mass=0.7, gt_max=0.7, top1_hit=1.0, top5_hit=1.0))
    near = {name: float(fn(q, [2, 3])[0]) for name, fn in CLS_ACCURACY.items()}
    assert near == pytest.approx(dict(gt_mass=0.3, gt_max=0.2, top1_hit=0.0, top5_hit=1.0))
    miss = {name: float(fn(q, [9])[0]) for name, fn in CLS_ACCURACY.items()}
    assert miss == pytest.approx(dict(gt_mass=0.0, gt_max=0.0, top1_hit=0.0, top5_hit=0.0))


# ---------------------------------------------------------------- COCO AP
def dets(boxes, scores, labels, masks=None):
    return dict(boxes=np.array(boxes, float).reshape(-1, 4), scores=np.array(scores, float),
                labels=np.array(labels, int), masks=masks)


TWO = [dict(bbox=[10, 10, 50, 50], category_id=1, iscrowd=0, area=2500),
       dict(bbox=[100, 100, 40, 40], category_id=1, iscrowd=0, area=1600)]
ONE = [dict(bbox=[0, 0, 100, 100], category_id=1)]
SIZE = (200, 200)


def test_ap_perfect_and_one_of_two_missed():
    assert coco_ap(TWO, dets([[10, 10, 60, 60], [100, 100, 140, 140]], [0.9, 0.8], [1, 1]), SIZE) == \
        pytest.approx(1.0)
    # recall reaches 0.5 at precision 1: 51 of the 101 recall points (0, .01, ..., .50) -> 51/101
    assert coco_ap(TWO, dets([[10, 10, 60, 60]], [0.9], [1]), SIZE) == pytest.approx(51 / 101)


def test_ap_iou_thresholds_and_ranking():
    partial = dets([[0, 0, 100, 72]], [0.9], [1])  # IoU 0.72: matches at .50 ... .70 (5 of 10)
    assert coco_ap(ONE, partial, SIZE, metric='ap') == pytest.approx(0.5)
    assert coco_ap(ONE, partial, SIZE, metric='ap50') == pytest.approx(1.0)
    assert coco_ap(ONE, partial, SIZE, metric='ap75') == pytest.approx(0.0)
    false_positive_first = dets([[150, 150, 190, 190], [0, 0, 100, 100]], [0.95, 0.9], [1, 1])
    assert coco_ap(ONE, false_positive_first, SIZE) == pytest.approx(0.5)
    false_positive_last = dets([[150, 150, 190, 190], [0, 0, 100, 100]], [0.8, 0.9], [1, 1])
    assert coco_ap(ONE, false_positive_last, SIZE) == pytest.approx(1.0)
    wrong_class = dets([[0, 0, 100, 100]], [0.9], [2])
    assert coco_ap(ONE, wrong_class, SIZE) == 0.0
    assert coco_ap(ONE, wrong_class, SIZE, use_cats=False) == pytest.approx(1.0)


def test_ap_empty_cases_documented_values():
    nothing = dets([], [], [])
    assert coco_ap(ONE, nothing, SIZE) == 0.0                       # objects, no predictions
    assert coco_ap([], nothing, SIZE) == 1.0                        # nothing and nothing: agree
    assert coco_ap([], dets([[0, 0, 9, 9]], [0.9], [1]), SIZE) == 0.0   # confident false positive
    assert coco_ap([], dets([[0, 0, 9, 9]], [0.1], [1]), SIZE, score_thr=0.5) == 1.0  # below threshold
    crowd_only = [dict(bbox=[0, 0, 100, 100], category_id=1, iscrowd=1)]
    assert coco_ap(crowd_only, nothing, SIZE) == 1.0


def test_ap_masks_and_clean_predictions_as_reference():
    masks = np.zeros((1, *SIZE), bool)
    masks[0, :100, :100] = True
    polygon = [dict(bbox=[0, 0, 100, 100], category_id=1, area=10000,
                    segmentation=[[0, 0, 100, 0, 100, 100, 0, 100]])]
    own = dets([[0, 0, 100, 100]], [0.9], [1], masks)
    assert coco_ap(polygon, own, SIZE, iou_type='segm') == pytest.approx(1.0)
    clean = dets([[0, 0, 100, 100], [120, 120, 180, 180]], [0.9, 0.3], [1, 1])
    reference = detections_to_annotations(clean, score_thr=0.5, iou_type='bbox')
    assert [r['bbox'] for r in reference] == [[0.0, 0.0, 100.0, 100.0]]
    assert coco_ap(reference, clean, SIZE) == pytest.approx(1.0)  # the low-score extra is ranked last


# ---------------------------------------------------------------- aggregation
def test_aggregation_weighted_mean_std():
    values = np.array([[0.2, 0.4], [0.6, 0.8]])
    out = aggregate(values, normalise_weights([1, 3], ['a', 'b']))
    np.testing.assert_allclose(out['weighted'], [0.5, 0.7])
    np.testing.assert_allclose(out['mean'], [0.4, 0.6])
    np.testing.assert_allclose(out['std'], [0.2, 0.2])  # ddof=0
    np.testing.assert_allclose(normalise_weights(None, ['a', 'b', 'c']), [1 / 3] * 3)
    np.testing.assert_allclose(normalise_weights(dict(b=1, a=3), ['a', 'b']), [0.75, 0.25])
    for bad in ([1], [-1, 2], dict(a=1), [0, 0]):
        with pytest.raises(ValueError):
            normalise_weights(bad, ['a', 'b'])


# ---------------------------------------------------------------- the labeller
class MeanColourMachine(Machine):
    """A deterministic 3-class 'classifier': softmax of the image's mean R, G, B (x 20)."""

    task = 'cls'

    def predict(self, images):
        logits = np.stack([np.asarray(im, float).mean((0, 1)) / 255 * 20 for im in images])
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)


def colour(r, g, b, size=8):
    return np.broadcast_to(np.array([r, g, b], np.uint8), (size, size, 3)).copy()


def test_labeller_cls_with_toy_machines():
    machines = [MeanColourMachine('a', device='cpu'), MeanColourMachine('b', device='cpu')]
    labeller = MachineLabeller('cls', machines, weights=[1, 1])
    source = colour(255, 0, 0)
    variants = {'same.png': source.copy(), 'green.png': colour(0, 255, 0), 'grey.png': colour(128, 128, 128)}
    scores = labeller.label(source, variants, [0])
    assert list(scores) == list(variants) and all(set(s) == set(LABEL_KEYS) for s in scores.values())
    assert scores['same.png']['weighted_consistency'] == pytest.approx(1.0)
    green = scores['green.png']
    assert green['weighted_consistency'] < 1e-3 and green['weighted_accuracy'] < 1e-3
    assert scores['grey.png']['weighted_accuracy'] == pytest.approx(1 / 3)
    assert scores['grey.png']['std_consistency'] == 0.0  # identical machines
    with pytest.raises(ValueError, match='annotation'):
        labeller.label(source, variants, None)
    lenient = MachineLabeller('cls', [MeanColourMachine('a', device='cpu')], missing_annotation='nan')
    assert math.isnan(lenient.label(source, variants, None)['same.png']['weighted_accuracy'])
    with pytest.raises(ValueError, match='0..999'):
        labeller.label(source, variants, [1000])
    with pytest.raises(KeyError, match='prob_overlap'):
        MachineLabeller('cls', [MeanColourMachine('a')], consistency='overlap')
    with pytest.raises(ValueError, match='unique'):
        MachineLabeller('cls', [MeanColourMachine('a'), MeanColourMachine('a')])


def bright_box_detector(images):
    """One 'object' (category 1) over the whole image when it is bright, nothing when dark."""
    out = []
    for im in images:
        h, w = im.shape[:2]
        bright = im.mean() > 100
        out.append(dict(boxes=np.array([[0, 0, w, h]] if bright else np.zeros((0, 4))),
                        scores=np.array([0.9] if bright else []), labels=np.array([1] if bright else []),
                        masks=np.ones((1 if bright else 0, h, w), bool)))
    return out


@pytest.mark.parametrize('task', ['det', 'ins'])
def test_labeller_det_ins_with_adapter(task):
    labeller = build_labeller(dict(task=task, machines=[DetectorAdapter(bright_box_detector, task=task)],
                                   consistency='ap75'))
    source = colour(200, 200, 200, size=32)
    annotation = [dict(bbox=[0, 0, 32, 32], category_id=1, iscrowd=0, area=1024,
                       segmentation=[[0, 0, 32, 0, 32, 32, 0, 32]])]
    scores = labeller.label(source, {'clean.png': source.copy(), 'dark.png': colour(10, 10, 10, size=32)},
                            annotation)
    assert scores['clean.png']['weighted_consistency'] == pytest.approx(1.0)
    assert scores['clean.png']['weighted_accuracy'] == pytest.approx(1.0)
    dark = scores['dark.png']
    assert dark['weighted_consistency'] == 0.0 and dark['weighted_accuracy'] == 0.0
    assert labeller.describe()['formulas']['empty_reference']


def blind_detector(images):
    """Sees nothing on a bright image and a spurious object on a dark one."""
    return bright_box_detector([255 - im for im in images])


def test_aggregation_leaves_out_undefined_machines():
    values = np.array([[0.2, np.nan, np.nan], [0.6, 0.8, np.nan], [1.0, 0.4, np.nan]])
    w = normalise_weights([1, 1, 2], ['a', 'b', 'c'])
    out = aggregate(values, w)
    np.testing.assert_allclose(out['weighted'][:2], [(0.2 + 0.6 + 2 * 1.0) / 4, (0.8 + 2 * 0.4) / 3])
    np.testing.assert_allclose(out['mean'][:2], np.nanmean(values[:, :2], 0))
    np.testing.assert_allclose(out['std'][:2], np.nanstd(values[:, :2], 0))
    assert all(math.isnan(out[k][2]) for k in ('weighted', 'mean', 'std'))


@pytest.mark.parametrize('rule, dim', [('agree', 0.5), ('skip', 1.0)])
def test_empty_reference_rule(rule, dim):
    """'blind' finds nothing on the clean (bright) photo, so its reference is empty: 'agree'
    averages in its 0/1 vote on each degraded image, 'skip' leaves it out ('sees' alone)."""
    machines = [DetectorAdapter(bright_box_detector, name='sees'),
                DetectorAdapter(blind_detector, name='blind')]
    labeller = MachineLabeller('det', machines, missing_annotation='nan', exclude_without_reference=True,
                               empty_reference=rule)
    source = colour(200, 200, 200, size=32)
    variants = {'same.png': source.copy(),                 # sees: AP 1; blind: nothing again (1 / NaN)
                'dim.png': colour(130, 130, 130, size=32),  # sees: AP 1; blind: a spurious box (0 / NaN)
                'dark.png': colour(10, 10, 10, size=32)}    # sees: lost it (AP 0); blind: spurious (0 / NaN)
    scores = labeller.label(source, variants, None)
    consistency = {k: v['weighted_consistency'] for k, v in scores.items()}
    assert consistency == pytest.approx({'same.png': 1.0, 'dim.png': dim, 'dark.png': 0.0})
    assert scores['dim.png']['std_consistency'] == pytest.approx(0.5 if rule == 'agree' else 0.0)
    assert labeller.describe()['empty_reference'] == rule
    formula = labeller.describe()['formulas']['empty_reference']
    assert formula.startswith('1 if' if rule == 'agree' else 'undefined')
    with pytest.raises(ValueError, match='exclude_without_reference'):
        MachineLabeller('det', machines, empty_reference='skip')
    with pytest.raises(ValueError, match='empty_reference'):
        MachineLabeller('det', machines, empty_reference='ignore', exclude_without_reference=True)
    if rule == 'skip':
        with pytest.raises(ValueError, match='weighted above 0'):
            MachineLabeller('det', machines, exclude_without_reference=True, empty_reference='skip',
                            weights=dict(sees=0, blind=1))
        blind_only = MachineLabeller('det', machines[1:], missing_annotation='nan',
                                     exclude_without_reference=True, empty_reference='skip')
        with pytest.raises(ValueError, match='no machine has a clean detection'):
            blind_only.label(source, variants, None)


def test_labeller_end_to_end_lite0_on_a_real_photo():
    skdata = pytest.importorskip('skimage.data', reason='scikit-image provides the real test photo')
    from miqa.distortions import apply_distortion

    source = skdata.chelsea()[:, 40:340]  # 300 x 300
    variants = {'clean.png': source.copy(),
                'noise_5.png': apply_distortion(source, 'gaussian_noise', 5, seed=0),
                'contrast_3.png': apply_distortion(source, 'contrast', 3, seed=0)}
    cfg = ConfigDict(type='MachineLabeller', task='cls', weights=None,
                     machines=[dict(type='EfficientNetLite', variant='lite0', device='cpu')])
    labeller = build_labeller(cfg)
    scores = labeller.label(source, variants, [281, 282, 285])
    assert scores['clean.png']['weighted_consistency'] == pytest.approx(1.0, abs=1e-6)
    assert scores['clean.png']['weighted_accuracy'] > 0.5
    for name in ('noise_5.png', 'contrast_3.png'):
        assert scores[name]['weighted_consistency'] < scores['clean.png']['weighted_consistency']
    assert all(0.0 <= v <= 1.0 for s in scores.values() for v in s.values())
    description = json.loads(json.dumps(labeller.describe()))
    assert description['machines'][0]['variant'] == 'lite0'
    assert description['weights'] == {'efficientnet_lite0': 1.0}
