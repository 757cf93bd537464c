"""A classifier's confidence in its own answer, from its softmax probabilities.

The maximum softmax probability (Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and
Out-of-Distribution Examples", ICLR 2017), the negative entropy of the softmax and the margin
between the two largest probabilities. Used as a zero-training quality score
(:class:`miqa.hvs.confidence.ClassifierConfidence`) and as extra inputs of RA-MIQA's head
(``RAMIQA(confidence_inputs=...)``).
"""
from typing import Callable, Dict, Sequence

import torch
from torch import Tensor

#: softmax probabilities (N, C) -> confidence (N,), higher = more confident.
STATISTICS: Dict[str, Callable[[Tensor], Tensor]] = {
    'max_prob': lambda p: p.max(-1).values,
    'neg_entropy': lambda p: (p * p.clamp_min(1e-12).log()).sum(-1),
    'margin': lambda p: (lambda top: top[:, 0] - top[:, 1])(p.topk(2, dim=-1).values),
}


def check_statistics(names: Sequence[str]) -> None:
    """Raise ``KeyError`` naming the known statistics when one of ``names`` is not one."""
    unknown = [n for n in names if n not in STATISTICS]
    if unknown:
        raise KeyError(f'confidence statistic(s) {unknown} unknown; choose from {sorted(STATISTICS)}')


def confidence_statistics(logits: Tensor, names: Sequence[str]) -> Tensor:
    """(N, len(names)) statistics of ``softmax(logits)``, in the order of ``names``."""
    probs = logits.float().softmax(-1)
    return torch.stack([STATISTICS[n](probs) for n in names], dim=-1)
