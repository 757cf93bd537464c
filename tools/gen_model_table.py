"""Print (or write into README.md) the model table generated from miqa/apis/model_zoo.csv.

    python tools/gen_model_table.py                      # markdown for every label type
    python tools/gen_model_table.py --label composite
    python tools/gen_model_table.py --update README.md   # replace the text between the markers

``--update`` rewrites only what lies between ``<!-- model-table:begin -->`` and
``<!-- model-table:end -->`` (atomically) and fails when the markers are missing
(:func:`miqa.apis.zoo.update_readme`).
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

from miqa.apis.zoo import readme_tables, update_readme
from miqa.vocab import LABEL_TYPES


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--label', choices=LABEL_TYPES, action='append',
                        help='label type(s) to include (default: all)')
    parser.add_argument('--update', type=Path, metavar='README', help='write the table into this file')
    args = parser.parse_args(argv)
    text = readme_tables(args.label)
    if args.update:
        try:
            changed = update_readme(args.update, text)
        except ValueError as err:
            raise SystemExit(str(err)) from None
        print(f'{args.update}: {"updated" if changed else "already up to date"}', file=sys.stderr)
    else:
        print(text)


if __name__ == '__main__':
    main()
