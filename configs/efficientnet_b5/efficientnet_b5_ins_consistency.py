# EfficientNet-b5, instance segmentation, consistency labels.
_base_ = ['./efficientnet_b5_ins.py']
train_dataloader = dict(dataset=dict(label_type='consistency'))
val_dataloader = dict(dataset=dict(label_type='consistency'))
test_dataloader = dict(dataset=dict(label_type='consistency'))
