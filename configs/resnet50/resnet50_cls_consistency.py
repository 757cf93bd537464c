# ResNet-50, image classification, consistency labels.
_base_ = ['./resnet50_cls.py']
train_dataloader = dict(dataset=dict(label_type='consistency'))
val_dataloader = dict(dataset=dict(label_type='consistency'))
test_dataloader = dict(dataset=dict(label_type='consistency'))
