"""Where miqa keeps what it caches or downloads: ``$MIQA_HOME`` (default ``~/.cache/miqa``)."""
import os
from pathlib import Path


def miqa_home() -> Path:
    """``$MIQA_HOME`` (default ``~/.cache/miqa``), read at call time; never inside a data root."""
    return Path(os.environ.get('MIQA_HOME') or '~/.cache/miqa').expanduser()


def tools_dir() -> Path:
    """The repository's ``tools/`` folder (scripts are not installed with the package)."""
    folder = Path(__file__).resolve().parents[2] / 'tools'
    if not (folder / 'train.py').is_file():
        raise FileNotFoundError(f'{folder} not found: run this from a clone of the miqa repository')
    return folder
