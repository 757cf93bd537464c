"""Export a trained MIQA model's score function to TorchScript or ONNX, with a parity check.

    python tools/export.py CONFIG CHECKPOINT --format torchscript [--out model.pt]
    python tools/export.py CONFIG CHECKPOINT --format onnx [--out model.onnx]

The same as ``miqa export``; the artefact's inputs, the parity check and the exit statuses are
described in :mod:`miqa.apis.export`. An existing output is never replaced unless ``--overwrite``.
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from miqa.apis import export  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=export.EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        args.out = export.output_path(args.checkpoint, args.format, args.out, args.overwrite)
    except FileExistsError as err:
        parser.error(str(err))
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return export.export_model(args.config, args.checkpoint, format=args.format, out=args.out,
                                   overwrite=args.overwrite, input_range=args.input_range, atol=args.atol,
                                   opset=args.opset)
    except ImportError as err:  # onnx / onnxscript / onnxruntime missing: the message names the fix
        sys.exit(str(err))


if __name__ == '__main__':
    sys.exit(main())
