"""MANIQA (Yang et al., "MANIQA: Multi-dimension Attention Network for No-Reference Image Quality
Assessment", CVPRW 2022; official code github.com/IIGROUP/MANIQA ``models/maniqa.py``,
``models/swin.py``).

A ViT-B/8 (timm ``vit_base_patch8_224``) sees a ``224 x 224`` crop normalised with mean = std =
0.5; the patch tokens after blocks 6, 7, 8, 9 (0-based) are concatenated channel-wise
(``4 x 768`` channels on the ``28 x 28`` grid). Two stages follow, each: transposed attention
blocks (TAB: attention across channels, with a linear map over the 784 positions), a 1x1 conv
(3072 -> 768, then 768 -> 384) and a scale Swin transformer block (SSTB: per layer, two Swin
blocks with window 4 / shift 2, a 3x3 conv + ReLU, and ``x <- scale * layer(x) + x``). Each patch
gets a score (``Linear-ReLU-Linear-ReLU``) and a weight (``... -Sigmoid``); the crop score is the
weighted mean of the patch scores. Higher is better.

Official test protocol: the mean score of 20 random 224 crops of the unresized image
(``predict_one_image.py``); here the crops are seeded (:mod:`miqa.hvs.crops`) and their number
defaults to 8 for speed (ViT-B/8 runs 785 tokens per crop; ``num_crops=20`` is the official
protocol). Images with a side below 224 are first upsampled to a short side of 224.

Registered variants, one per published weight file (``scale`` is not in the files: it is the
value each was trained with): ``MANIQA`` (KonIQ-10k, scale 0.8), ``MANIQA-KADID`` (KADID-10k,
0.8), ``MANIQA-PIPAL`` (PIPAL22, 0.13).
"""
from typing import Dict, Optional, Sequence

import timm
import torch
from timm.models.swin_transformer import SwinTransformerBlock
from torch import nn

from miqa.registry import SCORERS
from miqa.utils.types import PathLike

from .base import HVSScorer, load_scorer_weight
from .converters import convert_maniqa
from .crops import fit_min_side, mean_crop_score


class TransposedAttention(nn.Module):
    """TAB (the paper's Sec. 3.3): self-attention across channels of ``B x C x N`` features, with
    linear q/k/v maps over the ``N`` positions and a residual connection.

    The official code reshapes ``(attn @ v)`` (``B x C x N``) through ``transpose(1, 2).reshape(B,
    C, N)``, which interleaves channels and positions rather than transposing back; it is kept
    as is, since the published weights were trained with it.
    """

    def __init__(self, num_positions: int):
        super().__init__()
        self.q = nn.Linear(num_positions, num_positions)
        self.k = nn.Linear(num_positions, num_positions)
        self.v = nn.Linear(num_positions, num_positions)
        self.scale = num_positions ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n = x.shape
        attn = torch.softmax(self.q(x) @ self.k(x).transpose(1, 2) * self.scale, dim=-1)
        return (attn @ self.v(x)).transpose(1, 2).reshape(b, c, n) + x


class ScaleSwinLayer(nn.Module):
    """One layer of an SSTB: Swin blocks (shift 0, window // 2, ... ; timm blocks, NHWC), then a
    3x3 conv + ReLU."""

    def __init__(self, dim: int, grid: int, depth: int, num_heads: int, window_size: int, dim_mlp: int):
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, (grid, grid), num_heads=num_heads, window_size=window_size,
                                 shift_size=0 if i % 2 == 0 else window_size // 2, mlp_ratio=dim_mlp / dim)
            for i in range(depth)])
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B x C x H x W
        y = x.permute(0, 2, 3, 1)
        for blk in self.blocks:
            y = blk(y)
        return torch.relu(self.conv(y.permute(0, 3, 1, 2)))


class ScaleSwinBlock(nn.Module):
    """SSTB (the paper's Sec. 3.4): layers with a scaled residual, ``x <- scale * layer(x) + x``."""

    def __init__(self, dim: int, grid: int, depths: Sequence[int], num_heads: Sequence[int], window_size: int,
                 dim_mlp: int, scale: float):
        super().__init__()
        self.scale = scale
        self.layers = nn.ModuleList([ScaleSwinLayer(dim, grid, d, h, window_size, dim_mlp)
                                     for d, h in zip(depths, num_heads)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = self.scale * layer(x) + x
        return x


def _patch_head(dim: int, last: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(0.1), nn.Linear(dim, 1), last)


@SCORERS.register_module(name='MANIQA')
class MANIQA(HVSScorer):
    """MANIQA no-reference scorer (KonIQ-10k weights of the authors; variants below).

    Args:
        pretrained: ``True`` loads the variant's weight file (``$MIQA_HOME/weights/`` or the path in
            ``weights``); ``False`` keeps random weights (tests only, nothing is read).
        weights: ``dict(<weight key>=path)`` to use another copy of the file.
        num_crops: 224 crops averaged per image (official: 20; default 8 for speed).
        seed: seed of the crop offsets (the same for all images of one size).
        crop_batch: crops per forward pass (memory bound; does not change the scores).
        backbone, backbone_kwargs: the timm ViT (``pretrained=False`` always; kwargs such as
            ``img_size``, ``embed_dim``, ``depth``, ``num_heads`` shrink it for tests).
        feature_blocks: ViT blocks whose outputs are concatenated (official: 6, 7, 8, 9).
        embed_dim, dim_mlp, num_heads, depths, window_size, num_tab, scale: the head (official:
            768, 768, (4, 4), (2, 2), 4, 2; ``scale`` per variant, ``None`` = the variant's).
    """

    name = 'MANIQA'
    full_reference = False
    lower_is_better = False
    weight_files = ('maniqa_koniq10k',)
    default_scale = 0.8
    mean = std = 0.5

    def __init__(self, pretrained: bool = True, weights: Optional[Dict[str, PathLike]] = None,
                 num_crops: int = 8, seed: int = 0, crop_batch: int = 16,
                 backbone: str = 'vit_base_patch8_224', backbone_kwargs: Optional[dict] = None,
                 feature_blocks: Sequence[int] = (6, 7, 8, 9),
                 embed_dim: int = 768, dim_mlp: int = 768, num_heads: Sequence[int] = (4, 4),
                 depths: Sequence[int] = (2, 2), window_size: int = 4, num_tab: int = 2,
                 scale: Optional[float] = None):
        super().__init__()
        self.num_crops, self.seed, self.crop_batch = num_crops, seed, crop_batch
        self.feature_blocks = tuple(feature_blocks)
        vit = timm.create_model(backbone, pretrained=False, **(backbone_kwargs or {}))
        vit.prune_intermediate_layers(list(self.feature_blocks), prune_norm=True, prune_head=True)
        self.backbone = vit
        self.crop_size = vit.patch_embed.img_size[0]
        grid = vit.patch_embed.grid_size
        if grid[0] != grid[1] or vit.patch_embed.img_size[0] != vit.patch_embed.img_size[1]:
            raise ValueError(f'MANIQA needs a square ViT input, got img_size {vit.patch_embed.img_size}')
        self.grid = grid[0]
        positions = self.grid ** 2
        scale = self.default_scale if scale is None else scale
        feat_dim = vit.embed_dim * len(self.feature_blocks)
        self.tab1 = nn.ModuleList([TransposedAttention(positions) for _ in range(num_tab)])
        self.reduce1 = nn.Conv2d(feat_dim, embed_dim, 1)
        self.sstb1 = ScaleSwinBlock(embed_dim, self.grid, depths, num_heads, window_size, dim_mlp, scale)
        self.tab2 = nn.ModuleList([TransposedAttention(positions) for _ in range(num_tab)])
        self.reduce2 = nn.Conv2d(embed_dim, embed_dim // 2, 1)
        self.sstb2 = ScaleSwinBlock(embed_dim // 2, self.grid, depths, num_heads, window_size, dim_mlp, scale)
        self.score_head = _patch_head(embed_dim // 2, nn.ReLU())
        self.weight_head = _patch_head(embed_dim // 2, nn.Sigmoid())
        if pretrained:
            key = self.weight_files[0]
            state = load_scorer_weight(key, (weights or {}).get(key))
            persistent = self.state_dict()
            buffers = {k: v for k, v in self.named_buffers() if k not in persistent}
            self.load_state_dict(convert_maniqa(state, persistent, buffers, vit_blocks=len(vit.blocks)))
        self.eval()

    def score_crops(self, crops: torch.Tensor) -> torch.Tensor:
        """Scores of ``M x 3 x S x S`` crops in ``[0, 1]`` (``S``: the ViT input size), ``M``."""
        x = (crops - self.mean) / self.std
        feats = self.backbone.forward_intermediates(x, indices=list(self.feature_blocks), stop_early=True,
                                                    intermediates_only=True, output_fmt='NCHW')
        x = torch.cat(feats, dim=1)  # M x 4C x H x W: the official concat of the patch tokens
        m, c, h, w = x.shape
        stages = ((self.tab1, self.reduce1, self.sstb1), (self.tab2, self.reduce2, self.sstb2))
        for tabs, reduce, sstb in stages:
            y = x.flatten(2)
            for tab in tabs:
                y = tab(y)
            x = sstb(reduce(y.view(m, -1, h, w)))
        tokens = x.flatten(2).transpose(1, 2)  # M x HW x C
        score, weight = self.score_head(tokens), self.weight_head(tokens)
        return (score * weight).sum(dim=(1, 2)) / weight.sum(dim=(1, 2))

    def forward(self, distorted: torch.Tensor, reference: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = fit_min_side(distorted, self.crop_size)
        return mean_crop_score(self.score_crops, x, self.crop_size, self.num_crops, self.seed,
                               self.crop_batch)


@SCORERS.register_module(name='MANIQA-KADID')
class MANIQAKADID(MANIQA):
    """MANIQA with the authors' KADID-10k weights (``ckpt_kadid10k.pt``, trained with scale 0.8)."""

    name = 'MANIQA-KADID'
    weight_files = ('maniqa_kadid10k',)
    default_scale = 0.8


@SCORERS.register_module(name='MANIQA-PIPAL')
class MANIQAPIPAL(MANIQA):
    """MANIQA with the authors' PIPAL22 (NTIRE 2022) weights, as re-saved by pyiqa
    (``MANIQA_PIPAL-ae6d356b.pth``; trained with scale 0.13)."""

    name = 'MANIQA-PIPAL'
    weight_files = ('maniqa_pipal22',)
    default_scale = 0.13

