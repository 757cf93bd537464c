"""miqa.utils.io: atomic writes (the index cache, database labels, manifests, cache entries and
sha256.json depend on them), the leftovers of killed writes, the fault-injection hook."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from miqa.utils import io as mio
from miqa.utils.io import FAULT_ENV, TEMP_SUFFIX, atomic_write_bytes, atomic_write_text, remove_temporaries

ROOT = Path(__file__).resolve().parents[1]

# A write that fails part way, as on a full disk: the file-size limit (RLIMIT_FSIZE) makes write()
# fail with EFBIG after 1 MiB, whatever the writer does (set after the imports, which may write).
_PARTIAL_WRITE = """
import errno, resource, signal, sys
from miqa.utils.io import atomic_write_bytes
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    atomic_write_bytes(sys.argv[1], b'new!' * (1 << 20))
except OSError as err:
    print('failed', errno.errorcode[err.errno])
"""


@pytest.mark.skipif(sys.platform != 'linux', reason='RLIMIT_FSIZE semantics')
def test_a_write_failing_part_way_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / 'labels.csv'
    path.write_bytes(b'old content\n')
    proc = subprocess.run([sys.executable, '-c', _PARTIAL_WRITE, str(path)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.stdout.strip() == 'failed EFBIG', proc.stdout + proc.stderr[-2000:]
    assert path.read_bytes() == b'old content\n'
    assert sorted(os.listdir(tmp_path)) == ['labels.csv']  # the partial temporary was removed


def test_the_file_is_replaced_not_rewritten(tmp_path):
    path = tmp_path / 'manifest.json'
    atomic_write_text(str(path), 'first')
    before = os.stat(path)
    with open(path) as reader:  # a reader that opened the old file keeps reading the old file
        atomic_write_text(str(path), 'second, longer')
        assert reader.read() == 'first'
    after = os.stat(path)
    assert after.st_ino != before.st_ino
    assert path.read_text() == 'second, longer'
    assert sorted(os.listdir(tmp_path)) == ['manifest.json']


def test_new_files_get_the_usual_permissions_and_folders(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / 'new' / 'deeper' / 'sha256.json'
    atomic_write_bytes(str(path), b'{}')
    assert path.read_bytes() == b'{}'
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_an_exception_inside_the_write_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / 'epoch_1.pth'
    path.write_bytes(b'whole old checkpoint')

    def broken_replace(src, dst):
        raise OSError('simulated rename failure')

    monkeypatch.setattr(os, 'replace', broken_replace)
    with pytest.raises(OSError, match='simulated'):
        atomic_write_bytes(str(path), b'new checkpoint')
    assert path.read_bytes() == b'whole old checkpoint'
    assert sorted(os.listdir(tmp_path)) == ['epoch_1.pth']


def test_fault_hook_pauses_only_the_nth_matching_write(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv(FAULT_ENV, 'best_*.pth:0.01:2')
    monkeypatch.setattr(mio, '_FAULT_COUNT', [0])
    for name in ('epoch_1.pth', 'best_a.pth', 'epoch_2.pth', 'best_b.pth', 'best_c.pth'):
        atomic_write_bytes(str(tmp_path / name), name.encode() * 3)
        assert (tmp_path / name).read_bytes() == name.encode() * 3  # the pause changes nothing else
    err = capfd.readouterr().err
    assert err.count('miqa-fault: pausing in write of') == 1 and 'best_b.pth' in err


def test_remove_temporaries_of_killed_writes(tmp_path):
    for name in ('.epoch_1.pth.ab12cd34.tmp', '.last_checkpoint.x_9y8z7w.tmp', '.hvs.json.q1w2e3r4.tmp',
                 'epoch_1.pth', 'notes.tmp'):
        (tmp_path / name).write_bytes(b'x')
    removed = [Path(p).name for pattern in ('*.pth', 'last_checkpoint')
               for p in remove_temporaries(str(tmp_path), pattern)]
    assert sorted(removed) == ['.epoch_1.pth.ab12cd34.tmp', '.last_checkpoint.x_9y8z7w.tmp']
    assert sorted(os.listdir(tmp_path)) == ['.hvs.json.q1w2e3r4.tmp', 'epoch_1.pth', 'notes.tmp']
    assert remove_temporaries(str(tmp_path / 'missing')) == []
    assert TEMP_SUFFIX == '.tmp'
