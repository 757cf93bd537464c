"""Export a trained MIQA model's score function to TorchScript or ONNX, with a parity check.

    miqa export CONFIG CHECKPOINT --format torchscript [--out model.pt]   # or python tools/export.py
    miqa export CONFIG CHECKPOINT --format onnx [--out model.onnx]

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
printed, and the export returns status 1 (writing nothing) when it exceeds ``--atol``.
An existing output is never replaced unless ``--overwrite`` is given.

TorchScript uses ``torch.jit.trace`` (deprecated by PyTorch in favour of ``torch.export`` but
still the format most C++ / mobile runtimes load); ONNX uses PyTorch's ``torch.export``-based
exporter (``dynamo=True``, needs ``onnx`` and ``onnxscript``; the parity check needs
``onnxruntime``; ``pip install -e ".[export]"``).
"""
import argparse
import os
import sys
import time
from pathlib import Path
from typing import Optional, TextIO

SUFFIX = {'torchscript': '.pt', 'onnx': '.onnx'}
INPUT_SCALE = {'uint8': 255.0, 'unit': 1.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The export options, shared by ``miqa export`` and ``tools/export.py``."""
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


EPILOG = ('The artefact takes RGB uint8 NCHW tensors (or floats in [0, 1] with --input-range unit) '
          'and normalises them itself; see miqa/apis/export.py.')


def output_path(checkpoint: str, format: str = 'torchscript', out: Optional[str] = None,
                overwrite: bool = False) -> str:
    """``out``, or the checkpoint path with the format's suffix; an existing file raises
    ``FileExistsError`` unless ``overwrite``."""
    out = out or str(Path(checkpoint).with_suffix(SUFFIX[format]))
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f'{out} exists; choose another --out or pass --overwrite to replace it')
    return out


def export_model(config: str, checkpoint: str, format: str = 'torchscript', out: Optional[str] = None,
                 overwrite: bool = False, input_range: str = 'uint8', atol: float = 1e-4,
                 opset: Optional[int] = None, stdout: Optional[TextIO] = None) -> int:
    """Export, check parity, write ``out`` (see the module docstring). Returns 0 when written, 1 when
    the parity check failed (nothing written), 2 when ``out`` appeared during the export; an output
    that exists beforehand raises ``FileExistsError`` (unless ``overwrite``)."""
    import torch

    from miqa.apis.exporters import (
        ScoreFunction,
        as_artefact_input,
        export_onnx,
        export_torchscript,
        input_shapes,
        parity,
        random_inputs,
        run_onnx,
        run_torchscript,
    )
    from miqa.apis.inference import MIQAModel
    from miqa.utils.io import atomic_write_bytes

    stdout = stdout or sys.stdout
    out = output_path(checkpoint, format, out, overwrite)
    start = time.perf_counter()
    iqa = MIQAModel(config=config, checkpoint=checkpoint, device='cpu')
    shapes = input_shapes(iqa)
    names = [k for k in ('inputs', 'region_inputs') if k in shapes]
    fn = ScoreFunction(iqa.model, input_range, with_region='region_inputs' in shapes).eval()
    gen = torch.Generator().manual_seed(1)
    example = tuple(as_artefact_input(v, input_range) for v in random_inputs(shapes, 2, gen).values())
    uint8 = input_range == 'uint8'
    spec = dict(dtype='uint8' if uint8 else 'float32', range='0..255' if uint8 else '[0, 1]', channels='RGB')
    meta = dict(format=format, inputs={n: dict(shape=['N', *shapes[n]], **spec) for n in names},
                output=dict(name='scores', shape=['N'], dtype='float32'),
                normalisation='(x / scale - mean) / std inside the graph',
                mean=fn.mean.flatten().tolist(), std=fn.std.flatten().tolist(),
                model=iqa.name, config=os.fspath(config), checkpoint=os.fspath(checkpoint))
    if 'region_inputs' in names:
        meta.update(region_mean=fn.region_mean.flatten().tolist(),
                    region_std=fn.region_std.flatten().tolist())

    if format == 'torchscript':
        data = export_torchscript(fn, example, meta)
        run = run_torchscript(data, names)
    else:
        data = export_onnx(fn, example, names, meta, opset)
        run = run_onnx(data, names)
    diff = parity(run, iqa, shapes, input_range)
    ok = diff <= atol
    print(f'parity ({format} vs PyTorch, random inputs, batch 1 and 3): max |diff| = {diff:.3e}, '
          f'tolerance {atol:.1e} -> {"OK" if ok else "FAILED"}', file=stdout)
    if not ok:
        print(f'nothing written: the exported model differs from PyTorch by more than --atol {atol}',
              file=sys.stderr)
        return 1
    if os.path.exists(out) and not overwrite:  # appeared while exporting
        print(f'{out} appeared during the export; nothing written (pass --overwrite)', file=sys.stderr)
        return 2
    atomic_write_bytes(out, data)
    print(f'wrote {out} ({len(data) / 2**20:.1f} MiB, inputs {", ".join(names)}: '
          f'{meta["inputs"]["inputs"]["dtype"]} RGB NCHW) in {time.perf_counter() - start:.1f} s',
          file=stdout)
    return 0
