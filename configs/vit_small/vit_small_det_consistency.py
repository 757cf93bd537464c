# ViT-small, object detection, consistency labels.
_base_ = ['./vit_small_det.py']
train_dataloader = dict(dataset=dict(label_type='consistency'))
val_dataloader = dict(dataset=dict(label_type='consistency'))
test_dataloader = dict(dataset=dict(label_type='consistency'))
