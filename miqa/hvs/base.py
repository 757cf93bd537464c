"""The one interface every human-vision (HVS) quality scorer implements.

A scorer maps a batch of distorted images ``N x 3 x H x W`` in ``[0, 1]`` (RGB, float) — plus,
for full-reference scorers, the matching pristine references of the same shape — to ``N``
scores. ``lower_is_better`` says which direction means better quality (LPIPS, DISTS are
distances), so correlations against machine-quality labels can use the right sign
(:meth:`HVSScorer.quality`). Spec §7: the reference of a distorted image is its source image.

Weight files (``weight_files``) come from the hub (:mod:`miqa.hub`): ``$MIQA_HOME/weights/<file>``
unless a scorer is given a path (``weights=dict(<key>=path)``), checked against the published
sha256 or trusted on first use, loaded with ``weights_only=True``. Nothing here downloads.
"""
from typing import Any, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from miqa.hub.loading import load_weight
from miqa.hub.lookup import find_weights
from miqa.hub.table import weight_entry
from miqa.registry import SCORERS
from miqa.utils.types import PathLike


class HVSScorer(nn.Module):
    """Base class of the scorers in :mod:`miqa.hvs` (registered in ``miqa.registry.SCORERS``).

    Subclasses set the class attributes and implement :meth:`forward`.

    Attributes:
        name: the name used in reports (the paper's spelling: ``'PSNR'``, ``'LPIPS'`` …).
        full_reference: whether :meth:`score` needs ``reference``.
        lower_is_better: ``True`` for distances.
        weight_files: keys of the weight files the scorer needs (rows of :data:`miqa.hub.WEIGHTS`),
            empty for closed-form metrics.
    """

    name: str = ''
    full_reference: bool = True
    lower_is_better: bool = False
    weight_files: tuple = ()

    def __init__(self) -> None:
        super().__init__()
        # follows .to()/.cuda(), so scorers without parameters (PSNR, SSIM) also know their device
        self.register_buffer('_device_anchor', torch.empty(0), persistent=False)

    def forward(self, distorted: torch.Tensor, reference: Optional[torch.Tensor] = None) -> torch.Tensor:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        for t in (*self.parameters(), *self.buffers()):
            return t.device
        return torch.device('cpu')

    @torch.no_grad()
    def score(self, distorted: torch.Tensor, reference: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Scores (shape ``N``, float32, on CPU) of ``distorted`` (against ``reference``)."""
        _check_batch(distorted, 'distorted')
        if self.full_reference:
            if reference is None:
                raise ValueError(f'{self.name} is a full-reference metric: pass reference=')
            _check_batch(reference, 'reference')
            if reference.shape != distorted.shape:
                raise ValueError(f'{self.name}: reference {tuple(reference.shape)} and distorted '
                                 f'{tuple(distorted.shape)} differ in shape')
            reference = reference.to(self.device, torch.float32)
        out = self(distorted.to(self.device, torch.float32), reference)
        return out.reshape(-1).float().cpu()

    def quality(self, scores: torch.Tensor) -> torch.Tensor:
        """Scores turned so that higher means better quality (negated distances)."""
        return -scores if self.lower_is_better else scores

    def extra_repr(self) -> str:
        kind = 'FR' if self.full_reference else 'NR'
        return f'{self.name}, {kind}, lower_is_better={self.lower_is_better}'


def _check_batch(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f'{what} must be an N x 3 x H x W tensor in [0, 1], got {shape}')
    if x.is_floating_point() and x.numel() and (x.min() < -1e-3 or x.max() > 1 + 1e-3):
        raise ValueError(f'{what} must lie in [0, 1] (got [{float(x.min()):.3f}, {float(x.max()):.3f}]); '
                         'divide uint8 images by 255')


def _hint(key: str) -> str:
    return (f'pass its path as weights=dict({key}="path/to/{weight_entry(key).file}"); pretrained=False '
            'gives random weights (tests only)')


def load_scorer_weight(key: str, path: Optional[PathLike] = None) -> Any:
    """Find (``path`` if given), verify and load a scorer's weight file (:func:`miqa.hub.load_weight`)."""
    return load_weight(key, path, _hint(key))


def scorer_status(cfg: Union[str, Mapping[str, Any]]) -> Tuple[bool, str]:
    """Whether a scorer can be built with its weights, without building it (nor hashing files).

    Driven by the class's ``weight_files``; a config dict's ``weights=dict(key=path)`` overrides
    the look-up and ``pretrained=False`` needs no file. Returns ``(available, reason)``.
    """
    cfg = dict(type=cfg) if isinstance(cfg, str) else dict(cfg)
    cls = SCORERS.get(cfg['type'])  # KeyError with did-you-mean on a typo
    keys = tuple(getattr(cls, 'weight_files', ()))
    if not keys:
        return True, 'no weight files needed'
    if cfg.get('pretrained', True) is False:
        return True, 'pretrained=False: random weights (tests only)'
    overrides = dict(cfg.get('weights') or {})
    missing = []
    for key in keys:
        try:
            find_weights(key, overrides.get(key), _hint(key))
        except (FileNotFoundError, KeyError) as err:  # KeyError: a key missing from the table
            missing.append(str(err).strip('"'))
    if missing:
        return False, ' | '.join(missing)
    return True, 'weight files present: ' + ', '.join(weight_entry(k).file for k in keys)
