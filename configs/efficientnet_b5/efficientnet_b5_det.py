# EfficientNet-b5 on MIQD-2.5M object detection, composite labels, reference recipe (spec §6).
_base_ = ['../_base_/models/efficientnet_b5.py', '../_base_/datasets/miqd_det.py',
          '../_base_/schedules/miqa_5e.py', '../_base_/default_runtime.py']
