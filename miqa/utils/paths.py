"""Where miqa keeps what it caches or downloads: ``$MIQA_HOME`` (default ``~/.cache/miqa``)."""
import os
from pathlib import Path


def miqa_home() -> Path:
    """``$MIQA_HOME`` (default ``~/.cache/miqa``), read at call time; never inside a data root."""
    return Path(os.environ.get('MIQA_HOME') or '~/.cache/miqa').expanduser()
