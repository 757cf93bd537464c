"""Weight files of the HVS scorers: a table, local look-up, sha256 checks. Nothing here downloads.

Each file is looked for in ``$MIQA_HOME/weights/<file>`` unless a scorer is given a path
(``weights=dict(<key>=path)``). A missing file raises :class:`FileNotFoundError` naming the
file, its published URL and where to put it.

Integrity (before anything is unpickled, and always with ``weights_only=True``):

- a published sha256 (:attr:`HVSWeightFile.sha256`, a full digest or a prefix) must match;
- else a torch.hub-style file name ``<name>-<hex>.<ext>`` carries the first hex digits of its
  sha256 (torchvision's ``vgg16-397923af.pth``), and that prefix must match, as torch.hub checks;
- else (piq's release assets publish no hash) the digest is **trusted on first use**: recorded
  in ``$MIQA_HOME/weights/sha256.json`` (:func:`miqa.models.weights.trust_on_first_use`, the store
  the model zoo shares) with a logged warning, and any later file for the same
  key that differs is refused. To replace a file on purpose, delete its entry from that JSON.
"""
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Union

import torch
from torchvision import models as tvm

from miqa.models.weights import (
    WEIGHT_SOURCES,
    ChecksumError,
    WeightSource,
    file_sha256,
    load_state_dict_file,
    trust_on_first_use,
    unwrap_state_dict,
    weights_dir,
)
from miqa.registry import SCORERS
from miqa.utils.types import PathLike


@dataclass(frozen=True)
class HVSWeightFile:
    """A published weight file and its sha256 (a full digest, a prefix, or ``''`` if unpublished)."""

    source: WeightSource
    sha256: str = ''


_VGG16_URL = tvm.VGG16_Weights.IMAGENET1K_V1.url

#: The weight files of the scorers in :mod:`miqa.hvs` (keys are what ``weight_files`` names).
HVS_WEIGHTS: Dict[str, HVSWeightFile] = {
    'vgg16': HVSWeightFile(
        WeightSource(_VGG16_URL.rsplit('/', 1)[-1], _VGG16_URL,
                     'torchvision VGG16_Weights.IMAGENET1K_V1: the ImageNet VGG16 of LPIPS and DISTS'),
        # torchvision publishes the prefix in the name; the full digest is the one widely recorded
        # for this file (its first 8 digits are the name's).
        '397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0'),
    'lpips_vgg': HVSWeightFile(WeightSource(
        'lpips_weights.pt',
        'https://github.com/photosynthesis-team/photosynthesis.metrics/releases/download/v0.4.0/'
        'lpips_weights.pt',
        "piq's LPIPS v0.1 VGG linear-layer weights (Zhang et al. 2018); no published sha256")),
    'dists': HVSWeightFile(WeightSource(
        'dists_weights.pt',
        'https://github.com/photosynthesis-team/piq/releases/download/v0.4.1/dists_weights.pt',
        "piq's DISTS alpha/beta (Ding et al. 2020); no published sha256")),
    # no-reference scorers (miqa.hvs.hyperiqa, miqa.hvs.maniqa); converted by miqa.hvs.converters
    'hyperiqa_koniq': HVSWeightFile(WeightSource(
        'koniq_pretrained.pkl',
        'https://drive.google.com/file/d/1OOUmnbvpGea0LIGpIWEbOyxfWx6UCiiE/view?usp=sharing',
        "the authors' HyperIQA trained on KonIQ-10k (README of github.com/SSL92/hyperIQA; also on Baidu "
        'cloud https://pan.baidu.com/s/1yY3O8DbfTTtUwXn14Mtr8Q, password 1ty8); no published sha256')),
    'maniqa_koniq10k': HVSWeightFile(WeightSource(
        'ckpt_koniq10k.pt', 'https://github.com/IIGROUP/MANIQA/releases/download/Koniq10k/ckpt_koniq10k.pt',
        "the authors' MANIQA trained on KonIQ-10k (a state dict); no published sha256")),
    'maniqa_kadid10k': HVSWeightFile(WeightSource(
        'ckpt_kadid10k.pt', 'https://github.com/IIGROUP/MANIQA/releases/download/Kadid10k/ckpt_kadid10k.pt',
        "the authors' MANIQA trained on KADID-10k (a state dict); no published sha256")),
    'maniqa_pipal22': HVSWeightFile(WeightSource(
        'MANIQA_PIPAL-ae6d356b.pth',
        'https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/MANIQA_PIPAL-ae6d356b.pth',
        "pyiqa's state-dict re-save of the authors' PIPAL22 MANIQA (their release asset is a pickled "
        'whole model, not loadable with weights_only=True); sha256 prefix in the name')),
}

_HUB_HASH = re.compile(r'-([a-f0-9]{8,})\.')  # torch.hub's HASH_REGEX, anchored on the digits


def weight_entry(key: str) -> HVSWeightFile:
    """The table entry of ``key``: :data:`HVS_WEIGHTS`, else ``miqa.models.weights.WEIGHT_SOURCES``
    (backbones a no-reference scorer may share with the models)."""
    if key in HVS_WEIGHTS:
        return HVS_WEIGHTS[key]
    if key in WEIGHT_SOURCES:
        return HVSWeightFile(WEIGHT_SOURCES[key])
    raise KeyError(f'unknown weight file key {key!r}; known: {sorted({*HVS_WEIGHTS, *WEIGHT_SOURCES})}')


def expected_sha256(key: str) -> str:
    """The published digest (or prefix) of ``key``'s file, ``''`` when none is published."""
    entry = weight_entry(key)
    if entry.sha256:
        return entry.sha256.lower()
    match = _HUB_HASH.search(entry.source.file)
    return match.group(1) if match else ''


def _candidates(key: str, path: Optional[PathLike]) -> Iterable[Path]:
    if path is not None:
        path = Path(path).expanduser()
        return [path] if path.is_absolute() else [path, weights_dir() / path]
    entry = weight_entry(key)
    tried = [weights_dir() / entry.source.file]
    if entry.source.locate is not None:
        try:
            tried.insert(0, Path(entry.source.locate()))
        except ImportError:
            pass
    return tried


def missing_message(key: str, tried: Iterable[Path]) -> str:
    src = weight_entry(key).source
    return (f'weight file {src.file!r} ({key}) not found (looked for: {", ".join(map(str, tried))}). '
            f'Download it from {src.url}' + (f' [{src.note}]' if src.note else '')
            + f' and put it at {weights_dir() / src.file} ($MIQA_HOME/weights/), or pass its path as '
            f'weights=dict({key}="path/to/{src.file}"); pretrained=False gives random weights (tests only).')


def find_weight(key: str, path: Optional[PathLike] = None) -> Path:
    """The local file of ``key`` (``path`` if given), without checking its content.

    Raises:
        FileNotFoundError: naming the file, its URL and where to put it.
    """
    tried = list(_candidates(key, path))
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(missing_message(key, tried))


def verify_weight(key: str, path: PathLike) -> str:
    """Check ``path`` against the published sha256 of ``key`` (or the one trusted on first use).

    Returns the file's sha256. Raises :class:`~miqa.models.weights.ChecksumError` (a ``ValueError``)
    naming both digests when they differ.
    """
    digest = file_sha256(path)
    src = weight_entry(key).source
    expected = expected_sha256(key)
    if expected:
        if not digest.startswith(expected):
            raise ChecksumError(f'{path}: sha256 {digest} does not match the published {expected} of '
                                f'{src.file!r} ({key}); the file is corrupt or another file. Download it '
                                f'again from {src.url}')
        return digest
    trust_on_first_use(src.file, path, src.url)
    return digest


def load_weight(key: str, path: Optional[PathLike] = None) -> Union[Dict[str, torch.Tensor], Any]:
    """Find, verify and load ``key``'s file (``weights_only=True``, CPU).

    A mapping comes back as a state dict (unwrapped as :func:`~miqa.models.weights.load_state_dict_file`
    does); other containers (piq's LPIPS file is a list of tensors) as stored.
    """
    file = find_weight(key, path)
    verify_weight(key, file)
    if file.suffix == '.safetensors':
        return load_state_dict_file(file)
    try:
        obj = torch.load(file, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        raise RuntimeError(f'{file} cannot be loaded with weights_only=True ({err}); it is not the '
                           f'published {weight_entry(key).source.file!r}') from err
    return unwrap_state_dict(obj) if isinstance(obj, Mapping) else obj


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
            find_weight(key, overrides.get(key))
        except (FileNotFoundError, KeyError) as err:  # KeyError: a key missing from the table
            missing.append(str(err).strip('"'))
    if missing:
        return False, ' | '.join(missing)
    return True, 'weight files present: ' + ', '.join(weight_entry(k).source.file for k in keys)
