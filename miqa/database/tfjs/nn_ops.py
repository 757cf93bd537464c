"""TF neural-network ops in torch, NHWC in and out: ``SAME`` padding split as TF does (the odd
pixel after), convolutions with their fused ``BiasAdd`` / ``FusedBatchNorm`` + activation, pooling,
activations and ``ResizeBilinear`` (TF's interpolation formula); each ``fn(inputs, attrs)``."""
import math
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .array_ops import as_ints
from .model_json import GraphModelError


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> Tuple[int, int]:
    """TF ``SAME`` padding of one spatial dimension: (before, after), the odd pixel after."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _spatial(attrs: Mapping[str, Any], key: str, default: int = 1) -> Tuple[int, int]:
    """(h, w) of a 4-entry NHWC / NCHW attr list."""
    values = attrs.get(key) or [default] * 4
    return (values[1], values[2]) if attrs.get('data_format', 'NHWC') == 'NHWC' else (values[2], values[3])


def _to_nchw(x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
    return x.permute(0, 3, 1, 2) if attrs.get('data_format', 'NHWC') == 'NHWC' else x


def _from_nchw(x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
    return x.permute(0, 2, 3, 1) if attrs.get('data_format', 'NHWC') == 'NHWC' else x


def _pad_nchw(x: Tensor, attrs: Mapping[str, Any], kernel: Tuple[int, int], stride: Tuple[int, int],
              dilation: Tuple[int, int], value: float = 0.0) -> Tensor:
    """Pad an NCHW tensor as the op's ``padding`` attr says (SAME / VALID / EXPLICIT)."""
    padding = attrs.get('padding', 'VALID')
    if padding == 'VALID':
        return x
    if padding == 'SAME':
        top, bottom = same_padding(x.shape[2], kernel[0], stride[0], dilation[0])
        left, right = same_padding(x.shape[3], kernel[1], stride[1], dilation[1])
    elif padding == 'EXPLICIT':
        p = attrs.get('explicit_paddings') or [0] * 8
        nhwc = attrs.get('data_format', 'NHWC') == 'NHWC'
        (top, bottom), (left, right) = ((p[2], p[3]), (p[4], p[5])) if nhwc else ((p[4], p[5]), (p[6], p[7]))
    else:
        raise GraphModelError(f'padding {padding!r} is not supported')
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


# ---------------------------------------------------------------- activations (standalone and fused)
def relu6(x: Tensor) -> Tensor:
    return x.clamp(0.0, 6.0)


def leaky_relu(x: Tensor, alpha: float) -> Tensor:
    return F.leaky_relu(x, alpha)


def prelu(x: Tensor, alpha: Tensor) -> Tensor:
    """TF ``Prelu``: ``x`` where positive, ``alpha * x`` elsewhere (``alpha`` broadcasts)."""
    return torch.where(x > 0, x, alpha * x)


#: Activations of fused ops: name -> ``fn(x, extra_args, attrs)`` (``Prelu`` takes its alpha arg).
FUSED_ACTIVATIONS: Dict[str, Callable[[Tensor, List[Tensor], Mapping[str, Any]], Tensor]] = {
    'Relu': lambda x, args, attrs: F.relu(x),
    'Relu6': lambda x, args, attrs: relu6(x),
    'Elu': lambda x, args, attrs: F.elu(x),
    'Sigmoid': lambda x, args, attrs: torch.sigmoid(x),
    'Tanh': lambda x, args, attrs: torch.tanh(x),
    'LeakyRelu': lambda x, args, attrs: leaky_relu(x, attrs.get('leakyrelu_alpha', 0.2)),
    'Prelu': lambda x, args, attrs: prelu(x, args[0]),
}


def apply_fused(y: Tensor, fused: Sequence[str], args: List[Tensor], attrs: Mapping[str, Any]) -> Tensor:
    """The ``fused_ops`` after a convolution on the NHWC / NCHW output ``y``.

    ``BiasAdd`` (1 arg) or ``FusedBatchNorm`` (4 args: scale, offset, mean, variance; ``epsilon``)
    then at most one activation of :data:`FUSED_ACTIVATIONS` (``Prelu`` takes the next arg)."""
    channel = -1 if attrs.get('data_format', 'NHWC') == 'NHWC' else 1
    shape = [1] * y.dim()
    shape[channel] = -1
    args = list(args)
    for op in fused:
        if op == 'BiasAdd':
            y = y + args.pop(0).reshape(shape)
        elif op == 'FusedBatchNorm':
            scale, offset, mean, var = (args.pop(0).reshape(shape) for _ in range(4))
            y = (y - mean) * (scale * torch.rsqrt(var + attrs.get('epsilon', 1e-3))) + offset
        elif op in FUSED_ACTIVATIONS:
            extra = []
            if op == 'Prelu':  # per-channel alpha, laid out like the bias
                alpha = args.pop(0)
                extra = [alpha.reshape(shape) if alpha.dim() == 1 else alpha]
            y = FUSED_ACTIVATIONS[op](y, extra, attrs)
        else:
            raise GraphModelError(f'fused op {op!r} is not supported (supported: BiasAdd, FusedBatchNorm, '
                                  f'{", ".join(FUSED_ACTIVATIONS)})')
    return y


# ---------------------------------------------------------------- convolutions and pooling
def conv_filter_to_torch(w: Tensor) -> Tensor:
    """TF ``Conv2D`` filter ``[kh, kw, in / groups, out]`` -> torch ``[out, in / groups, kh, kw]``."""
    return w.permute(3, 2, 0, 1).contiguous()


def depthwise_filter_to_torch(w: Tensor) -> Tensor:
    """TF depthwise filter ``[kh, kw, in, multiplier]`` -> torch ``[in * multiplier, 1, kh, kw]``
    (TF's output channel ``c * multiplier + m`` is torch's group ``c``, member ``m``)."""
    kh, kw, cin, mult = w.shape
    return w.permute(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw).contiguous()


def _conv(inputs: List[Tensor], attrs: Mapping[str, Any], depthwise: bool) -> Tensor:
    """Conv2D / DepthwiseConv2dNative (+ fused ops), filter already in torch layout."""
    x, w = inputs[0], inputs[1]
    stride, dilation = _spatial(attrs, 'strides'), _spatial(attrs, 'dilations')
    xc = _to_nchw(x, attrs)
    groups = xc.shape[1] if depthwise else xc.shape[1] // w.shape[1]
    if not depthwise and xc.shape[1] != groups * w.shape[1]:
        raise GraphModelError(f'Conv2D: {xc.shape[1]} input channels do not split into groups of '
                              f'{w.shape[1]}')
    xc = _pad_nchw(xc, attrs, (w.shape[2], w.shape[3]), stride, dilation)
    fused = list(attrs.get('fused_ops') or [])
    args = list(inputs[2:])
    bias = None
    if fused[:1] == ['BiasAdd']:  # bias inside the convolution (one pass)
        bias, fused, args = args[0].reshape(-1), fused[1:], args[1:]
    y = F.conv2d(xc, w, bias, stride=stride, dilation=dilation, groups=groups)
    if fused:
        y = apply_fused(y, fused, args, dict(attrs, data_format='NCHW'))
    return _from_nchw(y, attrs)


def conv2d(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    """``Conv2D`` / ``_FusedConv2D`` (groups = input channels / filter depth, as TF allows)."""
    return _conv(inputs, attrs, depthwise=False)


def depthwise_conv2d(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    """``DepthwiseConv2dNative`` / ``FusedDepthwiseConv2dNative``."""
    return _conv(inputs, attrs, depthwise=True)


def _channels_last(x: Tensor) -> Tensor:
    """``x`` in channels-last memory (unchanged under ``torch.vmap``, which cannot query layouts)."""
    try:
        return x.contiguous(memory_format=torch.channels_last)
    except RuntimeError:
        return x


def max_pool(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    """``MaxPool``; ``SAME`` pads with -inf (padding never wins, as in TF). Pools channels-last
    (torch's CPU max-pool is about 8x faster that way than on contiguous NCHW)."""
    kernel, stride = _spatial(attrs, 'ksize'), _spatial(attrs, 'strides')
    x = _channels_last(_to_nchw(inputs[0], attrs))
    x = _pad_nchw(x, attrs, kernel, stride, (1, 1), value=float('-inf'))
    return _from_nchw(F.max_pool2d(x, kernel, stride), attrs)


def avg_pool(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    """``AvgPool``; ``SAME`` averages only the pixels inside the image, as in TF."""
    kernel, stride = _spatial(attrs, 'ksize'), _spatial(attrs, 'strides')
    x = _to_nchw(inputs[0], attrs)
    ones = torch.ones_like(x[:, :1])
    total = F.avg_pool2d(_pad_nchw(x, attrs, kernel, stride, (1, 1)), kernel, stride, divisor_override=1)
    count = F.avg_pool2d(_pad_nchw(ones, attrs, kernel, stride, (1, 1)), kernel, stride, divisor_override=1)
    return _from_nchw(total / count, attrs)


# ---------------------------------------------------------------- resize
def _source_grid(in_h: int, in_w: int, out_h: int, out_w: int, align_corners: bool, half_pixel_centers: bool,
                 device: torch.device) -> Tensor:
    """``grid_sample`` grid (``align_corners=True``) at TF's source coordinates, per axis as in
    ``compute_interpolation_weights``: scale ``(in - 1) / (out - 1)`` with ``align_corners`` and
    ``out > 1``, else ``in / out`` (float32); source ``(i + 0.5) * scale - 0.5`` with
    ``half_pixel_centers``, else ``i * scale``."""
    key = (in_h, in_w, out_h, out_w, align_corners, half_pixel_centers, str(device))
    if key not in _GRIDS:
        axes = []
        for size, out in ((in_w, out_w), (in_h, out_h)):
            scale = float(np.float32((size - 1) / np.float32(out - 1)) if align_corners and out > 1
                          else np.float32(size / np.float32(out)))
            i = torch.arange(out, dtype=torch.float64, device=device)
            src = (i + 0.5) * scale - 0.5 if half_pixel_centers else i * scale
            axes.append((2 * src / (size - 1) - 1).float() if size > 1 else torch.zeros(out, device=device))
        gx, gy = axes
        _GRIDS[key] = torch.stack(torch.meshgrid(gx, gy, indexing='xy'), -1)[None]
    return _GRIDS[key]


_GRIDS: Dict[Tuple[Any, ...], Tensor] = {}


def resize_bilinear_nhwc(x: Tensor, size: Sequence[int], align_corners: bool = False,
                         half_pixel_centers: bool = False) -> Tensor:
    """TF ``ResizeBilinear`` of an NHWC tensor (no antialiasing).

    Source coordinate of output pixel ``i``: ``(i + 0.5) * in / out - 0.5`` with
    ``half_pixel_centers`` and ``i * (in - 1) / (out - 1)`` with ``align_corners`` (both exactly
    torch's ``interpolate(mode='bilinear')``, ``align_corners=False`` / ``True``); otherwise TF's
    legacy ``i * in / out`` (tfjs' ``resizeBilinear`` default), sampled with ``grid_sample``
    (border-clamped like TF's upper index). Equal to TF up to float rounding (1e-7 relative;
    about 2e-5 relative for the legacy coordinates)."""
    out_h, out_w = (int(v) for v in size)
    x = x.float()
    if align_corners and half_pixel_centers:
        raise GraphModelError('ResizeBilinear: align_corners and half_pixel_centers cannot both be set '
                              '(as in TF)')
    nchw = x.permute(0, 3, 1, 2)
    if half_pixel_centers or (align_corners and out_h > 1 and out_w > 1):
        y = F.interpolate(nchw, size=(out_h, out_w), mode='bilinear', align_corners=bool(align_corners))
    else:
        grid = _source_grid(x.shape[1], x.shape[2], out_h, out_w, bool(align_corners), False, x.device)
        y = F.grid_sample(nchw, grid.expand(x.shape[0], -1, -1, -1), mode='bilinear', padding_mode='border',
                          align_corners=True)
    return y.permute(0, 2, 3, 1)


def resize_bilinear(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    return resize_bilinear_nhwc(inputs[0], as_ints(inputs[1]), attrs.get('align_corners', False),
                                attrs.get('half_pixel_centers', False))


__all__ = ['FUSED_ACTIVATIONS', 'apply_fused', 'avg_pool', 'conv2d', 'conv_filter_to_torch',
           'depthwise_conv2d', 'depthwise_filter_to_torch', 'leaky_relu', 'max_pool', 'prelu', 'relu6',
           'resize_bilinear', 'resize_bilinear_nhwc', 'same_padding']
