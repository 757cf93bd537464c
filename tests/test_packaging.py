"""Configs travel with the package: one resolver finds a config by path, repository path or name,
and a non-editable install (``pip install --target``) finds them outside the repository."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from miqa.utils.paths import configs_dir, resolve_config

ROOT = Path(__file__).resolve().parents[1]


def test_config_by_path_repository_path_or_name(tmp_path, monkeypatch):
    leaf = configs_dir() / 'ra_miqa_det.py'
    assert leaf.is_file()
    monkeypatch.chdir(tmp_path)  # away from the repository: configs/... is not a relative path here
    for spec in ('configs/ra_miqa_det.py', 'ra_miqa_det.py', 'ra_miqa_det', str(leaf)):
        assert Path(resolve_config(spec)) == leaf, spec
    assert Path(resolve_config('build/miqd_mini')) == configs_dir() / 'build' / 'miqd_mini.py'
    assert Path(resolve_config('ra_miqa_mini')) == configs_dir() / 'demo' / 'ra_miqa_mini.py'
    own = tmp_path / 'ra_miqa_det.py'  # a file of the working directory wins over the packaged one
    own.write_text('x = 1\n')
    assert resolve_config('ra_miqa_det.py') == 'ra_miqa_det.py'
    assert Path(resolve_config('ra_miqa_det.py', packaged_only=True)) == leaf  # the zoo's lookup
    with pytest.raises(FileNotFoundError, match='ra_miqa_typo'):
        resolve_config('ra_miqa_typo')


def test_ambiguous_name_lists_the_candidates(tmp_path, monkeypatch):
    import miqa.utils.paths as paths
    for sub in ('_base_', 'a', 'b'):
        (tmp_path / sub).mkdir()
    for name in ('ra_miqa_cls.py', 'a/same.py', 'b/same.py'):
        (tmp_path / name).write_text('x = 1\n')
    monkeypatch.setattr(paths, 'PACKAGED_CONFIGS', tmp_path)
    with pytest.raises(ValueError, match='ambiguous.*a/same.py.*b/same.py'):
        resolve_config('same')
    assert resolve_config('a/same') == str(tmp_path / 'a' / 'same.py')


def test_non_editable_install_ships_the_configs(tmp_path):
    """``pip install --target`` (no network, no build isolation) of a copy of the source; from a
    folder outside the repository ``MIQAModel('ra-miqa', task='det')`` gets as far as the weight file,
    which an empty offline MIQA_HOME lacks."""
    src = tmp_path / 'src'
    ignore = shutil.ignore_patterns('__pycache__', '*.py[cod]', '.mim', '*.egg-info')
    for folder in ('miqa', 'machine_iqa', 'configs'):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    for name in ('setup.py', 'pyproject.toml', 'requirements.txt', 'README.md'):
        shutil.copy(ROOT / name, src / name)
    target = tmp_path / 'site'
    pip = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation',
                          '--no-index', '--no-compile', '-q', '--target', str(target), str(src)],
                         capture_output=True, text=True, timeout=300)
    if pip.returncode != 0 and 'No module named pip' in pip.stderr:
        pytest.skip('pip is not installed')
    assert pip.returncode == 0, pip.stderr[-3000:]
    assert (target / 'miqa' / '.mim' / 'configs' / '_base_').is_dir()
    assert not (ROOT / 'miqa' / '.mim').exists()  # the build never writes into the source tree
    code = textwrap.dedent('''
        import miqa
        from miqa.apis import MIQAModel
        print(miqa.__file__)
        try:
            MIQAModel('ra-miqa', task='det')
        except FileNotFoundError as err:
            print('ERROR', err)
    ''')
    home = tmp_path / 'home'
    home.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target), MIQA_HOME=str(home), MIQA_OFFLINE='1')
    out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0] == str(target / 'miqa' / '__init__.py')
    assert lines[1].startswith('ERROR weight file') and 'ra_miqa_det_composite.pth' in lines[1], lines[1]
