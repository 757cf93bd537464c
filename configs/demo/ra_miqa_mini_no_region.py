# The ablation of the embedded default: the same model, data, split and schedule as
# configs/demo/ra_miqa_mini.py without the region branch (RAMIQA(use_region_token=False): the head
# reads the backbone's pooled features and confidence inputs only; same frozen backbone, same head).
#   python tools/train.py configs/demo/ra_miqa_mini_no_region.py
_base_ = ['./ra_miqa_mini.py']
method = 'Lite0 (no region branch)'
model = dict(use_region_token=False, region_encoder=None)
train_pipeline = [
    dict(type='LoadImage', on_error='skip'),
    dict(type='Resize', size={{_base_.size}}, keep_ratio=True),
    dict(type='CenterCrop', size={{_base_.size}}),
    dict(type='PackMIQAInputs'),
]
test_pipeline = [
    dict(type='LoadImage', on_error='flag'),
    dict(type='Resize', size={{_base_.size}}, keep_ratio=True),
    dict(type='CenterCrop', size={{_base_.size}}),
    dict(type='PackMIQAInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
