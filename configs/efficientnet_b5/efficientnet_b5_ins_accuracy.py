# EfficientNet-b5, instance segmentation, accuracy labels.
_base_ = ['./efficientnet_b5_ins.py']
train_dataloader = dict(dataset=dict(label_type='accuracy'))
val_dataloader = dict(dataset=dict(label_type='accuracy'))
test_dataloader = dict(dataset=dict(label_type='accuracy'))
