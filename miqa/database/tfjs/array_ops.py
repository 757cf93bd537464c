"""TF array and math ops in torch: shapes, indexing (``StridedSlice`` masks, ``GatherV2``,
``TopKV2`` with TF's tie order), casts and arithmetic; each ``fn(inputs, attrs)`` as in TensorFlow."""
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .model_json import GraphModelError

#: TensorFlow ``DataType`` enums (attrs ``T``, ``DstT``, ...) -> torch dtypes.
TF_DTYPES: Dict[str, torch.dtype] = {
    'DT_FLOAT': torch.float32, 'DT_HALF': torch.float16, 'DT_DOUBLE': torch.float64,
    'DT_INT32': torch.int32, 'DT_INT64': torch.int64, 'DT_INT16': torch.int16, 'DT_INT8': torch.int8,
    'DT_UINT8': torch.uint8, 'DT_BOOL': torch.bool}


# ---------------------------------------------------------------- helpers
def as_ints(x: Union[Tensor, Sequence[int], int]) -> List[int]:
    """A shape / axis / size operand (a constant tensor, a sequence or an int) as a list of ints."""
    if isinstance(x, Tensor):
        return [int(v) for v in x.reshape(-1).tolist()]
    if isinstance(x, (int, np.integer)):
        return [int(x)]
    return [int(v) for v in x]


def as_axis(x: Tensor) -> int:
    """An axis operand as an int."""
    return as_ints(x)[0]


# ---------------------------------------------------------------- shapes and indexing
def reshape(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    return inputs[0].reshape(as_ints(inputs[1]))


def transpose(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    return inputs[0].permute(as_ints(inputs[1]))


def expand_dims(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    return inputs[0].unsqueeze(as_axis(inputs[1]))


def squeeze(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    dims = attrs.get('squeeze_dims') or [d for d in range(inputs[0].dim()) if inputs[0].shape[d] == 1]
    return inputs[0].squeeze(tuple(dims)) if dims else inputs[0]


def concat(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    """``ConcatV2``: the last input is the axis."""
    return torch.cat(inputs[:-1], dim=as_axis(inputs[-1]))


def pack(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    return torch.stack(inputs, dim=attrs.get('axis', 0))


def split_v(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tuple[Tensor, ...]:
    """``SplitV(value, size_splits, axis)``; one size may be -1 (the rest)."""
    x, sizes, axis = inputs[0], as_ints(inputs[1]), as_axis(inputs[2])
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
    return tuple(torch.split(x, sizes, dim=axis))


def split(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tuple[Tensor, ...]:
    """``Split(axis, value)`` into ``num_split`` equal parts."""
    return tuple(torch.chunk(inputs[1], attrs['num_split'], dim=as_axis(inputs[0])))


def pad(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    """``Pad`` / ``PadV2(x, paddings [[before, after], ...], constant)``."""
    pads = as_ints(inputs[1])
    flat: List[int] = []
    for d in reversed(range(len(pads) // 2)):
        flat += [pads[2 * d], pads[2 * d + 1]]
    value = float(inputs[2].reshape(-1)[0]) if len(inputs) > 2 else 0.0
    return F.pad(inputs[0], flat, value=value)


def gather_v2(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    """``GatherV2(params, indices, axis)``, shaped ``params[:axis] + indices + params[axis + 1:]``."""
    params, indices, axis = inputs[0], inputs[1], as_axis(inputs[2])
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
    index = _strided_index(x.shape, as_ints(inputs[1]), as_ints(inputs[2]), as_ints(inputs[3]), attrs)
    return apply_index(x, index)


def sparse_to_dense(inputs: List[Tensor], attrs: Dict[str, Any]) -> Tensor:
    """``SparseToDense(indices, output_shape, values, default)``."""
    indices, shape, values, default = inputs
    shape = as_ints(shape)
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
    x, k = inputs[0], as_axis(inputs[1])
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
    dims = [d % inputs[0].dim() for d in as_ints(inputs[1])]
    return inputs[0].mean(dim=dims, keepdim=attrs.get('keep_dims', False)) if dims else inputs[0]


__all__ = ['TF_DTYPES', 'apply_index', 'as_axis', 'as_ints', 'cast', 'concat', 'expand_dims', 'floor_div',
           'gather_v2', 'mean', 'pack', 'pad', 'reshape', 'sparse_to_dense', 'split', 'split_v', 'squeeze',
           'strided_slice', 'top_k', 'transpose']
