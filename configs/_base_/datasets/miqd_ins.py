# MIQD-2.5M instance segmentation (images and splits shared with det) (spec §2).
_base_ = ['./miqd_cls.py']
train_dataloader = dict(dataset=dict(task='ins'))
val_dataloader = dict(dataset=dict(task='ins'))
test_dataloader = dict(dataset=dict(task='ins'))
