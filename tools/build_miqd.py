"""Build a MIQD-style database (spec §2 layout, §3 recipe): ``python tools/build_miqd.py CONFIG [options]``.

A rerun resumes: finished sources (label CSVs present) are skipped. Options, examples (shards on
several machines, ``--finalize``, ``--resplit``) and exit statuses: :mod:`miqa.database.cli`;
the config keys: configs/build/README.md.
"""
import sys

from miqa.database.cli import main

if __name__ == '__main__':
    sys.exit(main())
