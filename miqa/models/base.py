"""Shared mmengine ``BaseModel`` logic of every MIQA model (docs/CONTRACTS.md, "Model").

``forward(inputs, data_samples=None, region_inputs=None, mode='tensor')``:

- ``tensor``: predicted scores, Tensor[B];
- ``loss``: ``dict(loss=...)`` of the configured loss (default MSE, spec §6) against
  ``data_samples['gt_score']``; samples flagged ``valid=False`` are left out;
- ``predict``: B dicts, each the item's ``data_samples`` fields plus ``pred_score`` (float).

Subclasses implement only :meth:`MIQABaseModel.predict_scores`.
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
from mmengine.model import BaseModel
from torch import Tensor

from ..registry import MODELS

DataSamples = Union[None, Mapping[str, Any], Sequence[Mapping[str, Any]]]


def _item(value: Any, i: int, batch_size: int) -> Any:
    """The i-th item of a collated field, as a plain Python value where possible."""
    if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == batch_size:
        v = value[i]
        return v.item() if v.ndim == 0 else v.tolist()
    if isinstance(value, (list, tuple)) and len(value) == batch_size:
        return value[i]
    return value  # a field that is not batched


def unbatch_samples(data_samples: DataSamples, batch_size: int) -> List[Dict[str, Any]]:
    """Split collated ``data_samples`` (a dict of batched fields, as mmengine's
    ``default_collate`` makes, or already a list of per-item dicts) into B plain dicts."""
    if data_samples is None:
        return [{} for _ in range(batch_size)]
    if isinstance(data_samples, Mapping):
        return [{k: _item(v, i, batch_size) for k, v in data_samples.items()} for i in range(batch_size)]
    if len(data_samples) != batch_size:
        raise ValueError(f'{len(data_samples)} data samples for a batch of {batch_size}')
    return [dict(s) for s in data_samples]


def sample_field(data_samples: DataSamples, key: str, batch_size: int) -> Optional[List[Any]]:
    """Per-item values of one field, or ``None`` when the batch does not carry it."""
    if data_samples is None:
        return None
    if isinstance(data_samples, Mapping):
        return None if key not in data_samples else [_item(data_samples[key], i, batch_size)
                                                     for i in range(batch_size)]
    values = [s.get(key) for s in data_samples]
    return None if all(v is None for v in values) else values


def _field_tensor(data_samples: DataSamples, key: str, like: Tensor, default: Any = None) -> Tensor:
    if isinstance(data_samples, Mapping) and isinstance(data_samples.get(key), Tensor):
        return data_samples[key].to(device=like.device).reshape(-1)
    values = sample_field(data_samples, key, like.shape[0])
    if values is None:
        if default is None:
            raise KeyError(f'data_samples lack {key!r}, which mode="loss" needs')
        values = [default] * like.shape[0]
    return torch.as_tensor(values, device=like.device)


class MIQABaseModel(BaseModel):
    """Base of the MIQA regressors: the three forward modes and the configured loss.

    Args:
        loss: cfg of the loss (a ``MODELS`` entry, see :mod:`miqa.models.losses`).
        data_preprocessor: data preprocessor cfg, built from miqa's ``MODELS`` (e.g.
            ``MIQADataPreprocessor``; default mmengine's ``BaseDataPreprocessor``, which only moves
            data to the device).
        init_cfg: optional mmengine init cfg, applied to this module only (see
            :meth:`init_weights`).
    """

    def __init__(self, loss: Optional[dict] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if isinstance(data_preprocessor, dict):  # miqa's registry: works without a default scope
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.criterion = MODELS.build(loss if loss is not None else dict(type='MSELoss'))

    def build_frozen_stem(self, backbone_cfg: Dict[str, Any]) -> Dict[str, Any]:
        """Pop ``frozen_stages`` / ``stem_cache`` from a backbone cfg; after the backbone is built,
        :meth:`backbone_features` runs its first ``frozen_stages`` blocks frozen and cached
        (:mod:`~miqa.models.frozen_stem`). Returns the cfg left for ``build_backbone``."""
        cfg = dict(backbone_cfg)
        self._stem_spec = (cfg.pop('frozen_stages', 0) or 0, cfg.pop('stem_cache', True), cfg['name'])
        self._stem = None
        return cfg

    def _attach_frozen_stem(self) -> None:
        from .frozen_stem import FrozenStem

        stages, cache, name = getattr(self, '_stem_spec', (0, True, ''))
        self._stem = FrozenStem(self.backbone, name, stages, cache) if stages else None

    def backbone_features(self, inputs: Tensor, data_samples: DataSamples = None) -> Tensor:
        """``self.backbone(inputs)``, through the frozen, cached stem when one is configured."""
        stem = getattr(self, '_stem', None)
        if stem is None:
            return self.backbone(inputs)
        return stem(inputs, sample_field(data_samples, 'img_path', inputs.shape[0]))

    def train(self, mode: bool = True) -> 'MIQABaseModel':
        """As ``nn.Module.train``; a frozen stem stays in eval mode (fixed batch-norm statistics)."""
        super().train(mode)
        stem = getattr(self, '_stem', None)
        for module in stem.modules() if stem is not None else ():
            module.eval()
        return self

    def init_weights(self) -> None:
        """Weights are initialised (and pretrained files loaded) at construction.

        mmengine's default ``init_weights`` would call ``init_weights()`` of every child that
        has one, and timm's ``VisionTransformer.init_weights`` re-initialises the network,
        wiping the pretrained weights. So only an explicit ``init_cfg`` is applied, and
        only at this level (e.g. ``dict(type='Pretrained', checkpoint=...)``).
        """
        if self.init_cfg and not self._is_init:
            from mmengine.model.weight_init import initialize
            initialize(self, self.init_cfg)
        self._is_init = True

    def predict_scores(self, inputs: Tensor, region_inputs: Optional[Tensor] = None,
                       data_samples: DataSamples = None) -> Tensor:
        """Predicted quality scores, Tensor[B] (unbounded, higher = better)."""
        raise NotImplementedError

    def forward(self, inputs: Tensor, data_samples: DataSamples = None,
                region_inputs: Optional[Tensor] = None, mode: str = 'tensor'):
        if mode not in ('tensor', 'loss', 'predict'):
            raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")
        scores = self.predict_scores(inputs, region_inputs=region_inputs, data_samples=data_samples)
        return scores if mode == 'tensor' else getattr(self, mode)(scores, data_samples)

    def loss(self, scores: Tensor, data_samples: DataSamples) -> Dict[str, Tensor]:
        gt = _field_tensor(data_samples, 'gt_score', scores).to(scores.dtype)
        valid = _field_tensor(data_samples, 'valid', scores, default=True).bool()
        if bool(valid.all()):
            return dict(loss=self.criterion(scores, gt))
        if not bool(valid.any()):  # keep the graph connected (DDP) with a zero loss
            return dict(loss=scores.sum() * 0)
        return dict(loss=self.criterion(scores[valid], gt[valid]))

    def predict(self, scores: Tensor, data_samples: DataSamples) -> List[Dict[str, Any]]:
        items = unbatch_samples(data_samples, scores.shape[0])
        for item, score in zip(items, scores.detach().float().cpu().tolist()):
            item['pred_score'] = score
        return items
