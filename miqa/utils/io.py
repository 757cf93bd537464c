"""Small file helpers for jobs that must not lose or tear results."""
import fnmatch
import json
import os
import sys
import tempfile
import time
from typing import Any, Optional, Union

#: Test hook of the fault-injection suite (``tests/test_faults.py``): ``PATTERN[:SECONDS[:N]]`` makes
#: :func:`atomic_write_bytes` pause halfway through the ``N``-th (default 1st) write, in this
#: process, of a file whose name matches the ``fnmatch`` pattern, for ``SECONDS`` (default 60),
#: after printing ``miqa-fault: pausing in write of <path>`` to stderr, so that a SIGKILL lands
#: inside the write deterministically.
FAULT_ENV = 'MIQA_FAULT_PAUSE_IN_WRITE'
TEMP_SUFFIX = '.tmp'
_FAULT_COUNT = [0]


def _umask() -> int:
    """The process umask (read from /proc where it can be, without changing it even briefly)."""
    try:
        with open('/proc/self/status') as status:
            return next(int(line.split()[1], 8) for line in status if line.startswith('Umask:'))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


_UMASK = _umask()


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str, data: bytes, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``:
    readers see the old file or the new one, never a torn one, and a failure (or a kill) part
    way leaves the old file as it was. The new file gets the usual permissions (``0o666 & ~umask``);
    ``fsync=True`` also flushes it to the disk before the rename (survives a power cut)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{name}.', suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, 'wb') as f:
            pause = _fault_pause(name)
            if pause:
                half = len(data) // 2
                f.write(data[:half])
                f.flush()
                print(f'miqa-fault: pausing in write of {path}', file=sys.stderr, flush=True)
                time.sleep(pause)
                f.write(data[half:])
            else:
                f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fault_pause(name: str) -> float:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return 0.0
    pattern, seconds, nth = (spec.split(':') + ['', ''])[:3]
    if not fnmatch.fnmatch(name, pattern):
        return 0.0
    _FAULT_COUNT[0] += 1
    return float(seconds or 60) if _FAULT_COUNT[0] == int(nth or 1) else 0.0


def remove_temporaries(folder: str, pattern: str = '*') -> list:
    """Delete the temporary files that killed :func:`atomic_write_bytes` calls left in ``folder``
    for destination names matching ``pattern``; returns their paths. Only for a folder no other
    process is writing into."""
    removed = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return removed
    for entry in names:
        if entry.startswith('.') and entry.endswith(TEMP_SUFFIX):
            target = entry[1:-len(TEMP_SUFFIX)].rsplit('.', 1)[0]  # .<name>.<random>.tmp -> <name>
            if fnmatch.fnmatch(target, pattern):
                path = os.path.join(folder, entry)
                os.unlink(path)
                removed.append(path)
    return removed


def unique_path(path: str) -> str:
    """``path`` if free, else ``path`` with a timestamp before the extension (never overwrite)."""
    if not os.path.exists(path):
        return path
    stem, ext = os.path.splitext(path)
    candidate = f'{stem}_{time.strftime("%Y%m%d_%H%M%S")}{ext}'
    n = 1
    while os.path.exists(candidate):
        candidate = f'{stem}_{time.strftime("%Y%m%d_%H%M%S")}_{n}{ext}'
        n += 1
    return candidate


def write_result_text(path: str, text: str) -> Optional[str]:
    """Write a result file atomically; an existing file with OTHER content is first kept under
    a timestamped name (:func:`unique_path`), whose path is returned (``None`` otherwise)."""
    kept = None
    if os.path.exists(path):
        with open(path, encoding='utf-8', errors='replace') as f:
            if f.read() == text:
                return None
        kept = unique_path(path)
        os.replace(path, kept)
    atomic_write_text(path, text)
    return kept


def read_json(path: Union[str, 'os.PathLike[str]']) -> Optional[Any]:
    """The JSON document at ``path``; ``None`` when the file does not exist."""
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError:
        return None
