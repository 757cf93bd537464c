# EfficientNet-b5, object detection, consistency labels.
_base_ = ['./efficientnet_b5_det.py']
train_dataloader = dict(dataset=dict(label_type='consistency'))
val_dataloader = dict(dataset=dict(label_type='consistency'))
test_dataloader = dict(dataset=dict(label_type='consistency'))
