# The no-region ablation on MIQD-mini-det: configs/demo/ra_miqa_mini_no_region.py (same model without
# the region branch, same recipe) on the data of configs/demo/ra_miqa_det_mini.py.
#   python tools/train.py configs/demo/ra_miqa_det_mini_no_region.py
_base_ = ['./ra_miqa_mini_no_region.py']
data_root = 'data/miqd_mini_det'
database = dict(build_config='configs/build/miqd_mini_det.py', out_root=data_root)
train_dataloader = dict(dataset=dict(task='det', data_root=data_root))
val_dataloader = dict(dataset=dict(task='det', data_root=data_root))
test_dataloader = val_dataloader
