"""RA-MIQA: region-aware MIQA model (spec §4).

Token fusion (``fusion='token'``, the reference)::

    region_inputs (B,3,288,288) -> frozen region encoder -> mean of final-normed patch tokens (B,384)
        -> projector [Linear 384->384, LayerNorm, GELU] -> region token
    inputs (B,3,224,224) -> ViT patch embed (B,196,384)
    [region, CLS, 196 patches] + pos_embed (1,198,384) -> 12 blocks -> final norm
    concat(CLS out, region out) (768) -> Linear 768->384 -> GELU -> Dropout 0.2 -> Linear 384->1

The 198-slot position embedding follows the reference code's wording: slot 0 (the region
token's slot) takes the pretrained CLS position embedding, slot 1 (the CLS token's) is
freshly initialised (truncated normal, std 0.02), slots 2.. copy the patch position
embeddings. The backbone's own ``pos_embed`` is then unused and frozen (kept so the
backbone stays a complete timm model and released ``base_model.*`` weights load 1:1).

Late fusion (``fusion='late'``, for backbones without a token sequence, e.g. EfficientNet-
Lite or ResNet; our extension, not in the paper): concat(pooled backbone features, region
token) -> the same head shape (Linear -> GELU -> Dropout -> Linear). The region encoder may
then be a CNN too (:class:`~miqa.models.region_encoder.CNNRegionEncoder`).

Ablation (``use_region_token=False``): no region encoder; the head reads the backbone's
pooled features only (for a ViT: the final-normed CLS token).

Confidence inputs (``confidence_inputs=('max_prob', ...)``, late fusion or the ablation; our
extension): the backbone's own ImageNet classifier, kept frozen beside it, turns the pooled
features into softmax statistics (:mod:`~miqa.models.confidence`) appended to the head's input.
A pretrained classifier's confidence on the degraded image is a strong zero-training predictor
of machine quality (Hendrycks & Gimpel 2017); the head learns what to add to it.
"""
from typing import Optional, Sequence, Union

import torch
from timm.models import checkpoint_seq
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from ..registry import MODELS
from .backbones import backbone_cfg, build_backbone_and_classifier
from .base import DataSamples, MIQABaseModel, sample_field
from .confidence import check_statistics, confidence_statistics
from .region_cache import RegionTokenCache
from .region_encoder import build_region_encoder

_FUSIONS = {'token': '_token_features', 'late': '_late_features'}
_LATE_PROJ_DIM = 384  # region-token width for late fusion when ``proj_dim`` is not given


@MODELS.register_module()
class RAMIQA(MIQABaseModel):
    """Region-aware MIQA regressor (spec §4).

    Args:
        backbone: trainable backbone, a name or ``dict(name=..., pretrained=..., **kwargs)``
            (:func:`~miqa.models.backbones.build_backbone`; ``pretrained`` defaults to
            ``True``, the ImageNet file; ``False`` builds random weights). ``frozen_stages=k``
            (late fusion) freezes and caches its first k blocks (:mod:`~miqa.models.frozen_stem`).
        region_encoder: cfg of a registered region encoder (default
            ``dict(type='TimmViTRegionEncoder')``: ViT-S/16 at 288 with the SERE weights).
        pretrained: ``True``/``False`` overrides the ``pretrained`` of every part (so
            ``--cfg-options model.pretrained=False`` builds random weights); ``None`` (default)
            leaves each part's own switch. Name files per part.
        fusion: ``'token'`` (region token in the ViT sequence, the paper) or ``'late'``.
        use_region_token: ``False`` is the ablation without any region branch.
        proj_dim: region-token width; token fusion needs the ViT width (the default),
            late fusion defaults to 384.
        head_hidden: hidden width of the head (default ``proj_dim``: 384 for ViT-S).
        head_dropout: dropout of the head (0.2 in the reference).
        region_cache: reuse frozen-encoder features (:mod:`~miqa.models.region_cache`):
            ``True`` (default), ``False``, or ``dict(cache_dir=None, max_items=None,
            hash_tensors=None)``.
            Only used while the region encoder is frozen.
        confidence_inputs: names of softmax statistics of the backbone's ImageNet classifier
            (frozen, ``confidence_classifier``) appended to the head's input; ``()`` (default)
            for none. Not with token fusion.
        loss: loss cfg (default MSE, spec §6).
    """

    def __init__(self, backbone: Union[str, dict] = 'vit_small_patch16_224',
                 region_encoder: Optional[dict] = None, pretrained: Optional[bool] = None,
                 fusion: str = 'token', use_region_token: bool = True,
                 proj_dim: Optional[int] = None, head_hidden: Optional[int] = None, head_dropout: float = 0.2,
                 region_cache: Union[bool, dict] = True, confidence_inputs: Sequence[str] = (),
                 loss: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss=loss, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if fusion not in _FUSIONS:
            raise ValueError(f'fusion must be one of {sorted(_FUSIONS)}, got {fusion!r}')
        if pretrained not in (None, True, False):
            raise ValueError('RAMIQA(pretrained=...) is a switch for all parts (None/True/False); '
                             'name weight files in backbone=dict(pretrained=...) / region_encoder')
        self.fusion, self.use_region_token = fusion, use_region_token
        cfg = self.build_frozen_stem(backbone_cfg(backbone, pretrained))
        self.backbone, feat_dim, classifier = build_backbone_and_classifier(num_outputs=0, **cfg)
        self._attach_frozen_stem()
        if self._stem is not None and fusion == 'token' and use_region_token:
            raise ValueError('frozen_stages needs fusion="late" (token fusion feeds the region token '
                             'into the first block)')

        token = fusion == 'token'
        if token and use_region_token:
            self._check_token_backbone()
            if proj_dim not in (None, feat_dim):
                raise ValueError(f'token fusion needs proj_dim == the backbone width {feat_dim}, '
                                 f'got {proj_dim}')
        proj_dim = proj_dim or (feat_dim if token else _LATE_PROJ_DIM)

        self.confidence_inputs = tuple(confidence_inputs)
        self.confidence_classifier = None
        if self.confidence_inputs:
            check_statistics(self.confidence_inputs)
            if token and use_region_token:
                raise ValueError('confidence_inputs need fusion="late" or use_region_token=False (with token '
                                 'fusion the CLS output is not what the ImageNet classifier reads)')
            self.confidence_classifier = classifier.requires_grad_(False)
        head_in = feat_dim + len(self.confidence_inputs)
        self.region_encoder = self.region_projector = self.region_cache = None
        if use_region_token:
            encoder_cfg = dict(region_encoder or dict(type='TimmViTRegionEncoder'))
            if pretrained is not None:
                encoder_cfg['pretrained'] = pretrained
            self.region_encoder = build_region_encoder(encoder_cfg)
            self.region_projector = nn.Sequential(
                nn.Linear(self.region_encoder.out_dim, proj_dim), nn.LayerNorm(proj_dim), nn.GELU())
            head_in += proj_dim
            if token:
                self.pos_embed = nn.Parameter(self._region_pos_embed())
                self.backbone.pos_embed.requires_grad_(False)  # replaced by self.pos_embed
            cache_cfg = dict(enabled=region_cache) if isinstance(region_cache, bool) else dict(region_cache)
            if cache_cfg.pop('enabled', True) and self.region_encoder.frozen:
                self.region_cache = RegionTokenCache(**cache_cfg)
        hidden = head_hidden or proj_dim
        self.head = nn.Sequential(nn.Linear(head_in, hidden), nn.GELU(), nn.Dropout(head_dropout),
                                  nn.Linear(hidden, 1))

    def _check_token_backbone(self) -> None:
        bb = self.backbone
        ok = (isinstance(bb, VisionTransformer) and bb.cls_token is not None and bb.num_prefix_tokens == 1
              and bb.pos_embed is not None and not bb.no_embed_class and not bb.dynamic_img_size
              and isinstance(bb.patch_drop, nn.Identity))
        if not ok:
            raise ValueError('fusion="token" needs a timm VisionTransformer with one CLS token, a learned '
                             'pos_embed covering it, no register tokens, no patch dropout and a fixed '
                             f'image size; got {type(bb).__name__}. Use fusion="late" for other backbones.')

    def _region_pos_embed(self) -> Tensor:
        """(1, 2 + N, C): [CLS pos (region slot), fresh (CLS slot), patch pos...] (spec §4)."""
        old = self.backbone.pos_embed.detach()
        fresh = nn.init.trunc_normal_(torch.empty_like(old[:, :1]), std=0.02)
        return torch.cat([old[:, :1], fresh, old[:, 1:]], dim=1)

    def region_features(self, region_inputs: Optional[Tensor], data_samples: DataSamples = None,
                        batch_size: Optional[int] = None, device: Optional[torch.device] = None) -> Tensor:
        """Frozen-encoder features (B, C) before the projector, from the cache when enabled.

        ``region_inputs`` holds the view of every sample, or -- when the loader skipped the
        views whose tokens the cache holds (``data_samples['has_region_view']``, see
        :mod:`~miqa.models.region_cache`) -- of the others only, or is ``None``.
        """
        n = batch_size if batch_size is not None else region_inputs.shape[0]
        has_view = sample_field(data_samples, 'has_region_view', n)
        if region_inputs is None and not has_view:
            raise ValueError('RA-MIQA needs region_inputs (put RegionView in the pipeline) '
                             'unless use_region_token=False')
        device = region_inputs.device if region_inputs is not None else device
        if self.region_cache is None:
            if has_view is not None and not all(has_view):  # skipped for another model's cache
                region_inputs = self._complete_views(region_inputs, has_view, data_samples, device)
            return self.region_encoder(region_inputs)
        return self.region_cache.encode(
            self.region_encoder, region_inputs, sample_field(data_samples, 'img_path', n),
            keys=sample_field(data_samples, 'region_key', n), has_view=has_view,
            rebuild=lambda idx: self._rebuild_views(idx, data_samples, n, device),
            context=getattr(self.data_preprocessor, 'region_context', str)(), device=device)

    def _rebuild_views(self, idx, data_samples: DataSamples, n: int, device: torch.device) -> Tensor:
        """Views of samples ``idx`` remade from their files (the loader skipped them), normalised."""
        from miqa.datasets.transforms import rebuild_region_view  # the pipeline's own steps

        paths = sample_field(data_samples, 'img_path', n)
        recipes = sample_field(data_samples, 'region_recipe', n)
        keys = sample_field(data_samples, 'region_key', n)
        views = torch.stack([rebuild_region_view(paths[i], recipes[i], keys[i]) for i in idx]).to(device)
        return getattr(self.data_preprocessor, 'normalise_region', lambda x: x)(views)

    def _complete_views(self, region_inputs: Optional[Tensor], has_view, data_samples: DataSamples,
                        device: torch.device) -> Tensor:
        """All B views: the loader's rows where it built them, the others remade."""
        missing = [i for i, h in enumerate(has_view) if not h]
        remade = self._rebuild_views(missing, data_samples, len(has_view), device)
        rows = [region_inputs[j] for j in range(region_inputs.shape[0])] if region_inputs is not None else []
        built, out = iter(rows), []
        by_index = dict(zip(missing, remade))
        for i, h in enumerate(has_view):
            out.append(next(built) if h else by_index[i])
        return torch.stack(out)

    def _token_features(self, inputs: Tensor, region: Tensor, data_samples: DataSamples = None) -> Tensor:
        bb = self.backbone
        x = bb.patch_embed(inputs)
        cls = bb.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([region.unsqueeze(1).to(x.dtype), cls, x], dim=1) + self.pos_embed
        x = bb.norm_pre(bb.pos_drop(x))
        x = checkpoint_seq(bb.blocks, x) if bb.grad_checkpointing else bb.blocks(x)
        x = bb.norm(x)
        return torch.cat([x[:, 1], x[:, 0]], dim=1)  # (CLS out, region out)

    def _pooled_features(self, inputs: Tensor, data_samples: DataSamples = None) -> Tensor:
        """Backbone features, followed by the confidence statistics when configured."""
        feats = self.backbone_features(inputs, data_samples)
        if self.confidence_classifier is None:
            return feats
        self.confidence_classifier.eval()
        with torch.no_grad():
            stats = confidence_statistics(self.confidence_classifier(feats), self.confidence_inputs)
        return torch.cat([feats, stats.to(feats.dtype)], dim=1)

    def _late_features(self, inputs: Tensor, region: Tensor, data_samples: DataSamples = None) -> Tensor:
        feats = self._pooled_features(inputs, data_samples)
        return torch.cat([feats, region.to(feats.dtype)], dim=1)

    def predict_scores(self, inputs: Tensor, region_inputs: Optional[Tensor] = None,
                       data_samples: DataSamples = None) -> Tensor:
        if not self.use_region_token:
            return self.head(self._pooled_features(inputs, data_samples)).squeeze(-1)
        region = self.region_projector(self.region_features(region_inputs, data_samples, inputs.shape[0],
                                                            inputs.device))
        return self.head(getattr(self, _FUSIONS[self.fusion])(inputs, region, data_samples)).squeeze(-1)
