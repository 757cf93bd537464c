"""Print (or write into README.md) the model table generated from miqa/apis/model_zoo.csv.

    python tools/gen_model_table.py                      # markdown for every label type
    python tools/gen_model_table.py --label composite
    python tools/gen_model_table.py --update README.md   # replace the text between the markers

``--update`` rewrites only what lies between ``<!-- model-table:begin -->`` and
``<!-- model-table:end -->`` (atomically) and fails when the markers are missing.
"""
import argparse
import re
import sys
from pathlib import Path
from typing import List, Optional

from miqa.apis.zoo import markdown_table
from miqa.utils.io import atomic_write_text
from miqa.vocab import LABEL_TYPES

BEGIN, END = '<!-- model-table:begin -->', '<!-- model-table:end -->'
TITLES = {'composite': 'Composite labels (paper Table 1)',
          'consistency': 'Consistency labels (paper Table 2)', 'accuracy': 'Accuracy labels (paper Table 2)'}


def tables(labels: List[str]) -> str:
    parts = [f'**{TITLES[label]}** — SRCC / PLCC on MIQD-2.5M val, as published.\n\n{markdown_table(label)}'
             for label in labels]
    return '\n\n'.join(parts)


def update(path: Path, text: str) -> bool:
    """Replace the marked block of ``path``; returns whether the file changed."""
    old = path.read_text(encoding='utf-8')
    pattern = re.compile(re.escape(BEGIN) + r'.*?' + re.escape(END), re.S)
    if not pattern.search(old):
        raise SystemExit(f'{path}: markers {BEGIN} ... {END} not found; add them where the table goes')
    new = pattern.sub(lambda _: f'{BEGIN}\n{text}\n{END}', old, count=1)
    if new != old:
        atomic_write_text(str(path), new)
    return new != old


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--label', choices=LABEL_TYPES, action='append',
                        help='label type(s) to include (default: all)')
    parser.add_argument('--update', type=Path, metavar='README', help='write the table into this file')
    args = parser.parse_args(argv)
    text = tables(args.label or list(LABEL_TYPES))
    if args.update:
        changed = update(args.update, text)
        print(f'{args.update}: {"updated" if changed else "already up to date"}', file=sys.stderr)
    else:
        print(text)


if __name__ == '__main__':
    main()
