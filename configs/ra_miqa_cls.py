# RA-MIQA on MIQD-2.5M image classification, composite labels, reference recipe (spec §4, §6).
# Label variants: configs/ra_miqa/ra_miqa_cls_{accuracy,consistency}.py
_base_ = ['./_base_/models/ra_miqa.py', './_base_/datasets/miqd_cls.py',
          './_base_/schedules/miqa_5e.py', './_base_/default_runtime.py']
# RA-MIQA also consumes the region view (the 288x288 warp before cropping).
train_dataloader = dict(dataset=dict(pipeline={{_base_.region_train_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.region_test_pipeline}}))
test_dataloader = dict(dataset=dict(pipeline={{_base_.region_test_pipeline}}))
