"""The bottom layer costs nothing to import; the layers of docs/ARCHITECTURE.md hold (lint-imports)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _loaded(module: str, heavy: tuple) -> list:
    code = f'import sys, {module}; print([m for m in {heavy!r} if m in sys.modules])'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True, cwd=ROOT)
    return eval(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('module, heavy', [
    ('miqa.vocab', ('numpy', 'torch', 'mmengine')),
    ('miqa.utils.io', ('torch', 'mmengine', 'numpy')),
    ('miqa.utils.paths', ('torch', 'mmengine', 'numpy')),
    ('miqa.utils.types', ('torch', 'mmengine', 'numpy')),
    ('miqa.utils.image', ('torch', 'mmengine', 'cv2', 'PIL')),
    ('miqa.utils.device', ('torch', 'numpy')),
    ('miqa.datasets.naming', ('torch', 'mmengine')),
    ('miqa.evaluation.functional', ('torch', 'mmengine')),
    ('miqa.apis.zoo', ('timm', 'torch')),
    ('miqa.hub.download', ('torch', 'mmengine', 'numpy')),
    ('miqa.cli', ('torch', 'mmengine')),
])
def test_light_modules_stay_light(module, heavy):
    assert _loaded(module, heavy) == []


LINT_IMPORTS = (shutil.which('lint-imports', path=str(Path(sys.executable).parent))
                or shutil.which('lint-imports'))


@pytest.mark.skipif(LINT_IMPORTS is None, reason='import-linter is not installed (pip install -e ".[dev]")')
def test_layers_contract():
    exe = LINT_IMPORTS
    proc = subprocess.run([exe, '--no-cache'], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
