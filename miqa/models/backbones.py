"""Backbones: a table of name -> builder (spec §5), local pretrained weights, head replacement.

Each entry builds the ImageNet-1k classifier with random weights, loads the local weight
file chosen by ``pretrained`` (:mod:`miqa.hub`) into that *unchanged*
architecture, then replaces its classifier: ``num_outputs=1`` gives the baselines'
``Linear(features, 1)`` under the original module name (torchvision ``fc`` /
``classifier``, timm ``head``, EfficientNet-Lite ``_fc``) so released checkpoints load;
``num_outputs=0`` gives a pooled-feature extractor (classifier -> ``Identity``).

Names: the keys of :data:`BACKBONES`, plus ``timm/<any timm model>`` (no default weight file).
"""
import difflib
from dataclasses import dataclass
from functools import partial
from typing import Callable, Dict, Mapping, Optional, Tuple, Union

import timm
from torch import Tensor, nn
from torchvision import models as tvm

from miqa.hub.loading import load_state_dict_file
from miqa.hub.lookup import Pretrained, resolve_weights

from .converters import load_timm_vit
from .weights import load_strict


def _timm(name: str, **kwargs) -> nn.Module:
    return timm.create_model(name, pretrained=False, **kwargs)


def _efficientnet_lite(name: str, **kwargs) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet
    return EfficientNet.from_name(name, **kwargs)  # never from_pretrained: it downloads


@dataclass(frozen=True)
class BackboneEntry:
    """How to build one backbone.

    Attributes:
        factory: builds the ImageNet classifier with random weights (``**kwargs`` pass through).
        head: attribute holding the classifier (replaced as a whole); ``None`` for timm
            models, which use ``reset_classifier``.
        weights: key of the default file in the weight table (:data:`miqa.hub.WEIGHTS`).
        load: loads a state dict into the model built by ``factory``.
        no_dropout: attributes set to ``Identity`` (dropout before the classifier).
    """

    factory: Callable[..., nn.Module]
    head: Optional[str]
    weights: Optional[str]
    load: Callable[[nn.Module, Mapping[str, Tensor]], None] = load_strict
    no_dropout: Tuple[str, ...] = ()


BACKBONES: Dict[str, BackboneEntry] = {
    'resnet18': BackboneEntry(partial(tvm.resnet18, weights=None), 'fc', 'resnet18'),
    'resnet50': BackboneEntry(partial(tvm.resnet50, weights=None), 'fc', 'resnet50'),
    'efficientnet_b1': BackboneEntry(partial(tvm.efficientnet_b1, weights=None), 'classifier',
                                     'efficientnet_b1'),
    'efficientnet_b5': BackboneEntry(partial(tvm.efficientnet_b5, weights=None), 'classifier',
                                     'efficientnet_b5'),
    'vit_small_patch16_224': BackboneEntry(partial(_timm, 'vit_small_patch16_224'), None,
                                           'vit_small_patch16_224', load=load_timm_vit),
    'efficientnet_lite0': BackboneEntry(partial(_efficientnet_lite, 'efficientnet-lite0'), '_fc',
                                        'efficientnet_lite0', no_dropout=('_dropout',)),
}
_TIMM_PREFIX = 'timm/'


def _entry(name: str) -> BackboneEntry:
    if name in BACKBONES:
        return BACKBONES[name]
    if name.startswith(_TIMM_PREFIX):
        return BackboneEntry(partial(_timm, name[len(_TIMM_PREFIX):]), None, None)
    close = difflib.get_close_matches(name, list(BACKBONES), n=3, cutoff=0.5)
    raise KeyError(f'unknown backbone {name!r}.' + (f' Did you mean: {", ".join(close)}?' if close else '')
                   + f' Known: {", ".join(BACKBONES)}, or timm/<timm model name>.')


def _last_linear_in(module: nn.Module) -> int:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f'no Linear classifier found in {module}')
    return linears[-1].in_features


def backbone_cfg(backbone: Union[str, Mapping], pretrained: Pretrained = None) -> Dict:
    """Normalise a model's ``backbone`` argument (a name or a dict) into build_backbone kwargs.

    ``pretrained`` at the model level (not ``None``) overrides the backbone's own switch;
    the backbone's default is ``True`` (its ImageNet file), as in the paper.
    """
    cfg = dict(name=backbone) if isinstance(backbone, str) else dict(backbone)
    cfg.setdefault('pretrained', True)
    if pretrained is not None:
        cfg['pretrained'] = pretrained
    return cfg


def build_backbone(name: str, pretrained: Pretrained = False, num_outputs: int = 0,
                   **kwargs) -> Tuple[nn.Module, int]:
    """Build backbone ``name`` and return ``(model, feature_dim)``.

    Args:
        name: a :data:`BACKBONES` key or ``timm/<name>``.
        pretrained: ``False``/``None`` random, ``True`` the default local file, or a path.
        num_outputs: 0 -> pooled features (classifier removed); n -> ``Linear(features, n)``.
        **kwargs: passed to the architecture (e.g. timm ``img_size``, ``depth``, ``drop_path_rate``).
    """
    model, feat_dim, _ = build_backbone_and_classifier(name, pretrained, num_outputs, **kwargs)
    return model, feat_dim


def build_backbone_and_classifier(name: str, pretrained: Pretrained = False, num_outputs: int = 0,
                                  **kwargs) -> Tuple[nn.Module, int, nn.Module]:
    """As :func:`build_backbone`, plus the ImageNet classifier it replaced (pooled features ->
    1000 logits; its weights from the same file)."""
    entry = _entry(name)
    file = resolve_weights(pretrained, entry.weights)  # fail fast, before building
    model = entry.factory(**kwargs)
    if file is not None:
        entry.load(model, load_state_dict_file(file))
    for attr in entry.no_dropout:
        setattr(model, attr, nn.Identity())
    if entry.head is None:  # timm
        feat_dim = getattr(model, 'head_hidden_size', model.num_features)  # pooled output width
        classifier = model.get_classifier()
        model.reset_classifier(num_outputs)
    else:
        classifier = getattr(model, entry.head)
        feat_dim = _last_linear_in(classifier)
        setattr(model, entry.head, nn.Linear(feat_dim, num_outputs) if num_outputs else nn.Identity())
    return model, feat_dim, classifier
