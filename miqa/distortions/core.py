"""Registry use, input conversion, PSNR ranking of candidates, the public entry point.

MIQD-2.5M recipe (spec §3): each distortion type has 12 candidate parameter
settings (ImageNet-C corruptions, Hendrycks & Dietterich 2019, "Benchmarking
Neural Network Robustness to Common Corruptions and Perturbations", extended
from 5 severities to 12). All 12 are applied to the source image, sorted by
PSNR against it (best first; ties keep table order) and ranks 1, 5, 8, 10, 12
become levels 1-5. Candidate ``i`` of type ``name`` draws its randomness from
``default_rng(SeedSequence([seed, crc32(name), i]))``, so a seed gives
byte-identical output across runs, processes and OpenCV thread counts (for
the same NumPy/OpenCV builds; other builds may differ in the last bit).

Inputs may be grayscale, RGBA, uint16, bool or float in [0, 1] (the rules of
:func:`miqa.utils.image.to_rgb_uint8`, shared with the API and the dataset: NaN refused);
outputs are always uint8 H x W x 3 of the input's size. Any size from 1 x 1
up works: kernels, zooms and shuffles are clamped to the image.
"""
import operator
import zlib
from typing import Any, Callable, List, Protocol, Sequence, Tuple

import cv2
import numpy as np

from miqa.registry import DISTORTIONS
from miqa.utils.image import to_rgb_uint8

NUM_CANDIDATES = 12
LEVEL_RANKS = (1, 5, 8, 10, 12)  # 1-based PSNR ranks kept as levels 1..5
CATEGORIES = ('digital', 'blur', 'environmental', 'noise')


class DistortionFn(Protocol):
    """A registered distortion: ``fn(img uint8 HxWx3, param, rng) -> uint8 HxWx3``."""

    params: Tuple[Any, ...]  # the 12 candidate settings, mild -> severe
    category: str

    def __call__(self, img: np.ndarray, param: Any, rng: np.random.Generator) -> np.ndarray: ...


def register_distortion(params: Sequence[Any], category: str) -> Callable[[Callable], DistortionFn]:
    """Register ``fn`` in ``DISTORTIONS`` under its own name with its 12 candidate settings."""
    if len(params) != NUM_CANDIDATES:
        raise ValueError(f'a distortion needs {NUM_CANDIDATES} candidate settings, got {len(params)}')
    if category not in CATEGORIES:
        raise ValueError(f'category must be one of {CATEGORIES}, got {category!r}')

    def wrap(fn: Callable) -> DistortionFn:
        fn.params = tuple(params)  # type: ignore[attr-defined]
        fn.category = category  # type: ignore[attr-defined]
        DISTORTIONS.register_module(module=fn)
        return fn  # type: ignore[return-value]

    return wrap


def get_distortion(name: str) -> DistortionFn:
    """The registered distortion ``name``; ``KeyError`` with close names when unknown."""
    if not isinstance(name, str):
        raise TypeError(f'distortion name must be a str, got {type(name).__name__}')
    # the package __init__ registers all types, so a direct look-up suffices; it also keeps the
    # builder's workers light (mmengine's lazy import path loads torch, about 0.5 GB per process)
    fn = DISTORTIONS.module_dict.get(name)
    if fn is None:
        fn = DISTORTIONS.get(name)  # raises KeyError with the closest names
    if fn is None:  # scoped keys ('x.y') bypass the did-you-mean of miqa's Registry
        raise KeyError(f'{name!r} is not a registered distortion: {", ".join(distortion_names())}')
    return fn


def distortion_names() -> List[str]:
    """Registered distortion names, sorted."""
    return sorted(DISTORTIONS.module_dict)


# ---------------------------------------------------------------- float arithmetic
def as_float01(img: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1] (a new array)."""
    return img.astype(np.float32) * np.float32(1.0 / 255.0)


# ---------------------------------------------------------------- candidates and ranking
def _seed_int(seed: int) -> int:
    seed = operator.index(seed)
    if seed < 0:
        raise ValueError(f'seed must be >= 0, got {seed}')
    return seed


def candidate_rng(seed: int, name: str, index: int) -> np.random.Generator:
    """The generator of candidate ``index`` of distortion ``name`` for ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([_seed_int(seed), zlib.crc32(name.encode()), index]))


def candidates(image: Any, name: str, seed: int = 0) -> List[np.ndarray]:
    """The 12 candidates of distortion ``name`` in table order (mild -> severe settings)."""
    fn = get_distortion(name)
    src = to_rgb_uint8(image)
    seed = _seed_int(seed)
    return [fn(src, param, candidate_rng(seed, name, i)) for i, param in enumerate(fn.params)]


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    """PSNR in dB of two uint8 images of the same shape; ``inf`` when identical."""
    sse = cv2.norm(reference, image, cv2.NORM_L2SQR)
    if sse == 0:
        return float('inf')
    return float(10.0 * np.log10(255.0 ** 2 * reference.size / sse))


def rank_by_psnr(source: np.ndarray, images: Sequence[np.ndarray]) -> List[int]:
    """Indices of ``images`` sorted by PSNR against ``source``, highest first (stable: ties by index)."""
    scores = [psnr(source, im) for im in images]
    return sorted(range(len(images)), key=lambda i: -scores[i])


def distortion_levels(image: Any, name: str, seed: int = 0) -> List[np.ndarray]:
    """Levels 1-5 of distortion ``name``: the 12 candidates computed once, ranks 1, 5, 8, 10, 12 kept."""
    src = to_rgb_uint8(image)
    cands = candidates(src, name, seed)
    order = rank_by_psnr(src, cands)
    return [cands[order[rank - 1]] for rank in LEVEL_RANKS]


def apply_distortion(image: Any, name: str, level: int, seed: int = 0) -> np.ndarray:
    """Distort ``image`` with ``name`` at MIQD ``level`` (1-5): uint8 H x W x 3, same H x W as input.

    Computes all 12 candidates (the ranking needs them); to get several levels
    call :func:`distortion_levels` once instead.
    """
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 1 <= level <= 5:
        raise ValueError(f'level must be an int in 1..5, got {level!r}')
    return distortion_levels(image, name, seed)[int(level) - 1]
