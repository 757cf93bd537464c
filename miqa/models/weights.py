"""Loading a checkpoint into a model, strictly. The files themselves come from :mod:`miqa.hub`
(the table, lookup, checksums, downloads and the safe loaders).

``training_checkpoint_globals`` and ``load_training_checkpoint`` (documented here) are re-exported
from the hub.
"""
from typing import Callable, Mapping, Optional

import torch

from miqa.hub.loading import (  # noqa: F401  (the last two: documented here, re-exported)
    load_checkpoint_state_dict,
    load_training_checkpoint,
    training_checkpoint_globals,
)
from miqa.utils.types import PathLike


def load_strict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor],
                what: Optional[str] = None) -> None:
    """Load ``state_dict`` into ``model`` after checking that keys and shapes match exactly
    (:func:`~miqa.models.converters.check_state_dict` names the offending keys)."""
    from miqa.models.converters import check_state_dict

    check_state_dict(state_dict, model.state_dict(), what or type(model).__name__)
    model.load_state_dict(state_dict, strict=True)


def _converter_for(state_dict: Mapping[str, torch.Tensor], arch: Optional[str]) -> Callable:
    """The converter of the authors' released layout: the zoo's ``arch`` when known, else by key layout."""
    from miqa.models.converters import CONVERSIONS, convert_baseline, convert_ra_miqa

    if arch is not None:
        return CONVERSIONS[arch][0]
    if any(k.startswith(('base_model.', 'mask_encoder.', 'quality_regressor.')) for k in state_dict):
        return convert_ra_miqa
    return convert_baseline


def load_model_weights(model: torch.nn.Module, path: PathLike, arch: Optional[str] = None) -> None:
    """Load a checkpoint into ``model`` strictly: the one loader of ``tools/test.py``, ``MIQAModel``,
    ``batch_assess`` and ``miqa assess``.

    This project's layout (``tools/train.py`` checkpoints, ``tools/convert_checkpoint.py`` output)
    loads as it is; the authors' released layout goes through :mod:`miqa.models.converters`.
    Every key of the model must be covered with its shape, and no key may be left over: the
    frozen region encoder is part of every checkpoint ``tools/train.py`` writes, so there are no
    exceptions. Otherwise a :class:`ValueError` lists the missing / unexpected keys.
    """
    from miqa.models.converters import _shorten

    sd = load_checkpoint_state_dict(path)
    target = model.state_dict()
    if set(sd) != set(target):
        try:
            sd = _converter_for(sd, arch)(sd, target, ())
        except ValueError as err:
            missing, unexpected = set(target) - set(sd), set(sd) - set(target)
            raise ValueError(
                f'checkpoint {path} does not fit the model ({type(model).__name__}) built from the config: '
                f'{len(missing)} missing keys: {_shorten(missing)}; {len(unexpected)} unexpected keys: '
                f'{_shorten(unexpected)}. Nor is it the authors\' released layout ({err}) '
                'Check that the config is the one the checkpoint was trained with.') from None
    load_strict(model, sd, f'{type(model).__name__} of {path}')
