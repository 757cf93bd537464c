# ViT-small baseline (spec §5): timm vit_small_patch16_224 with num_classes=1 (`head`); ImageNet weights from a local file
# (pretrained=True: $MIQA_HOME/weights/, see README "Weights"); ViT normalisation (spec §6).
method = 'ViT-small'
model = dict(
    type='IQARegressor',
    backbone=dict(name='vit_small_patch16_224', pretrained=True),
    loss=dict(type='MSELoss'),
    data_preprocessor=dict(type='MIQADataPreprocessor', mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
)
