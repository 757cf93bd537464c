# Baseline of the MIQD-mini benchmark: ResNet-18 regressor (torchvision, `fc` -> Linear(512, 1)) from
# RANDOM weights: torchvision's ImageNet file is not available offline (with it in $MIQA_HOME/weights,
# set backbone.pretrained=True for the paper's baseline). Same data, split files, views and schedule
# as configs/miqd_mini/efficientnet_lite0_mini.py; ImageNet normalisation (spec §6).
_base_ = ['./efficientnet_lite0_mini.py']
method = 'ResNet-18 (random init)'
model = dict(
    backbone=dict(name='resnet18', pretrained=False),
    data_preprocessor=dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
)
