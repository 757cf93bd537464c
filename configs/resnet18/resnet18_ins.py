# ResNet-18 on MIQD-2.5M instance segmentation, composite labels, reference recipe (spec §6).
_base_ = ['../_base_/models/resnet18.py', '../_base_/datasets/miqd_ins.py',
          '../_base_/schedules/miqa_5e.py', '../_base_/default_runtime.py']
