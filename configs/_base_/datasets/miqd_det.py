# MIQD-2.5M object detection (spec §2).
_base_ = ['./miqd_cls.py']
train_dataloader = dict(dataset=dict(task='det'))
val_dataloader = dict(dataset=dict(task='det'))
test_dataloader = dict(dataset=dict(task='det'))
