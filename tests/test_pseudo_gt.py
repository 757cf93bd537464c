"""Pseudo ground truth from detector agreement (miqa.database.pseudo_gt): matches computed by hand
(IoU at the threshold, score thresholds, class-agnostic switch, greedy choice, averaged boxes,
ignore regions, empty cases), IoU against torchvision, the COCO category table, and the labeller
that uses it (pseudo ground truth, consistency-only sources, exclusion, one clean run per source)."""
import math
import os

import numpy as np
import pytest
import torch

from miqa.database.labels import MachineLabeller, coco_ap
from miqa.database.machines import COCO80_TO_91, Detections, Machine
from miqa.database.pseudo_gt import (
    COCO_CATEGORIES,
    DetectorAgreement,
    box_iou,
    build_pseudo_gt,
    has_objects,
)


def dets(*rows) -> Detections:
    """Detections from rows ``(x0, y0, x1, y1, score, category_id)``."""
    rows = np.asarray(rows, np.float64).reshape(-1, 6)
    return Detections(boxes=rows[:, :4], scores=rows[:, 4], labels=rows[:, 5].astype(np.int64), masks=None)


def objects(anns):
    return [a for a in anns if not a['iscrowd']]


def crowds(anns):
    return [a for a in anns if a['iscrowd']]


def test_box_iou_matches_torchvision():
    from torchvision.ops import box_iou as tv_iou

    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 50, (40, 2, 2))
    boxes = np.concatenate([corners.min(1), corners.max(1)], 1)
    ref = tv_iou(torch.from_numpy(boxes[:1]), torch.from_numpy(boxes)).numpy()[0]
    np.testing.assert_allclose(box_iou(boxes[0], boxes), ref, atol=1e-12)
    assert box_iou([0, 0, 0, 0], np.array([[0, 0, 0, 0.0]]))[0] == 0.0  # empty union: 0, no NaN


def test_iou_exactly_at_the_threshold_agrees_and_just_below_does_not():
    rule = DetectorAgreement()  # IoU >= 0.5, same class, one >= 0.4, the other >= 0.3
    a = dets((0, 0, 10, 10, 0.6, 1))
    # [0, 0, 10, 20]: intersection 100, union 200 -> IoU 0.5 exactly
    anns = rule([a, dets((0, 0, 10, 20, 0.35, 1))])
    assert len(objects(anns)) == 1 and not crowds(anns)
    obj = objects(anns)[0]
    assert obj['bbox'] == [0.0, 0.0, 10.0, 15.0]          # mean corners (0, 0, 10, 15), xywh
    assert obj['area'] == 150.0 and obj['category_id'] == 1
    assert obj['score'] == pytest.approx((0.6 + 0.35) / 2) and obj['machines'] == 2
    # [0, 0, 10, 20.5]: IoU 100 / 205 < 0.5: no object; the 0.6 box is an ignore region
    anns = rule([a, dets((0, 0, 10, 20.5, 0.35, 1))])
    assert not objects(anns)
    assert crowds(anns) == [dict(bbox=[0.0, 0.0, 10.0, 10.0], category_id=1, iscrowd=1, area=100.0, score=0.6,
                                 machines=1)]


@pytest.mark.parametrize('scores, agreed', [((0.45, 0.31), True), ((0.40, 0.30), True), ((0.39, 0.39), False),
                                            ((0.60, 0.29), False), ((0.29, 0.60), False)])
def test_score_thresholds(scores, agreed):
    rule = DetectorAgreement(ignore_score=None)
    anns = rule([dets((5, 5, 25, 25, scores[0], 18)), dets((5, 5, 25, 25, scores[1], 18))])
    assert len(anns) == int(agreed)


def test_class_agnostic_switch_keeps_the_seed_class():
    a, b = dets((0, 0, 20, 20, 0.7, 19)), dets((2, 0, 22, 20, 0.5, 21))  # horse vs cow, IoU 360 / 440
    same = DetectorAgreement()([a, b])
    assert not objects(same)
    assert sorted((c['category_id'], c['score']) for c in crowds(same)) == [(19, 0.7), (21, 0.5)]
    agnostic = DetectorAgreement(class_agnostic=True)([a, b])
    assert len(agnostic) == 1 and agnostic[0]['category_id'] == 19
    assert agnostic[0]['bbox'] == [1.0, 0.0, 20.0, 20.0]
    # the seed is the higher score whichever detector found it
    assert DetectorAgreement(class_agnostic=True)([b, a])[0]['category_id'] == 19


def test_greedy_by_score_with_the_best_iou_partner():
    # detector A: two people; detector B: one box overlapping both, closer to the second
    a = dets((0, 0, 10, 10, 0.9, 1), (4, 0, 14, 10, 0.5, 1))
    b = dets((3, 0, 13, 10, 0.8, 1))
    # seeds by score: A0 (0.9) first: IoU(A0, B0) = 70 / 130 = 0.538 -> paired (B0 is its only candidate)
    anns = DetectorAgreement()([a, b])
    assert [o['bbox'] for o in objects(anns)] == [[1.5, 0.0, 10.0, 10.0]]
    assert [c['bbox'] for c in crowds(anns)] == [[4.0, 0.0, 10.0, 10.0]]  # A1: 0.5, unmatched
    # B's box overlaps C1 more (IoU 95 / 105) but C0 is the stronger seed and takes it: greedy by score
    c = dets((0, 0, 10, 10, 0.95, 1), (3.5, 0, 13.5, 10, 0.9, 1))
    anns = DetectorAgreement(ignore_score=None)([c, b])
    assert [o['bbox'] for o in anns] == [[1.5, 0.0, 10.0, 10.0]] and anns[0]['score'] == pytest.approx(0.875)
    # a seed with two partners in one detector takes the one with the larger IoU
    d = dets((0, 0, 10, 10, 0.3, 1), (1, 0, 11, 10, 0.3, 1))
    anns = DetectorAgreement()([dets((1, 0, 11, 10, 0.8, 1)), d])
    assert [o['bbox'] for o in anns] == [[1.0, 0.0, 10.0, 10.0]]


def test_each_box_is_used_once_and_ignore_regions_are_ordered_by_score():
    a = dets((0, 0, 10, 10, 0.8, 1), (20, 20, 30, 30, 0.55, 3), (40, 40, 50, 50, 0.45, 3))
    b = dets((0, 0, 10, 10, 0.7, 1), (0, 0, 10, 10, 0.65, 1), (60, 60, 70, 70, 0.9, 62))
    anns = DetectorAgreement()([a, b])
    assert len(objects(anns)) == 1
    # unmatched >= 0.5 by descending score: B's chair 0.9, B's second person 0.65, A's car 0.55
    assert [(c['category_id'], c['score']) for c in crowds(anns)] == [(62, 0.9), (1, 0.65), (3, 0.55)]
    assert anns[0]['iscrowd'] == 0  # objects come first


def test_empty_cases():
    rule = DetectorAgreement()
    empty = dets()
    assert rule([empty, empty]) == []
    only_one = rule([dets((0, 0, 8, 8, 0.9, 1)), empty])
    assert not has_objects(only_one) and len(only_one) == 1
    assert rule([dets((0, 0, 8, 8, 0.45, 1)), empty]) == []  # below the ignore score: nothing
    with pytest.raises(ValueError, match='at least 2'):
        rule([dets((0, 0, 8, 8, 0.9, 1))])


def test_three_detectors_min_machines():
    a, b, c = dets((0, 0, 10, 10, 0.9, 1)), dets((0, 0, 10, 10, 0.5, 1)), dets()
    assert not objects(DetectorAgreement()([a, b, c]))                    # all three needed by default
    two = DetectorAgreement(min_machines=2)([a, b, c])
    assert len(two) == 1 and two[0]['machines'] == 2
    with pytest.raises(ValueError, match='at least 4'):
        DetectorAgreement(min_machines=4)([a, b, c])
    with pytest.raises(ValueError, match='>= 2'):
        DetectorAgreement(min_machines=1)


def test_config_and_checks():
    rule = build_pseudo_gt(dict(type='agreement', class_agnostic=True, iou_thr=0.6))
    assert isinstance(rule, DetectorAgreement) and rule.class_agnostic and rule.iou_thr == 0.6
    assert 'any class' in rule.describe()['rule'] and build_pseudo_gt(None) is None
    with pytest.raises(KeyError, match='agreement'):
        build_pseudo_gt(dict(type='agree'))
    with pytest.raises(ValueError, match='low_score'):
        DetectorAgreement(high_score=0.3, low_score=0.4)


def test_coco_categories_match_the_detectors_label_space():
    assert [c['id'] for c in COCO_CATEGORIES] == list(COCO80_TO_91)
    assert len({c['name'] for c in COCO_CATEGORIES}) == 80
    assert {c['id']: c['name'] for c in COCO_CATEGORIES}[18] == 'dog'


def test_ignore_region_hides_a_detection_from_coco_ap():
    """A detection inside an ignore region neither helps nor hurts the AP (COCO crowd semantics)."""
    pseudo = DetectorAgreement()([dets((0, 0, 20, 20, 0.9, 1), (40, 40, 60, 60, 0.9, 18)),
                                  dets((0, 0, 20, 20, 0.8, 1))])
    assert len(objects(pseudo)) == 1 and crowds(pseudo)[0]['category_id'] == 18
    hit = dets((0, 0, 20, 20, 0.9, 1))
    with_dog = dets((0, 0, 20, 20, 0.9, 1), (41, 41, 59, 59, 0.95, 18))
    assert coco_ap(pseudo, hit, (64, 64)) == pytest.approx(1.0)
    assert coco_ap(pseudo, with_dog, (64, 64)) == pytest.approx(1.0)
    assert coco_ap(objects(pseudo), with_dog, (64, 64), use_cats=False) < 1.0  # without the region it costs


class TableDetector(Machine):
    """A det machine that answers from a table keyed by the image's mean grey level (counts calls)."""

    task = 'det'

    def __init__(self, name: str, table: dict) -> None:
        super().__init__(name, device='cpu', num_threads=None)
        self.table, self.calls = table, []

    def predict(self, images):
        self.calls.append(len(images))
        return [self.table.get(int(round(im.mean())), dets()) for im in images]


def grey(value: int) -> np.ndarray:
    return np.full((32, 32, 3), value, np.uint8)


def test_labeller_pseudo_gt_exclusion_and_one_clean_run():
    a = TableDetector('a', {200: dets((0, 0, 16, 16, 0.9, 1), (16, 16, 32, 32, 0.6, 3)),
                            100: dets((0, 0, 16, 16, 0.8, 1)),
                            50: dets((0, 0, 16, 16, 0.35, 1)),
                            20: dets((0, 0, 16, 16, 0.2, 1))})
    b = TableDetector('b', {200: dets((0, 0, 16, 18, 0.5, 1)), 100: dets()})
    labeller = MachineLabeller('det', [a, b], score_thr=0.3, pseudo_gt=dict(type='agreement'),
                               exclude_without_reference=True)
    found = labeller.inspect_source(grey(200), None)
    assert found['exclude'] is None and found['record']['reference_boxes'] == dict(a=2, b=1)
    anns = found['record']['annotation']
    assert found['record']['annotation_source'] == 'pseudo_gt' and found['record']['pseudo_gt_objects'] == 1
    assert objects(anns)[0]['bbox'] == [0.0, 0.0, 16.0, 17.0] and crowds(anns)[0]['category_id'] == 3
    assert found['annotation'] == anns
    variants = {'same.png': grey(200), 'weaker.png': grey(100)}
    scores = labeller.label(grey(200), variants, found['annotation'])
    assert [len(m.calls) for m in (a, b)] == [2, 2] and a.calls == [1, 2]  # the source once, then variants
    # same image: a's consistency 1 (the clean person and car back); weaker: the car is gone
    assert scores['same.png']['weighted_consistency'] == pytest.approx(1.0)
    assert scores['weaker.png']['mean_consistency'] < 1.0
    # accuracy against the pseudo box [0, 0, 16, 17]: both machines' person boxes have IoU 0.941 / 0.944,
    # a match at the IoU thresholds .50 ... .90 and not at .95 -> AP 9 / 10; a's car is in the ignore region
    assert scores['same.png']['weighted_accuracy'] == pytest.approx(0.9)
    # agreement on nothing (only a's 0.8 box): ignore region only -> consistency-only labels
    only_ignore = labeller.inspect_source(grey(100), None)
    assert only_ignore['annotation'] is None and only_ignore['record']['pseudo_gt_objects'] == 0
    nan = labeller.label(grey(100), {'v.png': grey(100)}, only_ignore['annotation'])
    assert math.isnan(nan['v.png']['weighted_accuracy'])
    assert nan['v.png']['weighted_consistency'] == pytest.approx(1.0)
    # a clean detection >= score_thr by one machine: kept; none at all: excluded with the reason
    assert labeller.inspect_source(grey(50), None)['exclude'] is None
    excluded = labeller.inspect_source(grey(20), None)
    assert 'score >= 0.3' in excluded['exclude'] and excluded['record']['reference_boxes'] == dict(a=0, b=0)
    # a given annotation (a COCO file) wins over the pseudo ground truth
    given = [dict(bbox=[0, 0, 8, 8], category_id=5, iscrowd=0, area=64)]
    kept = labeller.inspect_source(grey(200), given)
    assert kept['annotation'] is given and 'annotation_source' not in kept['record']
    described = labeller.describe()
    assert described['pseudo_gt']['type'] == 'agreement' and described['exclude_without_reference'] is True
    with pytest.raises(ValueError, match='det'):
        MachineLabeller('ins', [a], pseudo_gt=dict(type='agreement'))


# ---------------------------------------------------------------- a det build with pseudo ground truth
class BlobDetector(Machine):
    """A deterministic det machine: 4-connected components brighter than ``threshold`` (grey =
    max over channels, at least 4 px), score = their mean grey / 255, class person (1) when red
    dominates, else car (3). Noise and blur move its boxes and scores like a real detector's."""

    task = 'det'

    def __init__(self, name: str, threshold: int) -> None:
        super().__init__(name, device='cpu', num_threads=None)
        self.threshold = threshold

    def predict(self, images):
        import cv2

        out = []
        for im in images:
            level = im.max(-1)
            n, comp, stats, _ = cv2.connectedComponentsWithStats((level > self.threshold).astype(np.uint8),
                                                                 connectivity=4)
            rows = []
            for k in range(1, n):
                x, y, w, h, area = stats[k]
                if area >= 4:
                    pixels = im[comp == k].astype(np.float64)
                    red = pixels[:, 0].mean() >= pixels[:, 1].mean()
                    rows.append((x, y, x + w, y + h, level[comp == k].mean() / 255, 1 if red else 3))
            out.append(dets(*rows))
        return out


def _photos(root):
    import cv2

    rng = np.random.default_rng(0)
    root.mkdir()
    scenes = {}
    for name in ('blobs', 'faint', 'dark', 'other'):
        image = rng.integers(0, 60, (64, 72, 3)).astype(np.uint8)
        scenes[name] = image
    scenes['blobs'][8:28, 8:28] = (230, 40, 40)       # a red 'person' both detectors see
    scenes['blobs'][36:56, 30:54] = (40, 210, 40)     # a green 'car' both see
    scenes['faint'][20:40, 20:40] = (140, 30, 30)     # only the low-threshold detector (score 0.55)
    scenes['other'][10:30, 40:60] = (40, 220, 40)     # one car both see
    for name, image in scenes.items():
        cv2.imwrite(str(root / f'{name}.png'), image[..., ::-1])
    return root


def _det_cfg(src, **overrides):
    cfg = dict(task='det', sources=dict(type='folder', root=str(src)),
               distortions=['gaussian_noise', 'defocus_blur'], variants=dict(distortions=2, per_distortion=3),
               seed=1, labeller=dict(type='blobs'), workers=0)
    cfg.update(overrides)
    return cfg


def _blob_labeller():
    return MachineLabeller('det', [BlobDetector('low', 100), BlobDetector('high', 150)], score_thr=0.3,
                           pseudo_gt=dict(type='agreement'), exclude_without_reference=True)


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*'))
            if p.is_file() and '.build_' not in str(p)}


def test_det_build_with_pseudo_ground_truth(tmp_path):
    import json

    from miqa.database.builder import build_database
    from miqa.database.ensure import database_status
    from miqa.database.manifest import finalize_database
    from miqa.datasets import MIQDDataset

    src = _photos(tmp_path / 'photos')
    out = tmp_path / 'db'
    summary = build_database(_det_cfg(src), str(out), labeller_factory=_blob_labeller, progress=False)
    assert (summary.built, summary.excluded) == (3, 1)
    det = out / 'miqa_det'
    assert sorted(os.listdir(det / 'labels')) == sorted(f'{s}_{k}.csv' for s in ('blobs', 'faint', 'other')
                                                        for k in ('accuracy', 'consistency'))
    assert sorted(os.listdir(det / 'images')) == ['blobs', 'faint', 'other']          # 'dark' removed
    assert sorted(os.listdir(det / 'src_images')) == ['blobs.jpg', 'faint.jpg', 'other.jpg']
    manifest = json.loads((out / 'manifest_det.json').read_text())
    assert [e['src_id'] for e in manifest['excluded']] == ['dark']
    assert 'score >= 0.3' in manifest['excluded'][0]['reason']
    assert manifest['labeller']['pseudo_gt']['type'] == 'agreement'
    assert manifest['sources']['blobs']['annotation_source'] == 'pseudo_gt'
    assert manifest['sources']['faint']['pseudo_gt_objects'] == 0
    # COCO json: every finished source, the agreed boxes at the stored size, ignore regions as crowd
    coco = json.loads((det / 'additional_info' / 'instances_val2017.json').read_text())
    assert [c['id'] for c in coco['categories']] == list(COCO80_TO_91)
    images = {im['file_name']: im for im in coco['images']}
    assert sorted(images) == ['blobs.jpg', 'faint.jpg', 'other.jpg']
    sizes = [(im['id'], im['height'], im['width']) for im in coco['images']]
    assert sizes == [(k, 64, 72) for k in (1, 2, 3)]
    by_image = {}
    for ann in coco['annotations']:
        by_image.setdefault(ann['image_id'], []).append((ann['bbox'], ann['category_id'], ann['iscrowd']))
    assert by_image[1] == [([8.0, 8.0, 20.0, 20.0], 1, 0), ([30.0, 36.0, 24.0, 20.0], 3, 0)]
    assert by_image[2] == [([20.0, 20.0, 20.0, 20.0], 1, 1)]                       # faint: ignore only
    assert by_image[3] == [([40.0, 10.0, 20.0, 20.0], 3, 0)]
    assert sorted(a['id'] for a in coco['annotations']) == [1, 2, 3, 4]
    # labels: consistency for every variant, accuracy NaN where the detectors agree on nothing
    accuracy = {s: (det / 'labels' / f'{s}_accuracy.csv').read_text().splitlines()[1:]
                for s in ('blobs', 'faint')}
    assert len(accuracy['blobs']) == 6 and all(line.endswith(',nan') for line in accuracy['faint'])
    assert not any(line.endswith(',nan') for line in accuracy['blobs'])
    ds = MIQDDataset(data_root=str(out), task='det', split='train', split_file='official', cache_dir=False)
    val = MIQDDataset(data_root=str(out), task='det', split='val', split_file='official', cache_dir=False)
    assert len(ds) + len(val) == 18
    infos = [d.get_data_info(i) for d in (ds, val) for i in range(len(d))]
    faint = [i for i in infos if i['src_id'] == 'faint']
    assert faint and all(math.isnan(i['accuracy']) and i['gt_score'] == i['consistency'] for i in faint)
    assert database_status(_det_cfg(src, out_root=str(out)))['cached']
    # resume: nothing redone ('dark' is not retried), the same bytes
    before = _files(out)
    again = build_database(_det_cfg(src), str(out), labeller_factory=_blob_labeller, progress=False)
    assert (again.built, again.skipped_finished, again.excluded) == (0, 3, 1) and _files(out) == before
    # two shards + finalize: the same bytes as one build
    sharded = tmp_path / 'sharded'
    for index in range(2):
        build_database(_det_cfg(src), str(sharded), num_shards=2, shard_index=index,
                       labeller_factory=_blob_labeller, progress=False)
    finalize_database(_det_cfg(src), str(sharded))
    mine = {k: v for k, v in _files(sharded).items() if not k.startswith('manifest')}
    assert mine == {k: v for k, v in before.items() if not k.startswith('manifest')}


def test_det_build_real_annotations_win_over_pseudo_ground_truth(tmp_path):
    """The existing ``annotations=<COCO json>`` path: a source in the file keeps its boxes, ids and
    the file's categories; a source missing from it gets the pseudo ground truth, new ids."""
    import json

    from miqa.database.builder import build_database

    src = _photos(tmp_path / 'photos')
    coco = dict(images=[dict(id=139, file_name='blobs.png', height=64, width=72)],
                annotations=[dict(id=7, image_id=139, category_id=18, bbox=[0.0, 0.0, 36.0, 32.0],
                                  area=1152.0, iscrowd=0)],
                categories=[dict(id=18, name='dog', supercategory='animal'), dict(id=3, name='car')])
    (tmp_path / 'instances.json').write_text(json.dumps(coco))
    out = tmp_path / 'db'
    cfg = _det_cfg(src, annotations=str(tmp_path / 'instances.json'))
    build_database(cfg, str(out), labeller_factory=_blob_labeller, progress=False)
    subset = json.loads((out / 'miqa_det' / 'additional_info' / 'instances_val2017.json').read_text())
    assert subset['categories'] == coco['categories']
    assert [(im['id'], im['file_name']) for im in subset['images']] == [
        (139, 'blobs.jpg'), (140, 'faint.jpg'), (141, 'other.jpg')]
    anns = [(a['id'], a['image_id'], a['category_id'], a['iscrowd']) for a in subset['annotations']]
    assert anns == [(7, 139, 18, 0), (8, 140, 1, 1), (9, 141, 3, 0)]
    manifest = json.loads((out / 'manifest_det.json').read_text())
    assert 'annotation_source' not in manifest['sources']['blobs']
    assert manifest['sources']['other']['annotation_source'] == 'pseudo_gt'
