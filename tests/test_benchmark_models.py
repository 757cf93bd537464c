"""tools/benchmark_models.py's driver (miqa.analysis.benchmark): the database, task and photo
groups it compares on, and what it refuses before any run."""
import json

import pytest

from miqa.analysis.benchmark import run_benchmark, shared_database
from miqa.database.ensure import source_groups
from miqa.database.settings import manifest_path


def _config(path, method=None, data_root='data/db', task=None):
    text = f"data_root = {data_root!r}\n" + (f"method = {method!r}\n" if method else '')
    if task:
        text += f"test_dataloader = dict(dataset=dict(task={task!r}, data_root=data_root))\n"
    path.write_text(text)
    return str(path)


def test_configs_reporting_as_one_method_are_refused_before_training(tmp_path):
    a = _config(tmp_path / 'a.py', 'RA-MIQA')
    b = _config(tmp_path / 'b.py', 'RA-MIQA')
    with pytest.raises(ValueError, match=r"same `method`.*'RA-MIQA': .*a\.py, .*b\.py"):
        run_benchmark([a, b], dry_run=True, work_dir=str(tmp_path / 'w'))
    # the file stem names a config without `method`: two files, two rows
    c, d = _config(tmp_path / 'c.py'), _config(tmp_path / 'd.py')
    assert run_benchmark([c, d], dry_run=True, work_dir=str(tmp_path / 'w')) == {}


def test_configs_on_different_databases_or_tasks_are_refused(tmp_path):
    with pytest.raises(ValueError, match='different databases'):
        shared_database([_config(tmp_path / 'a.py', 'A', 'data/one'),
                         _config(tmp_path / 'b.py', 'B', 'data/two')])
    with pytest.raises(ValueError, match='different tasks'):
        shared_database([_config(tmp_path / 'a.py', 'A', task='det'), _config(tmp_path / 'b.py', 'B')])


def test_det_configs_are_grouped_by_the_det_manifest(tmp_path):
    """The intervals resample photo groups of the configs' task: a det database's groups live in its
    det manifest (reading the cls one made every source its own 'photo')."""
    root = tmp_path / 'db'
    path = manifest_path(str(root), 'det')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sources={'cat_a': dict(group='cat'), 'cat_b': dict(group='cat'),
                                             'dog': dict(group='dog')})))
    a = _config(tmp_path / 'a.py', 'A', str(root), 'det')
    b = _config(tmp_path / 'b.py', 'B', str(root), 'det')
    data_root, task = shared_database([a, b])
    assert (data_root, task) == (str(root), 'det')
    assert source_groups(data_root, task) == {'cat_a': 'cat', 'cat_b': 'cat', 'dog': 'dog'}
    assert source_groups(data_root, 'cls') == {}
