# ResNet-50, instance segmentation, consistency labels.
_base_ = ['./resnet50_ins.py']
train_dataloader = dict(dataset=dict(label_type='consistency'))
val_dataloader = dict(dataset=dict(label_type='consistency'))
test_dataloader = dict(dataset=dict(label_type='consistency'))
