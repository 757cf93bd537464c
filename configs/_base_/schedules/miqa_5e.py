# Reference recipe (spec §6): AdamW 1e-4, wd 1e-4 without decay on norms/biases,
# 1 linear warm-up epoch from 5e-6, then per-iteration cosine to 1e-8; 5 epochs;
# 256 images per step in total (2 GPUs x 128); validation twice per epoch.
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='MIQAOptimWrapperConstructor',   # mmengine's, with one log line for frozen parameters
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4, betas=(0.9, 0.999)),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'pos_embed': dict(decay_mult=0.0),
                                    'cls_token': dict(decay_mult=0.0)}),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=5e-6 / 1e-4, end_factor=1.0, by_epoch=True,
         begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=4, eta_min=1e-8, by_epoch=True,
         begin=1, end=5, convert_to_iter_based=True),
]
train_cfg = dict(type='MultiValEpochBasedTrainLoop', max_epochs=5, val_per_epoch=2)
val_cfg = dict()
test_cfg = dict()
# tools/train.py --auto-scale-lr rescales lr by (total batch / 256).
auto_scale_lr = dict(base_batch_size=256, enable=False)
