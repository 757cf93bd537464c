"""A 1-block RA-MIQA for tests and benchmarks: the reference ``configs/ra_miqa_cls.py`` with
depth-1 ViTs and no pretrained files, and a checkpoint of random weights."""
import warnings
from pathlib import Path

from miqa.utils.paths import resolve_config
from miqa.utils.types import PathLike


def tiny_ra_miqa_config(path: PathLike) -> Path:
    """Write the tiny RA-MIQA config to ``path``."""
    path = Path(path)
    path.write_text(f"_base_ = ['{resolve_config('ra_miqa_cls')}']\n"
                    'model = dict(pretrained=False, backbone=dict(depth=1), region_encoder=dict(depth=1))\n')
    return path


def random_checkpoint(config: PathLike, dst: PathLike, seed: int = 0) -> Path:
    """Build the config's model with random weights (``seed``) and save ``{'state_dict': ...}``."""
    import torch

    from miqa.apis.inference import MIQAModel

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = MIQAModel(config=config, checkpoint=False, device='cpu')
    torch.save({'state_dict': model.model.state_dict()}, dst)
    return Path(dst)
