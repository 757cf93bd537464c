# RA-MIQA (Lite0 variant of the demo) on the full MIQD-mini (41 real photos/crops x 250 variants,
# configs/build/miqd_mini.py -> data/miqd_mini), the model row of the README's MIQD-mini benchmark.
#   python tools/train.py configs/miqd_mini/ra_miqa_lite0_mini.py
#   python tools/benchmark_models.py configs/miqd_mini/*.py --splits 0 1 2     # the README table
# Same model and views as configs/demo/ra_miqa_mini.py (Lite0 backbone + frozen Lite0 region encoder,
# late fusion, 144 warp -> 128 crop); 100 iterations of batch 32 (3,200 images, 38 % of the
# 8,500-image official train split, seen once: a 2-CPU budget). `split_dir` picks the train/val split
# files: the official ones, or data/miqd_mini/splits/seed<k> (tools/build_miqd.py --resplit k).
_base_ = ['../demo/ra_miqa_mini.py']

data_root = 'data/miqd_mini'
database = dict(build_config='configs/build/miqd_mini.py', out_root=data_root)
split_dir = 'data/miqd_mini/splits'

train_dataloader = dict(dataset=dict(data_root=data_root, split_file=split_dir + '/miqa_cls_train.csv'))
val_dataloader = dict(dataset=dict(data_root=data_root, split_file=split_dir + '/miqa_cls_val.csv'))
test_dataloader = val_dataloader

max_iters, warmup_iters = 100, 10
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, end_factor=1.0, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup_iters, eta_min=1e-8, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
custom_hooks = []   # HVS rows: tools/benchmark_hvs.py on the same split
