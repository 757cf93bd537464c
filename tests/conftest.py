"""Shared fixtures: a private ``MIQA_HOME`` and synthetic MIQD trees (never ../shared)."""
import itertools
from pathlib import Path
from typing import Callable

import pytest
import torch

from miqa.testing import make_miqd_tree
from miqa.testing.tiny_models import random_checkpoint, tiny_ra_miqa_config


@pytest.fixture(scope='session', autouse=True)
def miqa_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Caches and downloads go to a temporary ``MIQA_HOME``, never the user's home."""
    home = tmp_path_factory.mktemp('miqa_home')
    patch = pytest.MonkeyPatch()
    patch.setenv('MIQA_HOME', str(home))
    yield home
    patch.undo()


@pytest.fixture(autouse=True, scope='session')
def one_torch_thread():
    """Tiny CPU models run faster on one thread, and much faster when the 2 cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def tiny_ra_miqa(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 1-block RA-MIQA (:mod:`miqa.testing.tiny_models`): its config ``cfg`` and a checkpoint
    ``ckpt`` of random weights (seed 0), shared by the session (do not modify them)."""
    tmp = tmp_path_factory.mktemp('tiny_ra_miqa')
    cfg = tiny_ra_miqa_config(tmp / 'tiny_ra_miqa.py')
    return dict(cfg=cfg, ckpt=random_checkpoint(cfg, tmp / 'tiny.pth'))


@pytest.fixture(scope='session')
def miqd_root(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A MIQD tree shared by the session (do not modify it): cls, det and ins, 4 sources,
    2 distortions (50 images per source), official-format split files (3 train / 1 val).
    The ``make_miqd_tree`` result: ``root``, ``categories`` and per task ``src_ids``,
    ``train``, ``val``, ``labels``."""
    return make_miqd_tree(tmp_path_factory.mktemp('miqd'))


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., dict]:
    """Factory of fresh trees a test may change: ``make_tree(**make_miqd_tree_kwargs)``."""
    counter = itertools.count()

    def make(**kwargs) -> dict:
        return make_miqd_tree(tmp_path / f'miqd{next(counter)}', **kwargs)

    return make
