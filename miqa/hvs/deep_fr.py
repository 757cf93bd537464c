"""Deep full-reference distances on ImageNet VGG16 features: LPIPS and DISTS (lower is better).

The forward passes are piq's (``piq.LPIPS``, ``piq.DISTS``); only their construction differs:
piq downloads its weights through ``torch.hub`` and torchvision, here every file is local and
checked (:mod:`miqa.hub`):

- ``vgg16``: torchvision's ``vgg16-397923af.pth`` (only its ``features.*`` are used);
- ``lpips_vgg``: piq's ``lpips_weights.pt``, the five non-negative linear layers of LPIPS v0.1;
- ``dists``: piq's ``dists_weights.pt``, DISTS' ``alpha`` / ``beta`` (``1 x 1475 x 1 x 1`` each).

Files live in ``$MIQA_HOME/weights/`` or are named per key: ``LPIPS(weights=dict(vgg16=path))``.
``pretrained=False`` builds random weights: for tests of shapes and batching only, never scores.
"""
from typing import Dict, List, Mapping, Optional, Sequence

import piq
import torch
from piq.perceptual import VGG16_LAYERS, ContentLoss
from torchvision.models import vgg as tv_vgg

from miqa.registry import SCORERS
from miqa.utils.types import PathLike
from miqa.vocab import IMAGENET_MEAN, IMAGENET_STD

from .base import HVSScorer, load_scorer_weight

#: The VGG16 layers both metrics read (Zhang et al. 2018; Ding et al. 2020).
LAYERS = ('relu1_2', 'relu2_2', 'relu3_3', 'relu4_3', 'relu5_3')
CHANNELS = (64, 128, 256, 512, 512)


def vgg16_features(state_dict: Optional[Mapping[str, torch.Tensor]] = None) -> torch.nn.Sequential:
    """torchvision's VGG16 ``features`` (the layers ``vgg16()`` builds, without its classifier),
    loaded from a full torchvision state dict (``features.*`` keys) when given, frozen, eval mode."""
    features = tv_vgg.make_layers(tv_vgg.cfgs['D'], batch_norm=False)
    if state_dict is not None:
        own = {k[len('features.'):]: v for k, v in state_dict.items() if k.startswith('features.')}
        if not own:
            raise ValueError('the VGG16 weight file holds no "features.*" tensors; expected torchvision\'s '
                             'vgg16-397923af.pth')
        features.load_state_dict(own, strict=True)
    return features.eval().requires_grad_(False)


def lpips_linear_weights(obj) -> List[torch.Tensor]:
    """The 5 LPIPS linear layers as ``1 x C x 1 x 1`` tensors from piq's file (a list of 5 tensors)
    or from the original LPIPS ``vgg.pth`` state dict (``lin{k}.model.1.weight``)."""
    if isinstance(obj, Mapping):
        obj = [obj.get(f'lin{k}.model.1.weight') for k in range(len(CHANNELS))]
    if not isinstance(obj, Sequence) or len(obj) != len(CHANNELS) or not all(
            isinstance(w, torch.Tensor) and w.numel() == c for w, c in zip(obj, CHANNELS)):
        raise ValueError(f'LPIPS linear weights: expected {len(CHANNELS)} tensors of {CHANNELS} values '
                         '(piq\'s lpips_weights.pt)')
    return [w.detach().float().reshape(1, c, 1, 1) for w, c in zip(obj, CHANNELS)]


def dists_weights(alpha: torch.Tensor, beta: torch.Tensor) -> List[torch.Tensor]:
    """DISTS' per-channel weights split per stage (input RGB + 5 VGG stages), ``alpha`` (structure)
    first then ``beta`` (texture), both divided by ``sum(alpha) + sum(beta)`` as in Ding et al.'s
    code (piq's file is stored normalised; dividing again changes nothing)."""
    channels = (3, *CHANNELS)
    if alpha.numel() != sum(channels) or beta.numel() != sum(channels):
        raise ValueError(f'DISTS weights: alpha and beta must hold {sum(channels)} values each, got '
                         f'{alpha.numel()} and {beta.numel()}')
    total = alpha.sum() + beta.sum()
    alpha, beta = (t.detach().float().reshape(1, -1, 1, 1) / total for t in (alpha, beta))
    return [*torch.split(alpha, channels, dim=1), *torch.split(beta, channels, dim=1)]


class _LocalLPIPS(piq.LPIPS):
    """``piq.LPIPS`` on a given VGG16 and linear weights (piq's own ``__init__`` downloads)."""

    def __init__(self, features: torch.nn.Module, linear: List[torch.Tensor]) -> None:
        ContentLoss.__init__(self, features, layers=[VGG16_LAYERS[name] for name in LAYERS], weights=linear,
                             replace_pooling=False, distance='mse', reduction='none',
                             mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), normalize_features=True)


class _LocalDISTS(piq.DISTS):
    """``piq.DISTS`` on a given VGG16 and alpha/beta (its max-pools become piq's L2 pooling)."""

    def __init__(self, features: torch.nn.Module, weights: List[torch.Tensor]) -> None:
        ContentLoss.__init__(self, features, layers=[VGG16_LAYERS[name] for name in LAYERS], weights=weights,
                             replace_pooling=True, reduction='none', mean=list(IMAGENET_MEAN),
                             std=list(IMAGENET_STD), normalize_features=False,
                             allow_layers_weights_mismatch=True)


class _VGGDistance(HVSScorer):
    """Shared construction of the VGG16 distances: resolve, verify and load the weight files, or
    random weights.

    Args:
        pretrained: ``True`` loads ``vgg16`` and the metric's own file (``weight_files``,
            :mod:`miqa.hub`); ``False`` builds random weights, **for tests only**.
        weights: paths per key overriding ``$MIQA_HOME/weights/<file>``.
    """

    lower_is_better = True

    def __init__(self, pretrained: bool = True, weights: Optional[Dict[str, PathLike]] = None) -> None:
        super().__init__()
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(self.weight_files))
        if unknown:
            raise ValueError(f'{self.name}: unknown weight keys {unknown}; it reads '
                             f'{list(self.weight_files)}')
        self.pretrained = bool(pretrained)
        if self.pretrained:
            loaded = {key: load_scorer_weight(key, weights.get(key)) for key in self.weight_files}
        else:
            loaded = {}
        self.metric = self._build(vgg16_features(loaded.get('vgg16')), loaded)
        self.metric.requires_grad_(False).eval()

    def _build(self, features: torch.nn.Module, loaded: dict) -> ContentLoss:
        raise NotImplementedError

    def train(self, mode: bool = True):  # a frozen metric: always in eval mode
        return super().train(False)

    def forward(self, distorted: torch.Tensor, reference: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.metric(distorted.clamp(0, 1), reference.clamp(0, 1))

    def extra_repr(self) -> str:
        return super().extra_repr() + ('' if self.pretrained else ', RANDOM WEIGHTS (pretrained=False)')


@SCORERS.register_module(name='LPIPS')
class LPIPS(_VGGDistance):
    """LPIPS v0.1, VGG variant (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a
    Perceptual Metric", CVPR 2018): unit-normalised VGG16 activations at 5 layers, squared
    differences weighted by the learned linear layers, averaged over space, summed over layers.
    ``pretrained`` / ``weights``: as :class:`_VGGDistance` (files ``vgg16``, ``lpips_vgg``).
    """

    name = 'LPIPS'
    weight_files = ('vgg16', 'lpips_vgg')

    def _build(self, features: torch.nn.Module, loaded: dict) -> ContentLoss:
        if 'lpips_vgg' in loaded:
            linear = lpips_linear_weights(loaded['lpips_vgg'])
        else:
            linear = [torch.rand(1, c, 1, 1) for c in CHANNELS]  # trained ones are non-negative too
        return _LocalLPIPS(features, linear)


@SCORERS.register_module(name='DISTS')
class DISTS(_VGGDistance):
    """DISTS (Ding, Ma, Wang and Simoncelli, "Image Quality Assessment: Unifying Structure and
    Texture Similarity", IEEE TPAMI 2020): VGG16 with L2 pooling; per channel of the input and 5
    stages, structure (means) and texture (covariances) similarities weighted by learned
    ``alpha``/``beta``; distance = 1 - the weighted sum, in [0, 1]. Inputs whose short side
    exceeds 256 px are resized to 256 (piq, as the authors' code).
    ``pretrained`` / ``weights``: as :class:`_VGGDistance` (files ``vgg16``, ``dists``).
    """

    name = 'DISTS'
    weight_files = ('vgg16', 'dists')

    def _build(self, features: torch.nn.Module, loaded: dict) -> ContentLoss:
        if 'dists' in loaded:
            obj = loaded['dists']
            if not isinstance(obj, Mapping) or not {'alpha', 'beta'} <= set(obj):
                raise ValueError('DISTS weight file: expected a dict with "alpha" and "beta" '
                                 '(piq\'s dists_weights.pt)')
            alpha, beta = obj['alpha'], obj['beta']
        else:
            alpha, beta = torch.rand(2, 1, 3 + sum(CHANNELS), 1, 1)
        return _LocalDISTS(features, dists_weights(alpha, beta))
