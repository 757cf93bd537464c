"""One table of HVS metrics and trained models on the same split: the project's Table 1.

``python tools/report.py RESULT.json [RESULT.json ...] [--paper] [--out table.md]``

Each RESULT is what a tool wrote: ``tools/benchmark_hvs.py``'s ``hvs_results.json`` (one row per
metric, skipped ones marked), ``tools/test.py``'s ``test_*.json`` (one model row) or
``tools/benchmark_models.py``'s ``summary.json`` (mean ± std rows). All results must describe
the same task, label type and split (checked where the files record them). With ``--paper``,
the paper's MIQD-2.5M value (spec tables) follows each of our values. The table is
:func:`miqa.analysis.report.combine`.
"""
import argparse

from miqa.analysis.report import combine, read_rows
from miqa.utils.io import write_result_text


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Combine HVS and model results into one table')
    parser.add_argument('results', nargs='+', help='hvs_results.json / test_*.json / summary.json files')
    parser.add_argument('--paper', action='store_true', help="add the paper's value beside each of ours")
    parser.add_argument('--task', help='task of the paper rows (default: from the results, else cls)')
    parser.add_argument('--label', help='label type of the paper rows (default: from the results)')
    parser.add_argument('--title', default='', help='a line above the table')
    parser.add_argument('--out', help='also write the table to this markdown file')
    return parser.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    table = combine([read_rows(p) for p in args.results], args.paper, args.task, args.label)
    text = (args.title + '\n\n' if args.title else '') + table
    print(text)
    if args.out:
        write_result_text(args.out, text + '\n')
    return text


if __name__ == '__main__':
    main()
