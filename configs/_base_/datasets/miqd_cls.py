# MIQD-2.5M image classification (spec §2, §6). `data_root` holds miqa_cls/, miqa_det/, miqa_ins/
# and splits/ (the official split CSVs). Change it with --data-root or --cfg-options data_root=...
dataset_type = 'MIQDDataset'
data_root = 'data/miqd'

# Reference preprocessing: a square 288x288 warp, then RandomCrop/CenterCrop 224.
# Normalisation happens on the device, in the model's data_preprocessor (per backbone).
train_pipeline = [
    dict(type='LoadImage', on_error='skip'),     # unreadable image: logged, another sample drawn
    dict(type='Resize', size=(288, 288)),
    dict(type='RandomCrop', size=224),
    dict(type='PackMIQAInputs'),
]
test_pipeline = [
    dict(type='LoadImage', on_error='flag'),     # unreadable image: kept in place, excluded from metrics
    dict(type='Resize', size=(288, 288)),
    dict(type='CenterCrop', size=224),
    dict(type='PackMIQAInputs'),
]
# RA-MIQA adds the region view: the same 288x288 warp, before cropping.
region_train_pipeline = [
    dict(type='LoadImage', on_error='skip'),
    dict(type='Resize', size=(288, 288)),
    dict(type='RegionView', size=288),
    dict(type='RandomCrop', size=224),
    dict(type='PackMIQAInputs'),
]
region_test_pipeline = [
    dict(type='LoadImage', on_error='flag'),
    dict(type='Resize', size=(288, 288)),
    dict(type='RegionView', size=288),
    dict(type='CenterCrop', size=224),
    dict(type='PackMIQAInputs'),
]

train_dataloader = dict(
    batch_size=128,                               # per process; 2 processes = the paper's 256
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    # default_collate, plus batches where RegionView skipped the views the model has cached
    # (the scope prefix: mmengine's Runner looks collate functions up in its root registry)
    collate_fn=dict(type='miqa.miqa_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, task='cls', label_type='composite',
                 split='train', split_file='official', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='miqa.miqa_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, task='cls', label_type='composite',
                 split='val', split_file='official', pipeline=test_pipeline, test_mode=True),
)
test_dataloader = val_dataloader

# PLCC/RMSE after a linear fit (reproduces the published RMSEs, spec §7); raw values logged too.
val_evaluator = dict(type='IQAMetric', fit='linear')
test_evaluator = dict(type='IQAMetric', fit='linear', breakdown=True)
