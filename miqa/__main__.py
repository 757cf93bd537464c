"""``python -m miqa``: the ``miqa`` command line (:mod:`miqa.cli`) without the console script."""
import sys

from miqa.cli import main

if __name__ == '__main__':
    sys.exit(main())
