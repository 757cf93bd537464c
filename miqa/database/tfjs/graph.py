"""The interpreter: :class:`TFJSGraph` parses a graph model, folds every node that depends only
on constants (the shape arithmetic converters leave behind), puts convolution filters into torch
layout once, and runs the nodes needed for the requested outputs in topological order; graphs
exported for batch 1 run on ``B`` samples with :meth:`TFJSGraph.run_batch` (``torch.vmap``)."""
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .model_json import (
    GraphModelError,
    Node,
    PathLike,
    decode_attr,
    decode_weights,
    inline_tensor,
    parse_input,
)
from .ops import OPS, PREPARE, OpFn, Value

_SOURCES = ('Const', 'Placeholder')


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
            raise GraphModelError(f'{self.path}: ops not supported by miqa.database.tfjs: '
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


__all__ = ['TFJSGraph']
