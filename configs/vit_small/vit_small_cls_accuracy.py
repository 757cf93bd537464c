# ViT-small, image classification, accuracy labels.
_base_ = ['./vit_small_cls.py']
train_dataloader = dict(dataset=dict(label_type='accuracy'))
val_dataloader = dict(dataset=dict(label_type='accuracy'))
test_dataloader = dict(dataset=dict(label_type='accuracy'))
