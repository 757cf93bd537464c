"""HyperIQA (Su et al., "Blindly Assess Image Quality in the Wild Guided by a Self-Adaptive Hyper
Network", CVPR 2020; official code github.com/SSL92/hyperIQA ``models.py``).

A ResNet-50 (timm, torchvision layer names) sees a ``224 x 224`` crop. Local distortion aware
(LDA) branches pool ``layer1..layer4`` into a 224-d *target input* vector; the hyper network turns
the ``layer4`` map (``7 x 7``) into the weights and biases of a per-image 4-layer target network
``224 -> 112 -> 56 -> 28 -> 14 -> 1`` (sigmoid after the first four layers), which maps the
target input to the quality score (KonIQ-10k MOS scale, about 0..100, higher is better).

Test protocol of the paper / official code: the image is resized to 512 x 384 (height x width,
torchvision ``Resize((512, 384))``, whatever its aspect) and the scores of 25 random 224 crops
are averaged; here the crops are seeded (:mod:`miqa.hvs.crops`) and their number defaults to 10,
as in the official ``demo.py`` (``num_crops=25`` is the paper's protocol at 2.5x the cost).
"""
from typing import Dict, Optional, Sequence, Tuple

import timm
import torch
import torchvision.transforms.v2.functional as TF
from torch import nn

from miqa.registry import SCORERS
from miqa.utils.types import PathLike
from miqa.vocab import IMAGENET_MEAN, IMAGENET_STD

from .base import HVSScorer, load_scorer_weight
from .converters import convert_hyperiqa
from .crops import fit_min_side, mean_crop_score

#: Per LDA branch: (channels of ResNet-50 ``layer{i}``, channels after the 1x1 conv or None,
#: side after the 7x7 pooling at 224 input).
_LDA = {'layer1': (256, 16, 8), 'layer2': (512, 32, 4), 'layer3': (1024, 64, 2), 'layer4': (2048, None, 1)}


class LDABranch(nn.Module):
    """Local distortion aware branch: optional 1x1 conv (no bias), 7x7 average pooling (stride 7),
    flatten, linear (the paper's Fig. 3)."""

    def __init__(self, in_channels: int, reduced: Optional[int], pooled: int, out_features: int):
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, reduced, 1, bias=False) if reduced else nn.Identity()
        self.pool = nn.AvgPool2d(7, stride=7)
        self.fc = nn.Linear((reduced or in_channels) * pooled * pooled, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.reduce(x)), 1))


@SCORERS.register_module(name='HyperIQA')
class HyperIQA(HVSScorer):
    """HyperIQA no-reference scorer (KonIQ-10k weights of the authors).

    Args:
        pretrained: ``True`` loads ``koniq_pretrained.pkl`` (``$MIQA_HOME/weights/``, or the path in
            ``weights``); ``False`` keeps random weights (tests only, nothing is read).
        weights: ``dict(hyperiqa_koniq=path)`` to use another copy of the file.
        num_crops: 224 crops averaged per image (official: 25 in the paper's test protocol,
            10 in ``demo.py``, the default here).
        resize: ``(height, width)`` every image is resized to first (bilinear, antialiased).
        seed: seed of the crop offsets (the same for all images of one size).
        crop_batch: crops per forward pass (memory bound; does not change the scores).
        lda_channels, target_sizes: the published architecture (16; 224 -> 112, 56, 28, 14 -> 1).
    """

    name = 'HyperIQA'
    full_reference = False
    lower_is_better = False
    weight_files = ('hyperiqa_koniq',)
    crop_size = 224
    feature_size = 7  # layer4 side at 224 input
    hyper_channels = 112

    def __init__(self, pretrained: bool = True, weights: Optional[Dict[str, PathLike]] = None,
                 num_crops: int = 10, resize: Optional[Tuple[int, int]] = (512, 384), seed: int = 0,
                 crop_batch: int = 32, lda_channels: int = 16,
                 target_sizes: Sequence[int] = (224, 112, 56, 28, 14)):
        super().__init__()
        self.num_crops, self.resize, self.seed, self.crop_batch = num_crops, resize, seed, crop_batch
        self.target_sizes = tuple(target_sizes)
        target_in, hyper = self.target_sizes[0], self.hyper_channels
        area = self.feature_size ** 2
        self.backbone = timm.create_model('resnet50', pretrained=False, features_only=True,
                                          out_indices=(1, 2, 3, 4))
        lda_out = {name: lda_channels for name in _LDA}
        lda_out['layer4'] = target_in - 3 * lda_channels  # fills the target input vector
        self.lda = nn.ModuleDict({name: LDABranch(ch, red, pooled, lda_out[name])
                                  for name, (ch, red, pooled) in _LDA.items()})
        self.hyper_in = nn.Sequential(
            nn.Conv2d(2048, 1024, 1), nn.ReLU(inplace=True), nn.Conv2d(1024, 512, 1), nn.ReLU(inplace=True),
            nn.Conv2d(512, hyper, 1), nn.ReLU(inplace=True))
        # fc1..fc4 weights: a 3x3 conv whose C x 7 x 7 output is read as (out, in); fc5: linear, pooled map
        sizes = (*self.target_sizes, 1)
        gens: Dict[str, nn.Module] = {}
        for i in range(4):
            fan = sizes[i] * sizes[i + 1]
            if fan % area:
                raise ValueError(f'target fc{i + 1}: {sizes[i + 1]} x {sizes[i]} is not divisible by {area}')
            gens[f'fc{i + 1}'] = nn.Conv2d(hyper, fan // area, 3, padding=1)
        gens['fc5'] = nn.Linear(hyper, sizes[4])
        self.target_weights = nn.ModuleDict(gens)
        self.target_biases = nn.ModuleDict({f'fc{i + 1}': nn.Linear(hyper, sizes[i + 1]) for i in range(5)})
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if pretrained:
            key = self.weight_files[0]
            state = load_scorer_weight(key, (weights or {}).get(key))
            self.load_state_dict(convert_hyperiqa(state, self.state_dict()))
        self.eval()

    def score_crops(self, crops: torch.Tensor) -> torch.Tensor:
        """Scores of ``M x 3 x 224 x 224`` crops in ``[0, 1]`` (``M``)."""
        if crops.shape[-2:] != (self.crop_size, self.crop_size):
            raise ValueError(f'HyperIQA crops must be {self.crop_size}x{self.crop_size}, '
                             f'got {tuple(crops.shape)}')
        feats = dict(zip(_LDA, self.backbone((crops - self.mean) / self.std)))
        x = torch.cat([self.lda[name](f) for name, f in feats.items()], dim=1)  # target input, M x 224
        hyper = self.hyper_in(feats['layer4'])  # M x 112 x 7 x 7
        pooled = hyper.mean(dim=(2, 3))
        sizes, m = (*self.target_sizes, 1), crops.shape[0]
        for i in range(5):
            name = f'fc{i + 1}'
            gen = self.target_weights[name]
            w = gen(hyper if i < 4 else pooled).reshape(m, sizes[i + 1], sizes[i])
            x = torch.bmm(w, x.unsqueeze(2)).squeeze(2) + self.target_biases[name](pooled)
            if i < 4:
                x = torch.sigmoid(x)
        return x.squeeze(1)

    def forward(self, distorted: torch.Tensor, reference: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = distorted
        if self.resize is not None and tuple(x.shape[-2:]) != tuple(self.resize):
            x = TF.resize(x, list(self.resize), antialias=True)
        x = fit_min_side(x, self.crop_size)  # only when resize is None or below 224
        return mean_crop_score(self.score_crops, x, self.crop_size, self.num_crops, self.seed,
                               self.crop_batch)
