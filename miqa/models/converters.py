"""Checkpoint converters: ViT name layouts and the authors' released checkpoints -> miqa models.

Every converter is strict: each source key is consumed by a rename rule or by a documented
drop, and the result must match the target's keys and shapes exactly; otherwise a
:class:`ConversionError` lists the offending keys. Rules are data (regex -> replacement
tables), applied with ``re.fullmatch``.

- :data:`MMSEG_VIT_TO_TIMM`: mmseg ``VisionTransformer`` names -> timm names. mmseg's
  attention is ``nn.MultiheadAttention`` whose ``in_proj_weight`` stacks ``[W_q; W_k; W_v]``
  row-wise, the same layout timm's ``Attention.qkv`` reshapes as ``(3, heads, head_dim)``,
  so the split is the identity (checked numerically in tests/test_converters.py).
- :func:`vit_to_timm`: SERE / timm-style or mmseg ViT weights -> timm names (spec §4). The
  final LayerNorm is filled from ``fc_norm`` when the file has it, else from ``norm`` (mmseg:
  ``ln1``); the other of the two and the classifier ``head.*`` are dropped.
- :func:`convert_ra_miqa`: the released RA-MIQA layout (spec §4: ``base_model.*``,
  ``mask_encoder.*`` in mmseg names, ``mask_projector.{0,1}``, ``pos_embed``,
  ``quality_regressor.{0,3}``) -> :class:`~miqa.models.RAMIQA`.
- :func:`convert_baseline`: released baselines (torchvision / timm names, spec §5) ->
  :class:`~miqa.models.IQARegressor` (``backbone.`` prefix).

Both checkpoint layouts may be wrapped in ``state_dict`` / ``model`` and prefixed ``module.``.
"""
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import torch
from timm.layers import resample_abs_pos_embed
from torch import Tensor, nn

from miqa.hub.loading import load_state_dict_file, unwrap_state_dict
from miqa.utils.types import PathLike, StateDict

from ..registry import MODELS

Rules = Sequence[Tuple[str, str]]


class ConversionError(ValueError):
    """A checkpoint does not map one-to-one onto its target."""


def two_way(names: Sequence[Tuple[str, str]], fields: Mapping[str, str]) -> Tuple[Rules, Rules]:
    """Rename rules both ways from ``(theirs, ours)`` key templates: ``{field}`` matches the regex
    ``fields[field]`` in one name and is copied into the other, the rest is literal. Returns
    ``(theirs -> ours, ours -> theirs)``, so a table is written once and its inverse is exact."""
    def rule(src: str, dst: str) -> Tuple[str, str]:
        parts = re.split(r'\{(\w+)\}', src)  # literal, field, literal, ...
        pattern = ''.join(f'(?P<{part}>{fields[part]})' if i % 2 else re.escape(part)
                          for i, part in enumerate(parts))
        return pattern, re.sub(r'\{(\w+)\}', r'\\g<\1>', dst)

    return tuple(rule(a, b) for a, b in names), tuple(rule(b, a) for a, b in names)


#: mmseg ``VisionTransformer`` <-> timm ``VisionTransformer`` names (tests/data/mmseg_vit_small_keys.txt).
MMSEG_VIT_NAMES = (
    ('cls_token', 'cls_token'),
    ('pos_embed', 'pos_embed'),
    ('patch_embed.projection.{p}', 'patch_embed.proj.{p}'),
    ('layers.{n}.ln1.{p}', 'blocks.{n}.norm1.{p}'),
    ('layers.{n}.ln2.{p}', 'blocks.{n}.norm2.{p}'),
    ('layers.{n}.attn.attn.in_proj_weight', 'blocks.{n}.attn.qkv.weight'),
    ('layers.{n}.attn.attn.in_proj_bias', 'blocks.{n}.attn.qkv.bias'),
    ('layers.{n}.attn.attn.out_proj.{p}', 'blocks.{n}.attn.proj.{p}'),
    ('layers.{n}.ffn.layers.0.0.{p}', 'blocks.{n}.mlp.fc1.{p}'),
    ('layers.{n}.ffn.layers.1.{p}', 'blocks.{n}.mlp.fc2.{p}'),
    ('ln1.{p}', 'norm.{p}'),  # the final norm (mmseg ``final_norm=True``)
)
#: mmseg -> timm, and the inverse (exporting; tests build mmseg-named sources with it).
MMSEG_VIT_TO_TIMM, TIMM_VIT_TO_MMSEG = two_way(MMSEG_VIT_NAMES, dict(n=r'\d+', p='weight|bias'))

#: timm-style ViT keys kept as they are (the final norm is chosen separately).
_TIMM_VIT_BODY = r'(cls_token|pos_embed|patch_embed\.proj\.(weight|bias)|blocks\.\d+\..+)'

#: The released RA-MIQA layout (everything but ``mask_encoder.*``) -> :class:`RAMIQA`.
RA_MIQA_RULES: Rules = (
    (r'base_model\.(.+)', r'backbone.\1'),
    (r'mask_projector\.(.+)', r'region_projector.\1'),
    (r'quality_regressor\.(.+)', r'head.\1'),
    (r'pos_embed', 'pos_embed'),
)
RA_MIQA_ENCODER_SRC = 'mask_encoder.'
RA_MIQA_ENCODER_DST = 'region_encoder.model.'  # TimmViTRegionEncoder.model inside RAMIQA


def _shorten(keys: Iterable[str], n: int = 20) -> str:
    keys = sorted(keys)
    return ', '.join(keys[:n]) + (f' ... (+{len(keys) - n} more)' if len(keys) > n else '')


def rename_keys(state_dict: Mapping[str, Tensor], rules: Rules, drop: Iterable[str] = (),
                origin: Optional[Dict[str, str]] = None) -> StateDict:
    """Discard keys matching a ``drop`` regex (``re.match``, i.e. anchored at the start), apply
    the first fully matching rule to each other key; a key no rule matches is an error.
    ``origin``, when given, receives ``new key -> source key``."""
    compiled = [(re.compile(p), r) for p, r in rules]
    drops = [re.compile(d) for d in drop]
    out: StateDict = {}
    unconsumed, clashes = [], []
    for key, value in state_dict.items():
        if any(d.match(key) for d in drops):
            continue
        for pattern, repl in compiled:
            m = pattern.fullmatch(key)
            if m:
                new = m.expand(repl)
                if new in out:
                    clashes.append(new)
                out[new] = value
                if origin is not None:
                    origin[new] = key
                break
        else:
            unconsumed.append(key)
    if unconsumed or clashes:
        raise ConversionError(
            (f'{len(unconsumed)} source keys not consumed: {_shorten(unconsumed)}. ' if unconsumed else '')
            + (f'several source keys map to: {_shorten(clashes)}. ' if clashes else '')
            + 'Pass drop patterns (regex) for keys that are intentionally unused.')
    return out


def check_state_dict(converted: Mapping[str, Tensor], target: Mapping[str, Tensor], what: str = 'target',
                     origin: Optional[Mapping[str, str]] = None) -> None:
    """Raise unless ``converted`` has exactly the keys and shapes of ``target``
    (``origin`` names the source key of each converted one in the message)."""
    origin = origin or {}
    missing = set(target) - set(converted)
    unexpected = {f'{k} (from {origin[k]})' if k in origin else k for k in set(converted) - set(target)}
    shapes = [f'{k}: {tuple(converted[k].shape)} vs {tuple(target[k].shape)}'
              for k in sorted(set(target) & set(converted)) if converted[k].shape != target[k].shape]
    if missing or unexpected or shapes:
        raise ConversionError(
            f'converted weights do not match the {what}: '
            + (f'{len(missing)} missing keys: {_shorten(missing)}. ' if missing else '')
            + (f'{len(unexpected)} unexpected keys: {_shorten(unexpected)}. ' if unexpected else '')
            + (f'shape mismatches: {"; ".join(shapes[:20])}. ' if shapes else '')
            + ('Source keys that are intentionally unused can be dropped (drop=[regex], --drop).'
               if unexpected else ''))


def resize_pos_embed(pos_embed: Tensor, grid: Tuple[int, int], num_prefix_tokens: int = 1) -> Tensor:
    """Resample a square absolute position embedding (1, prefix + h*w, C) to ``grid``.

    Bicubic, ``align_corners=False``, no antialiasing: what mmseg's
    ``VisionTransformer.resize_pos_embed`` does (spec §4: 14x14 -> 18x18 for the 288 view).
    """
    if pos_embed.shape[1] == num_prefix_tokens + grid[0] * grid[1]:
        return pos_embed
    return resample_abs_pos_embed(pos_embed, new_size=list(grid), num_prefix_tokens=num_prefix_tokens,
                                  interpolation='bicubic', antialias=False, align_corners=False)


def _square_grid(num_tokens: int, num_prefix_tokens: int = 1) -> Tuple[int, int]:
    side = math.isqrt(num_tokens - num_prefix_tokens)
    if side * side != num_tokens - num_prefix_tokens:
        raise ConversionError(f'position embedding of {num_tokens} tokens is not a square grid')
    return side, side


def is_mmseg_vit(state_dict: Mapping[str, Tensor]) -> bool:
    return any(k.startswith(('layers.', 'patch_embed.projection.')) for k in state_dict)


def vit_to_timm(state_dict: Mapping[str, Tensor], final_norm: Optional[str] = None,
                drop: Iterable[str] = ()) -> StateDict:
    """ViT weights in mmseg or timm-style (SERE) names -> timm names, without classifier.

    Args:
        state_dict: mmseg names (optionally under ``backbone.``) or timm names.
        final_norm: for timm-style files, the norm that feeds timm's final ``norm``;
            default ``fc_norm`` when present, else ``norm`` (the reference's choice, spec §4).
        drop: extra regexes of keys to discard.
    """
    sd = dict(state_dict)
    if sd and all(k.startswith('backbone.') for k in sd):  # an mmseg model checkpoint
        sd = {k[len('backbone.'):]: v for k, v in sd.items()}
    if is_mmseg_vit(sd):
        return rename_keys(sd, MMSEG_VIT_TO_TIMM, drop)
    if final_norm is None:
        final_norm = next((n for n in ('fc_norm', 'norm') if f'{n}.weight' in sd), 'norm')
    unused_norms = [rf'{n}\.' for n in ('fc_norm', 'norm') if n != final_norm]
    rules = ((_TIMM_VIT_BODY, r'\1'), (rf'{re.escape(final_norm)}\.(weight|bias)', r'norm.\1'))
    return rename_keys(sd, rules, [r'head\.', *unused_norms, *drop])


def load_timm_vit(model: nn.Module, state_dict: Mapping[str, Tensor],
                  final_norm: Optional[str] = None) -> None:
    """Load mmseg / SERE / timm ViT weights into a timm ``VisionTransformer``, strictly.

    The model's classifier (``head``) is left as it is (callers replace it); the position
    embedding is resized to the model's patch grid (:func:`resize_pos_embed`).
    """
    converted = vit_to_timm(state_dict, final_norm)
    if 'pos_embed' in converted:
        converted['pos_embed'] = resize_pos_embed(converted['pos_embed'], tuple(model.patch_embed.grid_size),
                                                  model.num_prefix_tokens)
    target = {k: v for k, v in model.state_dict().items() if not k.startswith('head.')}
    check_state_dict(converted, target, f'{type(model).__name__} (without head)')
    model.load_state_dict(converted, strict=False)


def convert_ra_miqa(state_dict: Mapping[str, Any], target: Mapping[str, Tensor],
                    drop: Iterable[str] = ()) -> StateDict:
    """The authors' released RA-MIQA checkpoint (spec §4) -> a :class:`RAMIQA` state dict.

    ``mask_encoder.*`` (mmseg names) becomes ``region_encoder.model.*`` (timm names), its
    position embedding resized to the target's grid when they differ.
    """
    sd = unwrap_state_dict(state_dict)
    encoder = {k[len(RA_MIQA_ENCODER_SRC):]: v for k, v in sd.items() if k.startswith(RA_MIQA_ENCODER_SRC)}
    rest = {k: v for k, v in sd.items() if not k.startswith(RA_MIQA_ENCODER_SRC)}
    origin: Dict[str, str] = {}
    out = rename_keys(rest, RA_MIQA_RULES, drop, origin)
    encoder = vit_to_timm(encoder)
    pe_key = RA_MIQA_ENCODER_DST + 'pos_embed'
    if 'pos_embed' in encoder and pe_key in target:
        encoder['pos_embed'] = resize_pos_embed(encoder['pos_embed'], _square_grid(target[pe_key].shape[1]))
    out.update({RA_MIQA_ENCODER_DST + k: v for k, v in encoder.items()})
    check_state_dict(out, target, 'RAMIQA model', origin)
    return out


def convert_baseline(state_dict: Mapping[str, Any], target: Mapping[str, Tensor],
                     drop: Iterable[str] = ()) -> StateDict:
    """A released baseline checkpoint (torchvision / timm names, spec §5) -> :class:`IQARegressor`."""
    rules = ((r'backbone\.(.+)', r'backbone.\1'), (r'(.+)', r'backbone.\1'))
    origin: Dict[str, str] = {}
    out = rename_keys(unwrap_state_dict(state_dict), rules, drop, origin)
    check_state_dict(out, target, 'IQARegressor model', origin)
    return out


Converter = Callable[[Mapping[str, Any], Mapping[str, Tensor], Iterable[str]], StateDict]


def _baseline(name: str) -> Tuple[Converter, dict]:
    return convert_baseline, dict(type='IQARegressor', backbone=dict(name=name, pretrained=False))


#: ``--model`` name -> (converter, cfg of the target model, built with random weights).
CONVERSIONS: Dict[str, Tuple[Converter, dict]] = {
    'ra_miqa': (convert_ra_miqa, dict(
        type='RAMIQA', backbone=dict(name='vit_small_patch16_224', pretrained=False),
        region_encoder=dict(type='TimmViTRegionEncoder', pretrained=False))),
    **{name: _baseline(name) for name in
       ('resnet18', 'resnet50', 'efficientnet_b1', 'efficientnet_b5', 'vit_small_patch16_224')},
}


def _without_pretrained(cfg: Any) -> Any:
    """A copy of a model cfg with every ``pretrained`` switch off (the target is only a shape)."""
    if isinstance(cfg, Mapping):
        return {k: False if k == 'pretrained' else _without_pretrained(v) for k, v in cfg.items()}
    return cfg


def convert_checkpoint(src: Union[PathLike, Mapping[str, Any]], model: str, model_cfg: Optional[dict] = None,
                       drop: Iterable[str] = (), strip_prefixes: Iterable[str] = ()) -> StateDict:
    """Convert a released checkpoint (file or loaded mapping) for the ``model`` of :data:`CONVERSIONS`.

    Args:
        model_cfg: the target architecture when it differs from the default of ``model``.
        drop: regexes of source keys that are intentionally unused.
        strip_prefixes: extra key prefixes to strip (``module.`` always is).
    """
    if model not in CONVERSIONS:
        raise KeyError(f'unknown model {model!r}; choose from {", ".join(CONVERSIONS)}')
    convert, default_cfg = CONVERSIONS[model]
    prefixes = ('module.', *strip_prefixes)
    sd = (load_state_dict_file(src, prefixes) if isinstance(src, (str, os.PathLike))
          else unwrap_state_dict(src, prefixes))
    with torch.device('meta'):  # only the target's keys and shapes are needed
        target = MODELS.build(_without_pretrained(model_cfg or default_cfg)).state_dict()
    return {k: v.detach().clone().contiguous() for k, v in convert(sd, target, drop).items()}


def save_state_dict(state_dict: Mapping[str, Tensor], dst: PathLike) -> None:
    """Save a plain state dict (loadable with ``weights_only=True``), atomically."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f'.{dst.name}.{os.getpid()}.tmp')
    torch.save(dict(state_dict), tmp)
    os.replace(tmp, dst)
