# EfficientNet-b5 baseline (spec §5): torchvision efficientnet_b5, `classifier` -> Linear(2048, 1); ImageNet weights from a local file
# (pretrained=True: $MIQA_HOME/weights/, see README "Weights"); ImageNet normalisation (spec §6).
method = 'EfficientNet-b5'
model = dict(
    type='IQARegressor',
    backbone=dict(name='efficientnet_b5', pretrained=True),
    loss=dict(type='MSELoss'),
    data_preprocessor=dict(type='MIQADataPreprocessor', mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
)
