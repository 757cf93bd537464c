# Baseline for the embedded default: EfficientNet-Lite0 (`_fc` -> Linear(1280, 1), ImageNet
# weights from the pip package) on MIQD-mini (demo subset), same data, split, schedule and
# PSNR/SSIM table as configs/demo/ra_miqa_mini.py, without the region branch.
#   python tools/train.py configs/demo/efficientnet_lite0_mini.py
_base_ = ['./ra_miqa_mini.py']
method = 'EfficientNet-Lite0'
model = dict(
    _delete_=True,
    type='IQARegressor',
    backbone=dict(name='efficientnet_lite0', pretrained=True),
    loss=dict(type='MSELoss'),
    data_preprocessor=dict(type='MIQADataPreprocessor', mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
)
train_pipeline = [
    dict(type='LoadImage', on_error='skip'),
    dict(type='Resize', size=({{_base_.warp}}, {{_base_.warp}})),
    dict(type='RandomCrop', size={{_base_.crop}}),
    dict(type='PackMIQAInputs'),
]
test_pipeline = [
    dict(type='LoadImage', on_error='flag'),
    dict(type='Resize', size=({{_base_.warp}}, {{_base_.warp}})),
    dict(type='CenterCrop', size={{_base_.crop}}),
    dict(type='PackMIQAInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
