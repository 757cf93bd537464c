"""A classifier's confidence in its own answer, as a no-reference, zero-training quality score.

The baseline a practitioner tries first: run a classifier on the (degraded) image and take how
sure it is — the maximum softmax probability (Hendrycks & Gimpel, "A Baseline for Detecting
Misclassified and Out-of-Distribution Examples", ICLR 2017), the negative entropy of the
softmax, or the margin between the two largest probabilities. No reference image, no training.
Used as a reference row beside the HVS metrics; the classifier must not be one of the machines
that labelled the database (MIQD-mini is labelled by EfficientNet-Lite1 and Lite2, so
``Lite0-MSP`` uses Lite0).
"""
from typing import Any, Mapping, Optional, Union

import torch

from miqa.models.confidence import check_statistics, confidence_statistics
from miqa.registry import SCORERS

from .base import HVSScorer


@SCORERS.register_module(name='ClassifierConfidence')
class ClassifierConfidence(HVSScorer):
    """Confidence of a classifier machine (``miqa.registry.MACHINES``) on the image itself.

    Args:
        machine: a classifier machine config or instance (its own input geometry and
            normalisation are used); default EfficientNet-Lite0.
        statistic: a key of :data:`miqa.models.confidence.STATISTICS`.
        name: the name used in reports.
    """

    full_reference = False

    def __init__(self, machine: Union[Mapping[str, Any], Any, None] = None, statistic: str = 'max_prob',
                 name: Optional[str] = None) -> None:
        super().__init__()
        machine = machine if machine is not None else dict(type='EfficientNetLite', variant='lite0')
        from miqa.database.machines import build_machine

        check_statistics([statistic])
        self.machine = build_machine(dict(machine, device='cpu') if isinstance(machine, Mapping) else machine)
        if self.machine.task != 'cls':
            raise ValueError(f'{self.machine.name} is a {self.machine.task} machine, not a classifier')
        self.model = self.machine.model  # a submodule, so .to(device) moves it
        self.statistic = statistic
        self.name = name or f'{self.machine.name} {statistic}'

    def forward(self, distorted: torch.Tensor, reference: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.machine.geometry(distorted)
        mean, std = self.machine.mean.to(x.device), self.machine.std.to(x.device)
        return confidence_statistics(self.model((x - mean) / std), [self.statistic])[:, 0]


@SCORERS.register_module(name='Lite0-MSP')
class Lite0MSP(ClassifierConfidence):
    """EfficientNet-Lite0's maximum softmax probability (not a MIQD-mini labeller)."""

    name = 'Lite0-MSP'

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(dict(type='EfficientNetLite', variant='lite0'), 'max_prob', 'Lite0-MSP', **kwargs)
