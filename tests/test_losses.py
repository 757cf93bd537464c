"""Losses of miqa.models.losses against closed forms."""
import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from miqa.registry import MODELS  # noqa: E402

PRED = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.6, 0.2, 0.9, 0.5], dtype=torch.float64)
TARGET = torch.tensor([0.0, 0.5, 0.3, 0.7, 0.9, 0.1, 1.0, 0.4], dtype=torch.float64)


def _np(t):
    return t.numpy()


@pytest.mark.parametrize('cfg, expected', [
    (dict(type='MSELoss'), lambda p, t: np.mean((p - t) ** 2)),
    (dict(type='L1Loss', loss_weight=2.0), lambda p, t: 2 * np.mean(np.abs(p - t))),
    (dict(type='SmoothL1Loss', beta=0.1),
     lambda p, t: np.mean(np.where(np.abs(p - t) < 0.1, 0.5 * (p - t) ** 2 / 0.1, np.abs(p - t) - 0.05))),
    (dict(type='PLCCLoss', eps=0.0), lambda p, t: 1 - np.corrcoef(p, t)[0, 1]),
    (dict(type='PLCCLoss', mse_weight=0.5, eps=0.0),
     lambda p, t: 1 - np.corrcoef(p, t)[0, 1] + 0.5 * np.mean((p - t) ** 2)),
])
def test_closed_forms(cfg, expected):
    loss = MODELS.build(cfg)
    assert loss(PRED, TARGET).item() == pytest.approx(expected(_np(PRED), _np(TARGET)), rel=1e-9)


def test_pairwise_ranking_closed_form():
    p, t = _np(PRED), _np(TARGET)
    margin = 0.1
    terms = [max(0.0, margin - (p[i] - p[j])) for i in range(8) for j in range(8) if t[i] > t[j]]
    loss = MODELS.build(dict(type='PairwiseRankingLoss', margin=margin))
    assert loss(PRED, TARGET).item() == pytest.approx(np.mean(terms), rel=1e-9)


def test_correlation_losses_are_scale_free_and_degenerate_safely():
    plcc = MODELS.build(dict(type='PLCCLoss'))
    assert plcc(3 * TARGET + 1, TARGET).item() == pytest.approx(0.0, abs=1e-7)
    rank = MODELS.build(dict(type='PairwiseRankingLoss'))
    assert rank(TARGET * 5, TARGET).item() == 0.0
    one = torch.tensor([0.3], requires_grad=True)
    for loss in (plcc, rank):  # a batch without signal gives a zero, differentiable loss
        value = loss(one, torch.tensor([0.5]))
        value.backward()
        assert value.item() == 0.0


def test_plcc_gradient_improves_correlation():
    pred = PRED.clone().float().requires_grad_(True)
    loss = MODELS.build(dict(type='PLCCLoss'))
    before = loss(pred, TARGET.float())
    before.backward()
    with torch.no_grad():
        after = loss(pred - 0.1 * pred.grad, TARGET.float())
    assert after < before


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match='differ in size'):
        MODELS.build(dict(type='MSELoss'))(torch.zeros(3), torch.zeros(4))
