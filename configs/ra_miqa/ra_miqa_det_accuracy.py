# RA-MIQA, object detection, accuracy labels.
_base_ = ['../ra_miqa_det.py']
train_dataloader = dict(dataset=dict(label_type='accuracy'))
val_dataloader = dict(dataset=dict(label_type='accuracy'))
test_dataloader = dict(dataset=dict(label_type='accuracy'))
