"""The ``miqa`` command: score images and videos with a MIQA model, list the published models.

    miqa assess PATH... [--model ra-miqa --task cls --label composite] [--json]
    miqa assess PATH... --config CFG.py --checkpoint CKPT.pth      # your own trained model
    miqa video VIDEO [--every-n N --max-frames N --save-dir DIR --annotate]
    miqa models [--task cls] [--label composite] [--markdown | --json]
    miqa export CONFIG CHECKPOINT [--format torchscript|onnx --out FILE]   # TorchScript / ONNX artefact

Published weights are cached in ``$MIQA_HOME/weights`` (default ``~/.cache/miqa/weights``) and
downloaded on first use unless ``MIQA_OFFLINE=1``.
"""
import argparse
import contextlib
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from miqa.apis import export as export_options
from miqa.version import __version__
from miqa.vocab import IMAGE_EXTENSIONS, LABEL_TYPES, TASKS


def finite_float(text: str) -> float:
    """argparse type: a finite number (``nan`` and ``inf`` are refused before anything loads)."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f'{text!r} is not a finite number')
    return value


def _add_model_args(p: argparse.ArgumentParser, unit: str) -> None:
    """The model options of ``assess`` and ``video`` (``unit``: what a batch holds) and ``--json``."""
    p.add_argument('--batch-size', type=int, default=16,
                   help=f'{unit} per forward pass (default: %(default)s)')
    p.add_argument('--json', action='store_true', help='print the result as a JSON document, not text lines')
    g = p.add_argument_group('model (a published one, or --config + --checkpoint)')
    g.add_argument('--model', default='ra-miqa', metavar='NAME',
                   help='published model: ra-miqa, resnet18, resnet50, efficientnet-b1, efficientnet-b5, '
                        'vit-small (default: %(default)s; `miqa models` lists them)')
    g.add_argument('--task', default='cls', choices=TASKS,
                   help='downstream task the model serves: classification, detection, instance '
                        'segmentation (default: %(default)s)')
    g.add_argument('--label', default='composite', choices=LABEL_TYPES,
                   help='label type (default: %(default)s)')
    g.add_argument('--config', help='config of your own model (e.g. configs/demo/ra_miqa_mini.py)')
    g.add_argument('--checkpoint', help='weight file: your own (with --config) or a local copy of the '
                                        'published one')
    g.add_argument('--sha256', help='pin the SHA-256 of the published weight file')
    g.add_argument('--device', default='auto', help='auto (CUDA > MPS > CPU), cpu, cuda, cuda:1 ... '
                                                    '(default: %(default)s)')


def _assess_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('paths', nargs='+', metavar='PATH', help='image files or folders (their images, sorted)')
    p.add_argument('--recursive', '-r', action='store_true', help='also images in sub-folders')
    _add_model_args(p, 'images')
    p.add_argument('--num-workers', type=int, default=2,
                   help='decoding worker processes (default: %(default)s)')
    p.add_argument('--strict', action='store_true', help='stop at the first unreadable file')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')


def _video_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('path', metavar='VIDEO', help='video file (anything OpenCV decodes)')
    _add_model_args(p, 'frames')
    p.add_argument('--every-n', type=int, default=1, help='assess one frame in N (default: %(default)s)')
    p.add_argument('--max-frames', type=int, help='assess at most this many frames')
    p.add_argument('--threshold', type=finite_float,
                   help='degradation threshold (default: the lower edge of the Medium band, 0.4)')
    p.add_argument('--min-duration', type=finite_float, default=1.0,
                   help='shortest degraded segment, seconds (default: %(default)s)')
    p.add_argument('--smooth', type=finite_float, default=1.0,
                   help='moving-average width in seconds, 0 = raw (default: %(default)s)')
    p.add_argument('--save-dir', help='write <video>_miqa.json and <video>_miqa.png here')
    p.add_argument('--annotate', action='store_true', help='also write <video>_miqa.mp4 with scores drawn')


def _models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--task', choices=TASKS)
    p.add_argument('--label', choices=LABEL_TYPES)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument('--json', action='store_true', help='JSON list')
    fmt.add_argument('--markdown', action='store_true', help='the README table (per label type)')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='miqa', description='Image quality assessment for machines (MIQA): how fit an image is for '
        'a vision model. Scores are predictions of labels in [0, 1]; higher is better.',
        epilog='Examples:\n  miqa assess photo.jpg frames/ --json\n'
               '  miqa assess img.png --config configs/demo/ra_miqa_mini.py '
               '--checkpoint work_dirs/ra_miqa_mini/best_SRCC_iter_60.pth\n'
               '  miqa video clip.mp4 --every-n 5 --save-dir out/\n  miqa models --task det\n'
               '  miqa export configs/demo/ra_miqa_mini.py work_dirs/ra_miqa_mini/best.pth --format onnx',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--version', action='version', version=f'miqa {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='{' + ','.join(SUBCOMMANDS) + '}')
    sub.required = True

    for name, command in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.description, epilog=command.epilog)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


def expand_paths(paths: List[str], recursive: bool = False) -> List[str]:
    """Files as given; folders -> their image files (by extension), sorted."""
    out: List[str] = []
    for p in paths:
        if os.path.isdir(p):
            pattern = '**/*' if recursive else '*'
            out.extend(sorted(str(f) for f in Path(p).glob(pattern)
                              if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS))
        else:
            out.append(p)
    return out


def _model_kwargs(args: argparse.Namespace) -> Dict[str, Any]:
    return dict(name=args.model, task=args.task, label=args.label, config=args.config,
                checkpoint=args.checkpoint, device=args.device, sha256=args.sha256)


def _finite(x: float) -> Optional[float]:
    return x if math.isfinite(x) else None


def cmd_assess(args: argparse.Namespace, out) -> int:
    from miqa.apis.batch import batch_assess
    from miqa.apis.inference import MIQAModel

    paths = expand_paths(args.paths, args.recursive)
    if not paths:
        raise ValueError(f'no image files in {", ".join(args.paths)}')
    model = MIQAModel(**_model_kwargs(args))
    progress = not args.no_progress and sys.stderr.isatty()
    scores = batch_assess(paths, model=model, batch_size=args.batch_size, num_workers=args.num_workers,
                          strict=args.strict, progress=progress)
    results = [dict(path=p, score=_finite(float(s)), band=model.band(float(s)))
               for p, s in zip(paths, scores)]
    if args.json:
        out.write(json.dumps(dict(model=model.identity(), bands=[list(b) for b in model.bands[:-1]],
                                  results=results), indent=1) + '\n')
    else:
        for r in results:
            score = 'nan' if r['score'] is None else f'{r["score"]:.4f}'
            out.write(f'{score}\t{r["band"]}\t{r["path"]}\n')
    return 1 if any(r['score'] is None for r in results) else 0


def cmd_video(args: argparse.Namespace, out) -> int:
    from miqa.apis.video import VideoMIQA  # the video module is only needed here

    video = VideoMIQA(**_model_kwargs(args))
    report = video.assess_video(args.path, every_n=args.every_n, max_frames=args.max_frames,
                                batch_size=args.batch_size, threshold=args.threshold,
                                min_duration_s=args.min_duration, smooth=args.smooth,
                                save_dir=args.save_dir, annotate=args.annotate)
    if args.json:
        out.write(json.dumps(report, indent=1) + '\n')
        return 0
    out.write(f'{report["video"]}: {report["num_frames"]} frames assessed, '
              f'mean {report["mean_score"]:.4f}, min {report["min_score"]:.4f}, '
              f'max {report["max_score"]:.4f}, std {report["std_score"]:.4f}\n')
    for seg in report.get('segments', []):
        out.write(f'degraded {seg["start"]:.2f}s - {seg["end"]:.2f}s (mean score {seg["mean_score"]:.4f})\n')
    for kind, path in report.get('outputs', {}).items():
        out.write(f'{kind}: {path}\n')
    return 0


def cmd_models(args: argparse.Namespace, out) -> int:
    from miqa.apis import zoo

    entries = zoo.list_models(task=args.task, label=args.label)
    if args.json:
        out.write(json.dumps([dict(e.to_dict(), cached=e.weight_path().is_file()) for e in entries],
                             indent=1) + '\n')
    elif args.markdown:
        for label in [lb for lb in LABEL_TYPES if any(e.label == lb for e in entries)]:
            out.write(f'\n#### {label} labels\n\n{zoo.markdown_table(label, entries)}\n')
    else:
        out.write(f'{"name":<16}{"task":<6}{"label":<13}{"SRCC":>7}{"PLCC":>8}  cached  file\n')
        for e in entries:
            ref = (f'{e.srcc:>7.4f}{e.plcc:>8.4f}' if e.srcc is not None else f'{"-":>7}{"-":>8}')
            cached = 'yes' if e.weight_path().is_file() else 'no'
            out.write(f'{e.name:<16}{e.task:<6}{e.label:<13}{ref}  {cached:<6}  {e.file}\n')
        out.write(f'weights: {zoo.weights_dir()} (SRCC/PLCC: the paper, MIQD-2.5M val)\n')
    return 0


def cmd_export(args: argparse.Namespace, out) -> int:
    return export_options.export_model(args.config, args.checkpoint, format=args.format, out=args.out,
                                       overwrite=args.overwrite, input_range=args.input_range,
                                       atol=args.atol, opset=args.opset, stdout=out)


@dataclass(frozen=True)
class Subcommand:
    """A ``miqa`` subcommand: its help line, description, arguments and what runs it."""
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Any], int]
    epilog: Optional[str] = None


SUBCOMMANDS: Dict[str, Subcommand] = {
    'assess': Subcommand(
        'score image files or folders',
        'Score images. Prints "score band path" lines, or JSON with --json. Unreadable files score NaN '
        '(null in JSON) and make the exit status 1.', _assess_arguments, cmd_assess),
    'video': Subcommand(
        'score the frames of a video',
        'Per-frame scores over time, summary, per-second means and degradation segments (smoothed score '
        'below --threshold for at least --min-duration seconds).', _video_arguments, cmd_video),
    'models': Subcommand(
        'list the published models',
        "The published models (miqa/apis/model_zoo.csv) with the paper's SRCC/PLCC on MIQD-2.5M val and "
        'whether the weights are cached locally.', _models_arguments, cmd_models),
    'export': Subcommand(
        'export a model to TorchScript or ONNX (with a parity check)',
        'Export the score function of a trained model (normalisation included) and check the saved '
        'artefact against PyTorch; exit status 1 (nothing written) when they differ by more than --atol.',
        export_options.add_arguments, cmd_export, epilog=export_options.EPILOG),
}


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    out = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):  # library logs never mix with the results
            return args.func(args, out)
    except BrokenPipeError:  # e.g. `miqa models | head`
        sys.stdout = open(os.devnull, 'w')
        return 0
    except (OSError, ValueError, KeyError, TypeError, ImportError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f'miqa {args.command}: error: {msg}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
