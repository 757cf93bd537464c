"""The TF.js graph-model files: ``model.json`` (a TensorFlow ``GraphDef`` in protobuf JSON plus
the weights manifest) and its ``.bin`` weight shards, read into :class:`Node` s and numpy arrays.
The format is described in :mod:`miqa.database.tfjs`.
"""
import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from miqa.utils.types import PathLike

#: Manifest ``dtype`` -> numpy dtype (of the stored bytes when not quantised).
MANIFEST_DTYPES: Dict[str, type] = {'float32': np.float32, 'int32': np.int32, 'bool': np.bool_}

#: Manifest ``quantization.dtype`` -> numpy dtype of the stored values.
QUANTIZED_DTYPES: Dict[str, type] = {'uint8': np.uint8, 'uint16': np.uint16, 'float16': np.float16}


class GraphModelError(ValueError):
    """A model.json / weight shard that cannot be read or run (the message names the file)."""


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


__all__ = ['MANIFEST_DTYPES', 'QUANTIZED_DTYPES', 'GraphModelError', 'Node', 'decode_attr', 'decode_weights',
           'inline_tensor', 'parse_input']
