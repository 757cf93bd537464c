"""Baseline regressors (spec §5): an ImageNet backbone whose classifier becomes Linear(features, 1).

ResNet-18/50 (torchvision, ``fc``), EfficientNet-B1/B5 (torchvision, the whole ``classifier``
block -> one Linear, its dropout dropped), ViT-S/16 (timm ``vit_small_patch16_224``,
``num_classes=1``, ``head``), and EfficientNet-Lite0 (``_fc``; its weights ship with a pip
package, for the offline demo). The inner module keeps the original names, so released
baseline checkpoints load after :func:`~miqa.models.converters.convert_baseline` adds
``backbone.``.
"""
from typing import Optional, Union

from torch import Tensor

from miqa.hub.lookup import Pretrained

from ..registry import MODELS
from .backbones import backbone_cfg, build_backbone
from .base import DataSamples, MIQABaseModel


@MODELS.register_module()
class IQARegressor(MIQABaseModel):
    """Backbone + Linear(features, 1) quality regressor.

    Args:
        backbone: a name or ``dict(name=..., pretrained=..., **kwargs)``
            (:func:`~miqa.models.backbones.build_backbone`; ``pretrained`` defaults to ``True``,
            the local ImageNet file; ``False`` builds random weights). ``frozen_stages=k``
            freezes and caches its first k blocks (:mod:`~miqa.models.frozen_stem`).
        pretrained: when not ``None``, overrides the backbone's ``pretrained`` (so
            ``--cfg-options model.pretrained=False`` builds random weights).
        loss: loss cfg (default MSE, spec §6).
    """

    def __init__(self, backbone: Union[str, dict] = 'resnet50', pretrained: Pretrained = None,
                 loss: Optional[dict] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss=loss, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        cfg = self.build_frozen_stem(backbone_cfg(backbone, pretrained))
        self.backbone, self.feat_dim = build_backbone(num_outputs=1, **cfg)
        self._attach_frozen_stem()

    def predict_scores(self, inputs: Tensor, region_inputs: Optional[Tensor] = None,
                       data_samples: DataSamples = None) -> Tensor:
        """Scores (B,); ``region_inputs`` is ignored (baselines see only the crop)."""
        return self.backbone_features(inputs, data_samples).squeeze(-1)
