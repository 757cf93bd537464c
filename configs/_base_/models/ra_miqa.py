# RA-MIQA (spec §4): trainable ViT-S/16 + frozen region encoder (ViT-S/16 SERE weights, 288x288 view)
# -> region token; sequence [region, CLS, patches]; head on concat(CLS, region).
# pretrained=True looks for the default weight files in $MIQA_HOME/weights/ (README, "Weights");
# `--cfg-options model.pretrained=False` builds every part with random weights.
method = 'RA-MIQA'
model = dict(
    type='RAMIQA',
    backbone=dict(name='vit_small_patch16_224', pretrained=True),
    region_encoder=dict(type='TimmViTRegionEncoder', name='vit_small_patch16_224', img_size=288,
                        pretrained=True),
    fusion='token',                 # 'late' for CNN backbones (no token sequence)
    use_region_token=True,          # False: the ablation without the region branch
    head_dropout=0.2,
    # frozen encoder + deterministic view -> tokens computed once; under DDP every rank gets every
    # rank's new tokens (so after the first epoch no rank encodes, and no loader builds a view)
    region_cache=dict(sync_ranks=True),
    loss=dict(type='MSELoss'),
    data_preprocessor=dict(type='MIQADataPreprocessor', mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                           region_mean=(0.485, 0.456, 0.406), region_std=(0.229, 0.224, 0.225)),
)
