"""Every leaf config parses, inherits from its bases, and builds its model without weights."""
from pathlib import Path

import pytest
from mmengine.config import Config

from miqa.registry import MODELS
from miqa.utils import apply_overrides, register_all_modules

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
# training/testing configs (configs/build/ holds database-builder configs)
LEAVES = sorted(p for p in CONFIGS.rglob('*.py') if not {'_base_', 'build'} & set(p.parts))


def test_names_users_type_exist():
    for name in ('ra_miqa_cls.py', 'ra_miqa_det.py', 'ra_miqa_ins.py'):
        assert (CONFIGS / name).is_file()


@pytest.mark.parametrize('path', LEAVES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_leaf_config_parses_and_is_complete(path):
    cfg = Config.fromfile(str(path))
    for key in ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'optim_wrapper',
                'param_scheduler', 'train_cfg', 'val_evaluator', 'default_scope'):
        assert key in cfg, f'{path.name} lacks {key}'
    ds = cfg.train_dataloader.dataset
    assert ds.task in ('cls', 'det', 'ins') and ds.label_type in ('composite', 'consistency', 'accuracy')
    # the task/label in the file name agree with the datasets
    stem = path.stem
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        d = cfg[loader].dataset
        assert d.task == ds.task and d.label_type == ds.label_type
        if path.parent.name not in ('demo', 'miqd_mini'):  # named <model>_mini: MIQD-mini is cls only
            assert f'_{d.task}' in stem
            assert d.label_type == 'composite' or stem.endswith(d.label_type)


@pytest.mark.parametrize('path', LEAVES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_leaf_model_builds_without_pretrained_weights(path):
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(str(path), lazy_import=False)
    cfg.merge_from_dict({'model.pretrained': False})
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_data_root_is_one_variable():
    cfg = Config.fromfile(str(CONFIGS / 'ra_miqa_det.py'))
    assert cfg.data_root == 'data/miqd'
    cfg.merge_from_dict({'data_root': '/elsewhere/miqd'})   # --cfg-options data_root=...
    apply_overrides(cfg)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == '/elsewhere/miqd'
    apply_overrides(cfg, data_root='/third')                 # --data-root
    assert cfg.test_dataloader.dataset.data_root == '/third'


def test_split_dir_points_every_dataset_at_its_split_file():
    cfg = Config.fromfile(str(CONFIGS / 'ra_miqa_det.py'))
    apply_overrides(cfg, split_dir='/splits/seed2')
    assert cfg.train_dataloader.dataset.split_file == '/splits/seed2/miqa_det_train.csv'
    assert cfg.val_dataloader.dataset.split_file == '/splits/seed2/miqa_det_val.csv'
    assert cfg.test_dataloader.dataset.split_file == '/splits/seed2/miqa_det_val.csv'
    cfg = Config.fromfile(str(CONFIGS / 'ra_miqa_ins.py'))  # ins reads det's split files
    apply_overrides(cfg, split_dir='s')
    assert cfg.train_dataloader.dataset.split_file == 's/miqa_det_train.csv'


def test_epochs_flag_stretches_the_schedule():
    cfg = Config.fromfile(str(CONFIGS / 'ra_miqa_cls.py'))
    apply_overrides(cfg, epochs=8, batch_size=16, lr=3e-4)
    assert cfg.train_cfg.max_epochs == 8
    cosine = [s for s in cfg.param_scheduler if s.type == 'CosineAnnealingLR'][0]
    assert cosine.end == 8 and cosine.T_max == 8 - cosine.begin
    assert cfg.train_dataloader.batch_size == 16 and cfg.optim_wrapper.optimizer.lr == 3e-4


def test_epochs_shorter_than_warmup_keeps_a_valid_schedule():
    cfg = Config.fromfile(str(CONFIGS / 'ra_miqa_cls.py'))
    apply_overrides(cfg, epochs=1)
    assert [s.type for s in cfg.param_scheduler] == ['LinearLR']
    assert cfg.param_scheduler[0].end == 1
