"""The authors' HyperIQA and MANIQA checkpoints -> :mod:`miqa.hvs` module names, strictly.

Same contract as :mod:`miqa.models.converters` (whose :func:`rename_keys` /
:func:`check_state_dict` do the work): every source key is renamed by one rule or dropped by a
documented pattern, and the result must have exactly the target's keys and shapes, else a
:class:`ConversionError` lists the offending keys. The ``*_EXPORT_RULES`` tables are the
inverses (ours -> the authors' names); the tests build checkpoint-shaped sources with them and
check them against the hand-derived key lists in ``tests/data/``.

HyperIQA (github.com/SSL92/hyperIQA ``models.py``, file ``koniq_pretrained.pkl``): the state
dict of ``HyperNet(16, 112, 224, 112, 56, 28, 14, 7)``: ``res.*`` (torchvision-named ResNet-50
without ``fc``, plus the local distortion aware branches ``res.lda{1..4}_pool.0`` /
``res.lda{1..4}_fc``), ``conv1.{0,2,4}`` (hyper-network input convs), ``fc{1..4}w_conv``,
``fc5w_fc`` and ``fc{1..5}b_fc`` (target-network weight and bias generators).

MANIQA (github.com/IIGROUP/MANIQA ``models/maniqa.py``, ``models/swin.py``; the KonIQ-10k and
KADID-10k release assets are ``state_dict()`` files, the PIPAL22 one is a pickled whole model
and is read here only as pyiqa's state-dict re-save ``MANIQA_PIPAL-ae6d356b.pth``): ``vit.*``
(timm ``vit_base_patch8_224``), ``tablock{1,2}.{i}.c_{q,k,v}`` (``channel_attn{1,2}`` in an
earlier revision of the code), ``conv{1,2}``, ``swintransformer{1,2}.layers.{j}`` (blocks with
timm's Swin block names, plus a 3x3 ``conv`` per layer), ``fc_score`` / ``fc_weight``. Dropped:
``swintransformer{1,2}.downsample`` (built but never called by the official forward) and the
ViT parts after the last feature block (blocks 10, 11, ``norm``, ``head``: computed by the
official forward, their outputs unused). The files also hold the Swin buffers
``relative_position_index`` and ``attn_mask``, which timm recomputes (non-persistent); they are
checked for equality with timm's, which pins window size, shift and feature grid.
"""
from typing import Mapping, Optional

import torch
from torch import Tensor

from miqa.hub.loading import unwrap_state_dict
from miqa.models.converters import ConversionError, check_state_dict, rename_keys, two_way
from miqa.utils.types import StateDict

__all__ = ['ConversionError', 'HYPERIQA_RULES', 'HYPERIQA_EXPORT_RULES', 'MANIQA_RULES', 'MANIQA_DROP',
           'MANIQA_EXPORT_RULES', 'convert_hyperiqa', 'convert_maniqa']

#: Fields of the name tables below (``{field}`` in :func:`~miqa.models.converters.two_way`).
_FIELDS = dict(p='weight|bias', n=r'\d+', rest='.+', lda='[1-4]', fc='[1-5]', hyper='[024]', sw='[12]',
               qkv='[qkv]', head='[03]', resnet=r'conv1\.weight|bn1\..+|layer[1-4]\..+')

#: The authors' HyperIQA names <-> :class:`~miqa.hvs.hyperiqa.HyperIQA`'s.
HYPERIQA_NAMES = (
    ('res.lda{lda}_pool.0.weight', 'lda.layer{lda}.reduce.weight'),
    ('res.lda{lda}_fc.{p}', 'lda.layer{lda}.fc.{p}'),
    ('res.{resnet}', 'backbone.{resnet}'),
    ('conv1.{hyper}.{p}', 'hyper_in.{hyper}.{p}'),
    ('fc{lda}w_conv.{p}', 'target_weights.fc{lda}.{p}'),
    ('fc5w_fc.{p}', 'target_weights.fc5.{p}'),
    ('fc{fc}b_fc.{p}', 'target_biases.fc{fc}.{p}'),
)
HYPERIQA_RULES, HYPERIQA_EXPORT_RULES = two_way(HYPERIQA_NAMES, _FIELDS)

#: The authors' MANIQA names (current code: ``tablock``) <-> :class:`~miqa.hvs.maniqa.MANIQA`'s.
MANIQA_NAMES = (
    ('vit.{rest}', 'backbone.{rest}'),
    ('tablock{sw}.{n}.c_{qkv}.{p}', 'tab{sw}.{n}.{qkv}.{p}'),
    ('conv{sw}.{p}', 'reduce{sw}.{p}'),
    ('swintransformer{sw}.layers.{n}.{rest}', 'sstb{sw}.layers.{n}.{rest}'),
    ('fc_score.{head}.{p}', 'score_head.{head}.{p}'),
    ('fc_weight.{head}.{p}', 'weight_head.{head}.{p}'),
)
#: An earlier revision of the authors' code named the blocks ``channel_attn``: read, never written.
_MANIQA_OLD_NAMES = (('channel_attn{sw}.{n}.c_{qkv}.{p}', 'tab{sw}.{n}.{qkv}.{p}'),)
MANIQA_RULES, MANIQA_EXPORT_RULES = two_way(MANIQA_NAMES, _FIELDS)
MANIQA_RULES += two_way(_MANIQA_OLD_NAMES, _FIELDS)[0]

#: Source keys of MANIQA that no computation reads (``re.match`` patterns); see the module doc.
MANIQA_DROP = (r'swintransformer[12]\.downsample\.', r'vit\.(norm|fc_norm|head)\.')


def convert_hyperiqa(state_dict: Mapping, target: Mapping[str, Tensor]) -> StateDict:
    """The authors' ``koniq_pretrained.pkl`` state dict -> a :class:`~miqa.hvs.hyperiqa.HyperIQA` one.

    BatchNorm ``num_batches_tracked`` counters absent from the file (PyTorch 0.4.0 did not save
    them; they do not affect inference) are taken from ``target``; every other key must match.
    """
    origin = {}
    out = rename_keys(unwrap_state_dict(state_dict), HYPERIQA_RULES, (), origin)
    for key, value in target.items():
        if key.endswith('.num_batches_tracked') and key not in out:
            out[key] = value
    check_state_dict(out, target, 'HyperIQA model', origin)
    return out


def convert_maniqa(state_dict: Mapping, target: Mapping[str, Tensor],
                   buffers: Optional[Mapping[str, Tensor]] = None,
                   vit_blocks: Optional[int] = None) -> StateDict:
    """The authors' MANIQA state dict -> a :class:`~miqa.hvs.maniqa.MANIQA` one.

    Args:
        target: the model's ``state_dict()``.
        buffers: the model's non-persistent buffers (Swin ``relative_position_index`` /
            ``attn_mask``); the file's copies must equal them (meta tensors: shapes only).
        vit_blocks: ViT blocks the model keeps; the file's later blocks are dropped.
    """
    sd = unwrap_state_dict(state_dict)
    if vit_blocks is not None:
        sd = {k: v for k, v in sd.items()
              if not (k.startswith('vit.blocks.') and int(k.split('.')[2]) >= vit_blocks)}
    origin = {}
    out = rename_keys(sd, MANIQA_RULES, MANIQA_DROP, origin)
    buffers = dict(buffers or {})
    differ = []
    for key in [k for k in out if k in buffers and k not in target]:
        value, ours = out.pop(key), buffers[key]
        same_shape = tuple(value.shape) == tuple(ours.shape)
        if not same_shape or (not value.is_meta and not ours.is_meta
                              and not torch.equal(value.to(ours.dtype), ours.cpu())):
            differ.append(f'{origin[key]} ({tuple(value.shape)} vs {tuple(ours.shape)})')
    if differ:
        raise ConversionError(
            f'Swin buffers of the checkpoint differ from the model\'s: {", ".join(sorted(differ)[:10])}. '
            'The checkpoint was trained with another window size, shift or feature grid '
            '(img_size / patch_size / window_size of the model).')
    check_state_dict(out, target, 'MANIQA model', origin)
    return out
