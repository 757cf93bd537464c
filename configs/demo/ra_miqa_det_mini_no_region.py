# The ablation of the detection demo: configs/demo/ra_miqa_det_mini.py without the region branch
# (the no-region model of configs/demo/ra_miqa_mini_no_region.py on MIQD-mini-det).
#   python tools/train.py configs/demo/ra_miqa_det_mini_no_region.py
_base_ = ['./ra_miqa_mini_no_region.py']

data_root = 'data/miqd_mini_det'
database = dict(build_config='configs/build/miqd_mini_det.py', out_root=data_root)
train_dataloader = dict(dataset=dict(task='det', data_root=data_root))
val_dataloader = dict(dataset=dict(task='det', data_root=data_root))
test_dataloader = val_dataloader
