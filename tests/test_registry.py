"""Registry: children of mmengine's roots, built by type name, did-you-mean on a typo."""
import pytest
import torch
from mmengine.registry import MODELS as MMENGINE_MODELS

from miqa.registry import DATASETS, LOOPS, METRICS, MODELS, TRANSFORMS
from miqa.utils import register_all_modules


def test_children_of_mmengine_roots():
    assert MODELS.parent is MMENGINE_MODELS
    for registry in (DATASETS, TRANSFORMS, MODELS, METRICS, LOOPS):
        assert registry.scope == 'miqa'


def test_locations_register_without_manual_import():
    # `locations` makes the registry import its module on first look-up.
    assert MODELS.get('MIQADataPreprocessor').__name__ == 'MIQADataPreprocessor'
    assert LOOPS.get('MultiValEpochBasedTrainLoop').__name__ == 'MultiValEpochBasedTrainLoop'


def test_unknown_type_suggests_close_names():
    with pytest.raises(KeyError, match="Did you mean: MIQADataPreprocessor"):
        MODELS.build(dict(type='MIQADataPreprocesor'))


def test_unknown_type_through_mmengine_root_with_miqa_scope():
    register_all_modules(init_default_scope=False)
    with pytest.raises(KeyError, match='Did you mean'):
        MMENGINE_MODELS.build(dict(type='MIQADataPreprocesor', _scope_='miqa'))


def test_parent_components_still_resolve():
    # mmengine's own components stay reachable from the child registry.
    from miqa.registry import OPTIMIZERS

    opt = OPTIMIZERS.build(dict(type='AdamW', params=[torch.nn.Parameter(torch.zeros(1))], lr=0.1))
    assert isinstance(opt, torch.optim.AdamW)


def test_every_registering_module_is_in_a_registry_location():
    """Lazy package ``__init__``s import nothing: each module that registers something must be
    imported by the ``locations`` of the registries (a fresh interpreter, nothing imported by hand)."""
    import subprocess
    import sys
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / 'miqa'
    registering = sorted('miqa.' + '.'.join(p.relative_to(package).with_suffix('').parts)
                         for p in package.rglob('*.py') if '.register_module(' in p.read_text())
    code = ('import sys\nfrom miqa import registry\n'
            'for reg in vars(registry).values():\n'
            '    if isinstance(reg, registry.Registry):\n'
            '        reg.import_from_location()\n'
            f'print([m for m in {registering!r} if m not in sys.modules])')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == '[]', out
