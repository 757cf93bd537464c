# Runtime shared by every experiment.
default_scope = 'miqa'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),          # progress, ETA, loss, lr
    param_scheduler=dict(type='ParamSchedulerHook'),
    # best checkpoint by val SRCC (spec §6), also after mid-epoch validations
    checkpoint=dict(type='MultiValCheckpointHook', interval=1, max_keep_ckpts=2,
                    save_best='SRCC', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),                          # tools switch to gloo without CUDA
)

# Scalars go to work_dirs/<exp>/<time>/vis_data (JSON) and TensorBoard
# (`tensorboard --logdir work_dirs`). wandb in one switch: `tools/train.py CFG --wandb PROJECT`
# (offline mode unless WANDB_MODE=online: no account needed, `wandb sync` uploads later).
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)

log_processor = dict(by_epoch=True, window_size=50)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=1234567, deterministic=False)      # spec §6
