"""A frozen stem for CPU budgets: the first stages of a backbone frozen, their output cached.

Fine-tuning a whole backbone for several epochs does not fit a CPU demo. Freezing the first
``stages`` blocks of the backbone (weights fixed, batch-norm statistics fixed: eval mode) and
training the rest keeps a trainable backbone while, with a deterministic view (no random crop),
the frozen part's output for an image never changes: it is computed once and reused from the
same cache as RA-MIQA's frozen region encoder (:class:`~miqa.models.region_cache.RegionTokenCache`,
keyed by the frozen weights, the image file and a probe of the view). Every later epoch runs
only the trainable blocks. The model's state dict is unchanged (the stem is a view onto the
backbone's own modules), so checkpoints load with or without it.

``STEM_SPLITS`` says how each backbone splits; ``stages`` counts its blocks (EfficientNet-Lite0:
16 MBConv blocks; ``stages=11`` freezes the stem convolution and blocks 0-10, i.e. everything up to
the 112-channel 14x14 stage, and trains the 7x7 stages, the head convolution and the regressor).
``stages='all'`` freezes the whole feature extractor (blocks, head convolution, pooling): the
cache then holds one pooled feature vector per image and only what reads the features trains
(a linear probe's setting, for data too small to fine-tune on).
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .region_cache import RegionTokenCache


@dataclass(frozen=True)
class StemSplit:
    """How a backbone splits at block ``k``: the frozen modules, the stem and the trunk."""
    num_blocks: Callable[[nn.Module], int]
    stem_modules: Callable[[nn.Module, int], List[nn.Module]]
    stem: Callable[[nn.Module, int, Tensor], Tensor]
    trunk: Callable[[nn.Module, int, Tensor], Tensor]


def _lite_head(model: nn.Module, x: Tensor) -> Tensor:
    x = model._swish(model._bn1(model._conv_head(x)))
    return model._avg_pooling(x).flatten(1)


def _lite_stem(model: nn.Module, k: int, x: Tensor) -> Tensor:
    """Stem and blocks ``..k``; ``k`` past the last block adds the head convolution and pooling."""
    x = model._swish(model._bn0(model._conv_stem(x)))
    for block in model._blocks[:k]:
        x = block(x)
    return _lite_head(model, x) if k > len(model._blocks) else x


def _lite_trunk(model: nn.Module, k: int, x: Tensor) -> Tensor:
    """Blocks ``k..`` (with their stochastic-depth rates, as ``extract_features``), head, pooling,
    and the model's own classifier (``Identity`` for features, ``Linear`` for a regressor)."""
    rate, n = model._global_params.drop_connect_rate, len(model._blocks)
    if k <= n:
        for idx in range(k, n):
            x = model._blocks[idx](x, drop_connect_rate=rate * idx / n if rate else None)
        x = _lite_head(model, x)
    return model._fc(model._dropout(x))


#: backbone name (:data:`~miqa.models.backbones.BACKBONES`) -> its split.
STEM_SPLITS: Dict[str, StemSplit] = {
    'efficientnet_lite0': StemSplit(
        num_blocks=lambda m: len(m._blocks),
        stem_modules=lambda m, k: [m._conv_stem, m._bn0, *m._blocks[:k],
                                   *((m._conv_head, m._bn1) if k > len(m._blocks) else ())],
        stem=_lite_stem, trunk=_lite_trunk),
}


class _Stem(nn.Module):
    """The frozen part as a module of its own (what the cache fingerprints and calls)."""

    def __init__(self, backbone: nn.Module, split: StemSplit, stages: int) -> None:
        super().__init__()
        self.parts = nn.ModuleList(split.stem_modules(backbone, stages))
        self._run = lambda x: split.stem(backbone, stages, x)

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x)


class FrozenStem:
    """Runs ``backbone`` as a frozen, cached stem plus a trainable trunk.

    Not an ``nn.Module`` on purpose: the model keeps owning the backbone (one copy of every
    weight in its state dict); this object only holds references.

    Args:
        backbone: the built backbone (its classifier already replaced).
        name: its :data:`STEM_SPLITS` key.
        stages: number of leading blocks to freeze (1 .. number of blocks), or ``'all'``: the
            whole feature extractor, head convolution and pooling included.
        cache: ``True`` (default), ``False`` or ``dict`` of :class:`RegionTokenCache` options.
    """

    def __init__(self, backbone: nn.Module, name: str, stages: Union[int, str],
                 cache: Union[bool, dict] = True) -> None:
        if name not in STEM_SPLITS:
            raise KeyError(f'frozen_stages is not supported for backbone {name!r}; '
                           f'supported: {sorted(STEM_SPLITS)}')
        split = STEM_SPLITS[name]
        total = split.num_blocks(backbone)
        if stages == 'all':
            stages = total + 1
        elif isinstance(stages, str) or not 1 <= stages <= total:
            raise ValueError(f"frozen_stages must be in 1..{total} or 'all' for {name}, got {stages!r}")
        self.backbone, self.split, self.stages = backbone, split, int(stages)
        self.stem = _Stem(backbone, split, self.stages)
        self.stem.requires_grad_(False)
        cfg = dict(enabled=cache) if isinstance(cache, bool) else dict(cache)
        self.cache: Optional[RegionTokenCache] = RegionTokenCache(**cfg) if cfg.pop('enabled', True) else None

    def modules(self) -> Sequence[nn.Module]:
        """The frozen modules (kept in eval mode by the model's ``train()``)."""
        return list(self.stem.parts)

    def __call__(self, inputs: Tensor, img_paths: Optional[Sequence[Optional[str]]] = None) -> Tensor:
        self.stem.eval()
        with torch.no_grad():
            if self.cache is None:
                hidden = self.stem(inputs)
            else:
                hidden = self.cache.encode(self.stem, inputs, img_paths)
        return self.split.trunk(self.backbone, self.stages, hidden)
