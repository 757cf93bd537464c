"""The mmengine/torch fixes: checkpoint loading stays safe, configs adapt to CPU."""
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer

from miqa.utils.checkpoint import load_training_checkpoint
from miqa.utils.setup_env import adapt_config


class _Evil:
    def __reduce__(self):
        return (print, ('pwned',))


def test_loads_plain_weights_with_weights_only(tmp_path):
    path = tmp_path / 'w.pth'
    torch.save({'w': torch.ones(2)}, path)
    assert torch.equal(load_training_checkpoint(str(path))['w'], torch.ones(2))


def test_loads_mmengine_training_checkpoint(tmp_path):
    buf = HistoryBuffer()
    buf.update(1.5)
    ckpt = {'state_dict': {'w': torch.ones(1)}, 'message_hub': {'log_scalars': {'loss': buf}},
            'meta': {'seed': np.int64(3), 'lr': np.float64(0.1)}}
    path = tmp_path / 'epoch_1.pth'
    torch.save(ckpt, path)
    loaded = load_training_checkpoint(str(path))
    assert loaded['message_hub']['log_scalars']['loss'].current() == 1.5


def test_refuses_foreign_globals(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'x': _Evil()}, path)
    with pytest.raises(RuntimeError, match='not an mmengine training checkpoint'):
        load_training_checkpoint(str(path))


def test_missing_checkpoint_names_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_training_checkpoint(str(tmp_path / 'nope.pth'))


def test_adapt_config_cpu_ddp_and_collate():
    cfg = Config(dict(train_dataloader=dict(batch_size=2), val_dataloader=None))
    adapt_config(cfg, launcher='pytorch')
    if not torch.cuda.is_available():
        assert cfg.model_wrapper_cfg.device_ids is None
        assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.train_dataloader.collate_fn == dict(type='default_collate')
