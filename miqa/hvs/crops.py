"""Test-time crop averaging of the no-reference scorers (HyperIQA, MANIQA).

Both published test protocols score random ``224 x 224`` crops and average the crop scores
(HyperIQA: 25 crops of the image resized to 512 x 384; MANIQA: 20 crops of the full image).
Here the crop offsets come from a generator seeded with ``seed``: they depend only on the
image size, so a batch scores exactly as its images one by one, and runs are repeatable.
"""
from typing import Callable, List, Tuple

import torch
import torch.nn.functional as F


def crop_offsets(height: int, width: int, size: int, num: int, seed: int) -> List[Tuple[int, int]]:
    """``num`` ``(top, left)`` offsets of ``size x size`` crops drawn uniformly (as torchvision's
    ``RandomCrop``) from a ``height x width`` image by a generator seeded with ``seed``."""
    if height < size or width < size:
        raise ValueError(f'a {size}x{size} crop does not fit a {height}x{width} image')
    if num < 1:
        raise ValueError(f'num_crops must be >= 1, got {num}')
    gen = torch.Generator().manual_seed(seed)
    tops = torch.randint(0, height - size + 1, (num,), generator=gen).tolist()
    lefts = torch.randint(0, width - size + 1, (num,), generator=gen).tolist()
    return list(zip(tops, lefts))


def fit_min_side(images: torch.Tensor, size: int) -> torch.Tensor:
    """Upsample (bilinear, aspect kept) images whose short side is below ``size``; others unchanged."""
    h, w = images.shape[-2:]
    if min(h, w) >= size:
        return images
    scale = size / min(h, w)
    new = (max(size, round(h * scale)), max(size, round(w * scale)))
    return F.interpolate(images, size=new, mode='bilinear', align_corners=False)


def mean_crop_score(score_crops: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, size: int,
                    num: int, seed: int, chunk: int) -> torch.Tensor:
    """Mean over ``num`` seeded crops of ``score_crops`` (``M x 3 x size x size`` -> ``M`` scores).

    Crops go through ``score_crops`` at most ``chunk`` at a time (memory bound), image-major.
    Returns ``N`` scores.
    """
    n, _, h, w = images.shape
    offsets = crop_offsets(h, w, size, num, seed)
    pairs = [(i, t, left) for i in range(n) for t, left in offsets]
    scores = []
    for start in range(0, len(pairs), max(1, chunk)):
        crops = torch.stack([images[i, :, t:t + size, left:left + size]
                             for i, t, left in pairs[start:start + chunk]])
        scores.append(score_crops(crops).reshape(-1))
    return torch.cat(scores).view(n, num).mean(dim=1)
