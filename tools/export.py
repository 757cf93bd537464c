"""Export a trained MIQA model's score function to TorchScript or ONNX, with a parity check.

    python tools/export.py CONFIG CHECKPOINT --format torchscript [--out model.pt]
    python tools/export.py CONFIG CHECKPOINT --format onnx [--out model.onnx]

The artefact computes ``scores = f(inputs[, region_inputs])`` including the normalisation of the
model's ``MIQADataPreprocessor``; what it takes is what the config's test pipeline produces
(``MIQAModel.preprocess``):

- ``inputs``: N x 3 x H x W **RGB uint8** (0..255), the centre crop (224 x 224 for the reference
  models); ``--input-range unit`` exports for float32 in [0, 1] instead;
- ``region_inputs`` (RA-MIQA only): N x 3 x R x R, the whole warped image (288 x 288), same dtype;
- output ``scores``: float32, shape N. The batch axis N is dynamic; H, W, R are fixed.

The input spec is stored in the artefact (TorchScript extra file ``miqa.json``; ONNX metadata
``miqa``). After export the saved bytes are loaded back (``torch.jit.load`` / onnxruntime) and
compared with the PyTorch model (``MIQAModel.predict_batch``: the data preprocessor + forward) on
random inputs at batch sizes 1 and 3; the maximum absolute difference and the tolerance are
printed, and the tool exits with status 1 (writing nothing) when it exceeds ``--atol``.
An existing output is never replaced unless ``--overwrite`` is given.

TorchScript uses ``torch.jit.trace`` (deprecated by PyTorch in favour of ``torch.export`` but
still the format most C++ / mobile runtimes load); ONNX uses PyTorch's ``torch.export``-based
exporter (``dynamo=True``, needs ``onnx`` and ``onnxscript``; the parity check needs
``onnxruntime``; ``pip install -e ".[export]"``).
"""
import argparse
import io
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from miqa.utils.io import atomic_write_bytes  # noqa: E402

SUFFIX = {'torchscript': '.pt', 'onnx': '.onnx'}
INPUT_SCALE = {'uint8': 255.0, 'unit': 1.0}


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
        raise SystemExit(f'ONNX export needs onnx and onnxscript ({err}); '
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
        raise SystemExit(f'the ONNX parity check needs onnxruntime ({err}); '
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


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog='The artefact takes RGB uint8 NCHW tensors (or floats in [0, 1] with --input-range unit) '
               'and normalises them itself; see the module docstring.',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='model config (e.g. configs/demo/ra_miqa_mini.py)')
    parser.add_argument('checkpoint', help='weights saved by tools/train.py (or a converted release)')
    parser.add_argument('--format', choices=sorted(SUFFIX), default='torchscript')
    parser.add_argument('--out', help='output file (default: the checkpoint path with .pt / .onnx)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output file')
    parser.add_argument('--input-range', choices=sorted(INPUT_SCALE), default='uint8',
                        help='uint8: 0..255 (default); unit: float32 in [0, 1]')
    parser.add_argument('--atol', type=float, default=1e-4,
                        help='largest |exported - PyTorch| score difference accepted (default 1e-4)')
    parser.add_argument('--opset', type=int, default=None, help='ONNX opset (default: the exporter\'s)')
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = str(Path(args.checkpoint).with_suffix(SUFFIX[args.format]))
    if os.path.exists(args.out) and not args.overwrite:
        parser.error(f'{args.out} exists; choose another --out or pass --overwrite to replace it')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from miqa.apis.inference import MIQAModel

    start = time.perf_counter()
    iqa = MIQAModel(config=args.config, checkpoint=args.checkpoint, device='cpu')
    shapes = input_shapes(iqa)
    names = [k for k in ('inputs', 'region_inputs') if k in shapes]
    fn = ScoreFunction(iqa.model, args.input_range, with_region='region_inputs' in shapes).eval()
    gen = torch.Generator().manual_seed(1)
    example = tuple(as_artefact_input(v, args.input_range) for v in random_inputs(shapes, 2, gen).values())
    uint8 = args.input_range == 'uint8'
    spec = dict(dtype='uint8' if uint8 else 'float32', range='0..255' if uint8 else '[0, 1]', channels='RGB')
    meta = dict(format=args.format, inputs={n: dict(shape=['N', *shapes[n]], **spec) for n in names},
                output=dict(name='scores', shape=['N'], dtype='float32'),
                normalisation='(x / scale - mean) / std inside the graph',
                mean=fn.mean.flatten().tolist(), std=fn.std.flatten().tolist(),
                model=iqa.name, config=os.fspath(args.config), checkpoint=os.fspath(args.checkpoint))
    if 'region_inputs' in names:
        meta.update(region_mean=fn.region_mean.flatten().tolist(),
                    region_std=fn.region_std.flatten().tolist())

    if args.format == 'torchscript':
        data = export_torchscript(fn, example, meta)
        run = run_torchscript(data, names)
    else:
        data = export_onnx(fn, example, names, meta, args.opset)
        run = run_onnx(data, names)
    diff = parity(run, iqa, shapes, args.input_range)
    ok = diff <= args.atol
    print(f'parity ({args.format} vs PyTorch, random inputs, batch 1 and 3): max |diff| = {diff:.3e}, '
          f'tolerance {args.atol:.1e} -> {"OK" if ok else "FAILED"}')
    if not ok:
        print(f'nothing written: the exported model differs from PyTorch by more than --atol {args.atol}',
              file=sys.stderr)
        return 1
    if os.path.exists(args.out) and not args.overwrite:  # appeared while exporting
        print(f'{args.out} appeared during the export; nothing written (pass --overwrite)', file=sys.stderr)
        return 2
    atomic_write_bytes(args.out, data)
    print(f'wrote {args.out} ({len(data) / 2**20:.1f} MiB, inputs {", ".join(names)}: '
          f'{meta["inputs"]["inputs"]["dtype"]} RGB NCHW) in {time.perf_counter() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
