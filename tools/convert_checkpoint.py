"""Convert a released checkpoint (the authors' RA-MIQA or baseline layouts) to a miqa state dict.

    python tools/convert_checkpoint.py SRC DST --model ra_miqa|resnet18|resnet50|efficientnet_b1|...
        [--config CFG.py] [--drop REGEX ...] [--strip-prefix PREFIX ...]

The output is a plain state dict (``torch.load(DST, weights_only=True)``), for ``load_from`` or
``model.load_state_dict``. Conversion is strict; see :mod:`miqa.models.converters`.
"""
import argparse
from typing import List, Optional

from miqa.models.converters import CONVERSIONS, convert_checkpoint, save_state_dict


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='released checkpoint (loaded with weights_only=True)')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--model', required=True, choices=sorted(CONVERSIONS), help='target model')
    parser.add_argument('--config', help='config file whose `model` is the target architecture '
                        '(default: the reference architecture of --model)')
    parser.add_argument('--drop', nargs='*', default=[], metavar='REGEX',
                        help='source keys that are intentionally unused (regex anchored at the start)')
    parser.add_argument('--strip-prefix', nargs='*', default=[], metavar='PREFIX',
                        help='extra key prefixes to strip (module. always is)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    model_cfg = None
    if args.config:
        from mmengine.config import Config
        model_cfg = Config.fromfile(args.config).model.to_dict()
    state_dict = convert_checkpoint(args.src, args.model, model_cfg=model_cfg, drop=args.drop,
                                    strip_prefixes=args.strip_prefix)
    save_state_dict(state_dict, args.dst)
    print(f'{args.src} -> {args.dst}: {len(state_dict)} tensors for {args.model}')


if __name__ == '__main__':
    main()
