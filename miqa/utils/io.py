"""Small file helpers for jobs that must not lose or tear results."""
import os
import tempfile
import time
from typing import Optional


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``:
    readers see the old file or the new one, never a torn one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp_', suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
