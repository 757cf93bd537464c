# EfficientNet-b5, object detection, accuracy labels.
_base_ = ['./efficientnet_b5_det.py']
train_dataloader = dict(dataset=dict(label_type='accuracy'))
val_dataloader = dict(dataset=dict(label_type='accuracy'))
test_dataloader = dict(dataset=dict(label_type='accuracy'))
