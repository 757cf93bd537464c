"""tools/benchmark_models.py's driver (miqa.analysis.benchmark): what it refuses before any run."""
import pytest

from miqa.analysis.benchmark import run_benchmark


def _config(path, method=None, data_root='data/db'):
    path.write_text(f"data_root = {data_root!r}\n" + (f"method = {method!r}\n" if method else ''))
    return str(path)


def test_configs_reporting_as_one_method_are_refused_before_training(tmp_path):
    a = _config(tmp_path / 'a.py', 'RA-MIQA')
    b = _config(tmp_path / 'b.py', 'RA-MIQA')
    with pytest.raises(ValueError, match=r"same `method`.*'RA-MIQA': .*a\.py, .*b\.py"):
        run_benchmark([a, b], dry_run=True, work_dir=str(tmp_path / 'w'))
    # the file stem names a config without `method`: two files, two rows
    c, d = _config(tmp_path / 'c.py'), _config(tmp_path / 'd.py')
    assert run_benchmark([c, d], dry_run=True, work_dir=str(tmp_path / 'w')) == {}


def test_configs_on_different_databases_are_refused(tmp_path):
    a = _config(tmp_path / 'a.py', 'A', 'data/one')
    b = _config(tmp_path / 'b.py', 'B', 'data/two')
    with pytest.raises(ValueError, match='different databases'):
        run_benchmark([a, b], dry_run=True)
