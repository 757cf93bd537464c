"""The op table: TensorFlow op name -> torch implementation (:data:`OPS`), and the load-time
layout changes of constant inputs (:data:`PREPARE`). An op outside :data:`OPS` fails at load
time with the list of unsupported ops."""
from typing import Any, Callable, Dict, List, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .array_ops import (
    cast,
    concat,
    expand_dims,
    floor_div,
    gather_v2,
    mean,
    pack,
    pad,
    reshape,
    sparse_to_dense,
    split,
    split_v,
    squeeze,
    strided_slice,
    top_k,
    transpose,
)
from .nn_ops import (
    apply_fused,
    avg_pool,
    conv2d,
    conv_filter_to_torch,
    depthwise_conv2d,
    depthwise_filter_to_torch,
    leaky_relu,
    max_pool,
    prelu,
    relu6,
    resize_bilinear,
)

Value = Union[Tensor, Tuple[Tensor, ...]]
OpFn = Callable[[List[Tensor], Dict[str, Any]], Value]


def bias_add(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    return apply_fused(inputs[0], ['BiasAdd'], [inputs[1]], attrs)


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


__all__ = ['OPS', 'PREPARE', 'OpFn', 'Value']
