# ResNet-50 baseline (spec §5): torchvision resnet50, `fc` -> Linear(2048, 1); ImageNet weights from a local file
# (pretrained=True: $MIQA_HOME/weights/, see README "Weights"); ImageNet normalisation (spec §6).
method = 'ResNet-50'
model = dict(
    type='IQARegressor',
    backbone=dict(name='resnet50', pretrained=True),
    loss=dict(type='MSELoss'),
    data_preprocessor=dict(type='MIQADataPreprocessor', mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
)
