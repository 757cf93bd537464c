"""The zero-training reference: a classifier's confidence on the image (miqa.hvs.confidence)."""
import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import softmax
from torch import nn

from miqa.database.machines import ClassifierMachine
from miqa.hvs import build_scorer
from miqa.hvs.confidence import ClassifierConfidence


def _machine(seed: int = 0) -> ClassifierMachine:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 10))
    return ClassifierMachine(model, 'tiny', input_size=32, device='cpu')


@pytest.mark.parametrize('statistic', ['max_prob', 'neg_entropy', 'margin'])
def test_statistics_of_the_machine_softmax(statistic):
    machine = _machine()
    scorer = ClassifierConfidence(machine, statistic)
    images = [(np.random.default_rng(i).random((40, 50, 3)) * 255).astype(np.uint8) for i in range(3)]
    probs = machine.predict(images)                       # the machine's own uint8 path
    expected = {'max_prob': probs.max(1), 'neg_entropy': -stats.entropy(probs, axis=1),
                'margin': np.sort(probs, 1)[:, -1] - np.sort(probs, 1)[:, -2]}[statistic]
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    np.testing.assert_allclose(scorer.score(batch).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert not scorer.full_reference and scorer.name == f'tiny {statistic}'
    assert np.allclose(probs.sum(1), 1) and softmax(np.zeros(3)).sum() == pytest.approx(1)


def test_registered_lite0_msp_and_errors():
    scorer = build_scorer('Lite0-MSP')
    x = torch.rand(2, 3, 60, 80)
    scores = scorer.score(x)
    assert scores.shape == (2,) and ((scores > 0) & (scores <= 1)).all()
    assert scorer.machine.variant == 'lite0' and scorer.name == 'Lite0-MSP'
    with pytest.raises(KeyError, match='statistic'):
        ClassifierConfidence(_machine(), 'entropy_of_doom')


def test_ra_miqa_confidence_inputs_are_the_zero_training_scores():
    """RA-MIQA's confidence inputs are Lite0-MSP and its siblings on the same view (two loaders of
    the same weights: the backbone table's and the labelling machines')."""
    from miqa.models import RAMIQA

    names = ('max_prob', 'neg_entropy', 'margin')
    model = RAMIQA(backbone=dict(name='efficientnet_lite0', frozen_stages='all', stem_cache=False),
                   use_region_token=False, confidence_inputs=names).eval()
    batch = torch.rand(2, 3, 90, 120)
    scorers = {n: ClassifierConfidence(dict(type='EfficientNetLite', variant='lite0'), n) for n in names}
    machine = scorers['max_prob'].machine
    view = machine.geometry(batch)
    with torch.no_grad():
        appended = model._pooled_features((view - machine.mean) / machine.std)[:, -len(names):]
    expected = torch.stack([scorers[n].score(batch) for n in names], dim=1)
    torch.testing.assert_close(appended, expected, rtol=1e-4, atol=1e-5)
    assert model.head[0].in_features == 1280 + len(names)
    assert not any(p.requires_grad for p in model.confidence_classifier.parameters())
    assert 'confidence_classifier.weight' in model.state_dict()
    with pytest.raises(ValueError, match='late'):
        RAMIQA(backbone=dict(name='vit_small_patch16_224', pretrained=False), pretrained=False,
               confidence_inputs=('max_prob',))
    with pytest.raises(KeyError, match='unknown'):
        RAMIQA(backbone=dict(name='efficientnet_lite0', pretrained=False), use_region_token=False,
               confidence_inputs=('certainty',))
