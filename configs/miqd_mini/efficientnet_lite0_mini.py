# Baseline of the MIQD-mini benchmark: EfficientNet-Lite0 regressor (ImageNet weights from the pip
# package; `_fc` -> Linear(1280, 1)), the RA-MIQA (Lite0) row without its region branch: same data,
# split files, views and schedule as configs/miqd_mini/ra_miqa_lite0_mini.py.
_base_ = ['./ra_miqa_lite0_mini.py']
method = 'EfficientNet-Lite0'
model = dict(
    _delete_=True,
    type='IQARegressor',
    backbone=dict(name='efficientnet_lite0', pretrained=True),
    loss=dict(type='MSELoss'),
    data_preprocessor=dict(type='MIQADataPreprocessor', mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
)
_warp, _crop = {{_base_.warp}}, {{_base_.crop}}
train_pipeline = [
    dict(type='LoadImage', on_error='skip'),
    dict(type='Resize', size=(_warp, _warp)),
    dict(type='RandomCrop', size=_crop),
    dict(type='PackMIQAInputs'),
]
test_pipeline = [
    dict(type='LoadImage', on_error='flag'),
    dict(type='Resize', size=(_warp, _warp)),
    dict(type='CenterCrop', size=_crop),
    dict(type='PackMIQAInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
