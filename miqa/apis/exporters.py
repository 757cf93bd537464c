"""The exportable score function of a MIQA model, its exporters and the parity check, used by
:func:`miqa.apis.export.export_model` (``miqa export``, ``tools/export.py``)."""
import io
import json
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from miqa.apis.export import INPUT_SCALE


class ScoreFunction(nn.Module):
    """``model(normalise(inputs), region_inputs=normalise(region_inputs), mode='tensor')`` with the
    statistics of the model's ``MIQADataPreprocessor``: ``(x / scale - mean) / std`` where ``scale``
    is 255 for uint8 inputs and 1 for inputs in [0, 1]."""

    def __init__(self, model: nn.Module, input_range: str = 'uint8', with_region: bool = True) -> None:
        super().__init__()
        pre = model.data_preprocessor
        missing = [k for k in ('mean', 'std') + (('region_mean', 'region_std') if with_region else ())
                   if not isinstance(getattr(pre, k, None), Tensor)]
        if missing:
            raise ValueError(f'the model\'s data preprocessor {type(pre).__name__} has no {missing}: export '
                             'supports MIQADataPreprocessor (mean/std per view)')
        self.model = model.requires_grad_(False)  # the artefact's weights are constants
        self.scale = INPUT_SCALE[input_range]
        self.with_region = with_region
        for name in ('mean', 'std', 'region_mean', 'region_std'):
            if hasattr(pre, name):
                stat = getattr(pre, name).detach().clone().float().view(1, -1, 1, 1)
                self.register_buffer(name, stat, False)

    def forward(self, inputs: Tensor, region_inputs: Optional[Tensor] = None) -> Tensor:
        x = (inputs.float() / self.scale - self.mean) / self.std
        r = None
        if self.with_region:
            r = (region_inputs.float() / self.scale - self.region_mean) / self.region_std
        return self.model(x, region_inputs=r, mode='tensor')


def input_shapes(iqa) -> Dict[str, Tuple[int, ...]]:
    """CxHxW of each input the test pipeline produces; they must not depend on the image size
    (checked on two dummy images), since the exported graph fixes them."""
    shapes = []
    for h, w in ((480, 640), (301, 299)):
        item = iqa.preprocess(np.zeros((h, w, 3), np.uint8))
        shapes.append({k: tuple(v.shape) for k, v in item.items() if v is not None})
    if shapes[0] != shapes[1]:
        raise ValueError(f'the test pipeline of {iqa.config_file} gives image-size-dependent inputs '
                         f'({shapes[0]} vs {shapes[1]}); export needs a Resize to a fixed size')
    return shapes[0]


def random_inputs(shapes: Dict[str, Tuple[int, ...]], batch: int, gen: torch.Generator) -> Dict[str, Tensor]:
    return {k: torch.randint(0, 256, (batch, *s), generator=gen, dtype=torch.uint8)
            for k, s in shapes.items()}


def as_artefact_input(x: Tensor, input_range: str) -> Tensor:
    return x if input_range == 'uint8' else x.float() / 255.0


def export_torchscript(fn: ScoreFunction, example: Tuple[Tensor, ...], meta: dict) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torch.jit deprecation and tracer warnings
        traced = torch.jit.trace(fn, example, check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files={'miqa.json': json.dumps(meta)})
    return buf.getvalue()


def run_torchscript(data: bytes, names: Sequence[str]):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        module = torch.jit.load(io.BytesIO(data), map_location='cpu')

    def run(inputs: Dict[str, Tensor]) -> np.ndarray:
        with torch.inference_mode():
            return module(*[inputs[n] for n in names]).numpy()
    return run


def export_onnx(fn: ScoreFunction, example: Tuple[Tensor, ...], names: List[str], meta: dict,
                opset: Optional[int]) -> bytes:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ImportError(f'ONNX export needs onnx and onnxscript ({err}); '
                         'pip install -e ".[export]"') from None
    batch = torch.export.Dim('batch', min=1, max=4096)
    dynamic = {name: {0: batch} for name in names}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        program = torch.onnx.export(fn, example, dynamo=True, input_names=names, output_names=['scores'],
                                    dynamic_shapes=dynamic, opset_version=opset, external_data=False,
                                    verbose=False)
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = 'miqa', json.dumps(meta)
    return proto.SerializeToString()


def run_onnx(data: bytes, names: Sequence[str]):
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise ImportError(f'the ONNX parity check needs onnxruntime ({err}); '
                         'pip install -e ".[export]"') from None
    session = ort.InferenceSession(data, providers=['CPUExecutionProvider'])

    def run(inputs: Dict[str, Tensor]) -> np.ndarray:
        return session.run(['scores'], {n: inputs[n].numpy() for n in names})[0]
    return run


def parity(run, iqa, shapes: Dict[str, Tuple[int, ...]], input_range: str,
           batches: Sequence[int] = (1, 3), seed: int = 0) -> float:
    """Max |artefact - PyTorch| over random uint8 inputs at each batch size."""
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch in batches:
        x = random_inputs(shapes, batch, gen)
        ref = iqa.predict_batch(dict(inputs=x['inputs'], region_inputs=x.get('region_inputs')))
        got = np.asarray(run({k: as_artefact_input(v, input_range) for k, v in x.items()}), np.float64)
        if got.shape != ref.shape:
            raise RuntimeError(f'the exported model returned shape {got.shape} for a batch of {batch} '
                               f'(PyTorch: {ref.shape})')
        worst = max(worst, float(np.max(np.abs(got - ref))))
    return worst
