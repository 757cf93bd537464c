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


#: ``configs/`` as installed with the package (copied there by setup.py's ``build_py``, as
#: mmpretrain ships ``mmpretrain/.mim/configs``); absent in a checkout, which reads the repository's
PACKAGED_CONFIGS = Path(__file__).resolve().parents[1] / '.mim' / 'configs'
REPOSITORY_CONFIGS = Path(__file__).resolve().parents[2] / 'configs'


def configs_dir() -> Path:
    """The ``configs/`` tree (``_base_``, ``build``, ``demo``, the leaf configs): the copy installed
    with the package, else the repository's (a checkout or an editable install)."""
    for folder in (PACKAGED_CONFIGS, REPOSITORY_CONFIGS):
        if (folder / '_base_').is_dir() and (folder / 'ra_miqa_cls.py').is_file():
            return folder
    raise FileNotFoundError(f'the miqa configs are neither installed ({PACKAGED_CONFIGS}) nor in a checkout '
                            f'({REPOSITORY_CONFIGS}): reinstall miqa (pip install .)')


def resolve_config(spec, packaged_only: bool = False) -> str:
    """The config file named by ``spec``: a path as given (relative to the working directory), else
    a packaged config by its repository path or its name: ``configs/ra_miqa_det.py``,
    ``ra_miqa_det.py``, ``ra_miqa_det``, ``build/miqd_mini`` or ``demo/ra_miqa_mini.py``.
    ``packaged_only``: a relative ``spec`` names a packaged config (the working directory is not
    searched; the model zoo's configs)."""
    path = Path(spec).expanduser()
    if path.is_file() and not (packaged_only and not path.is_absolute()):
        return str(path)
    if path.is_absolute():
        raise FileNotFoundError(f'config {spec} not found')
    root = configs_dir()
    rel = Path(*path.parts[1:]) if len(path.parts) > 1 and path.parts[0] == 'configs' else path
    for candidate in (root / rel, root / f'{rel}.py'):
        if candidate.is_file():
            return str(candidate)
    matches = sorted(root.rglob(rel.name if rel.suffix == '.py' else f'{rel.name}.py')) \
        if len(rel.parts) == 1 else []
    if len(matches) == 1:
        return str(matches[0])
    if matches:
        names = ', '.join(str(m.relative_to(root.parent)) for m in matches)
        raise ValueError(f'config {spec} is ambiguous: {names}; give its path')
    raise FileNotFoundError(f'config {spec} not found: neither a file (from {os.getcwd()}) nor a packaged '
                            f'config under {root} (give a path, or a name such as ra_miqa_det)')
