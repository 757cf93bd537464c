"""Which variants a build renders for each source: all of them, or a stratified subset.

MIQD-2.5M renders all 25 variants (5 uniform, 10 ROI-dominated, 10 background-dominated) of
each of the 10 distortions for every source (spec §2). A small database trades variants per
source for sources: what decides how well a correlation is measured is the number of
independent photos, and images of one photo are strongly correlated (their label shares the
photo's recognisability). ``subset=dict(distortions=D, per_distortion=K)`` keeps, per source,
``D`` of the configured distortions and ``K`` variants of each, stratified:

- regions cycle ``UD, ROI, BG`` (so ``K = 3`` gives one of each);
- uniform levels are dealt from a per-source permutation of 1..5, so consecutive distortions of
  a source get different levels; ROI/BG pairs ``(fg, bg)`` are drawn uniformly from their ten;
- the draw is seeded by the source's seed (a separate stream from the distortion settings), so
  shards, resumed runs and rebuilds choose the same variants.
"""
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from miqa.datasets.naming import REGIONS, VARIANTS

Variant = Tuple[str, int, int]   # (region, fg_level, bg_level), a row of naming.VARIANTS
_BY_REGION: Dict[str, List[Variant]] = {r: [v for v in VARIANTS if v[0] == r] for r in REGIONS}
_STREAM = 0x5EED  # keeps this draw independent of the seeds the distortions use


def check_subset(subset: Optional[Mapping[str, int]], num_distortions: int) -> Optional[Dict[str, int]]:
    """``subset`` with its defaults, checked (``None``: every variant of every distortion)."""
    if subset is None:
        return None
    unknown = set(subset) - {'distortions', 'per_distortion'}
    if unknown:
        raise ValueError(f'variants: unknown keys {sorted(unknown)}; known: distortions, per_distortion')
    out = dict(distortions=int(subset.get('distortions', num_distortions)),
               per_distortion=int(subset.get('per_distortion', len(VARIANTS))))
    if not 1 <= out['distortions'] <= num_distortions:
        raise ValueError(f'variants.distortions must be in 1..{num_distortions}, got {out["distortions"]}')
    if not 1 <= out['per_distortion'] <= len(VARIANTS):
        raise ValueError(f'variants.per_distortion must be in 1..{len(VARIANTS)}, '
                         f'got {out["per_distortion"]}')
    return out


def select_variants(distortions: Sequence[str], seed: int,
                    subset: Optional[Mapping[str, int]] = None) -> Dict[str, Tuple[Variant, ...]]:
    """Distortion -> the variants to render for the source seeded ``seed`` (module doc), in
    the official order; every variant of every distortion when ``subset`` is None."""
    subset = check_subset(subset, len(distortions))
    if subset is None or (subset['distortions'] == len(distortions)
                          and subset['per_distortion'] == len(VARIANTS)):
        return {d: VARIANTS for d in distortions}
    rng = np.random.default_rng([_STREAM, seed])
    chosen = sorted(rng.choice(len(distortions), subset['distortions'], replace=False).tolist())
    levels = iter(np.concatenate([rng.permutation(5) + 1 for _ in range(len(distortions) * len(VARIANTS))]))
    out = {}
    for index in chosen:
        picked: List[Variant] = []
        for k in range(subset['per_distortion']):
            pool = [v for v in _BY_REGION[REGIONS[k % len(REGIONS)]] if v not in picked]
            if not pool:  # the region is exhausted: take from all that is left
                pool = [v for v in VARIANTS if v not in picked]
            if pool[0][0] == 'UD' and len(pool) == len(_BY_REGION['UD']):
                level = int(next(levels))
                picked.append(('UD', level, level))
            else:
                picked.append(pool[int(rng.integers(len(pool)))])
        out[distortions[index]] = tuple(v for v in VARIANTS if v in picked)
    return out
