"""One source's images (spec §3 steps 1-2): the pristine JPEG and the fused variants as PNGs.

Read, downscale (short side at most ``max_short_side``, ``INTER_AREA``), store as the pristine
JPEG (``jpeg_quality``) and use the *decoded* JPEG as the reference of everything after; ROI
mask (:mod:`miqa.database.masks`); per distortion the 5 levels (seeded by
``source_seed(seed, src_id)``) and the fused region-aware variants (:mod:`miqa.database.fusion`),
all written atomically. Independent of every other source, so shards and resumed runs give the
same bytes.
"""
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import cv2
import numpy as np

from miqa.datasets.naming import format_name
from miqa.utils.image import read_rgb
from miqa.utils.io import atomic_write_bytes

from .collectors import source_seed
from .fusion import region_variants, soft_mask
from .masks import source_mask
from .settings import Plan, plain
from .tasks import task_spec
from .variants import select_variants

MIN_SIDE = 8          # smaller sources are reported as unreadable


@dataclass
class Prepared:
    """A source after its images are written: what the labeller and the record need."""
    src_id: str
    record: Dict[str, Any]
    source: Optional[np.ndarray] = None                 # the decoded pristine JPEG
    variants: Optional[Dict[str, np.ndarray]] = None    # file name -> image, official order
    annotation: Any = None


def _encode(ext: str, rgb: np.ndarray, params: Sequence[int]) -> bytes:
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]), list(params))
    if not ok:
        raise RuntimeError(f'cv2.imencode({ext}) failed for an image of shape {rgb.shape}')
    return buf.tobytes()


def downscale(image: np.ndarray, max_short_side: Optional[int]) -> np.ndarray:
    """``image`` resized (``INTER_AREA``, aspect kept, sides rounded) so its short side is at most
    ``max_short_side``; unchanged when already small enough or when ``max_short_side`` is None."""
    h, w = image.shape[:2]
    if not max_short_side or min(h, w) <= max_short_side:
        return image
    scale = max_short_side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def prepare_source(plan: Plan, src: Mapping[str, Any], keep_images: bool = True) -> Prepared:
    """Write the pristine JPEG and the 25 variants per distortion of one source (spec §3 steps 1-2).

    Unreadable (or smaller than ``MIN_SIDE``) sources give a record with ``status='unreadable'``.
    """
    src_id = src['src_id']
    record = dict(src_id=src_id, path=src['path'], group=src['group'], category=src.get('category', ''),
                  seed=source_seed(plan.seed, src_id))
    extra = {k: v for k, v in src.items() if k not in record and k != 'annotation'}
    if extra:  # provenance given by the collector (package, licence ...)
        record['info'] = plain(extra)
    try:
        raw = read_rgb(src['path'])  # RGB uint8 (grayscale, alpha, 16-bit handled)
    except OSError as err:  # the reason (truncated, corrupt, too many pixels ...) goes to the manifest
        return Prepared(src_id, dict(record, status='unreadable', error=str(err)))
    if min(raw.shape[:2]) < MIN_SIDE:
        return Prepared(src_id, dict(record, status='unreadable',
                                     error=f'smaller than {MIN_SIDE} px ({raw.shape[:2]})'))
    small = downscale(raw, plan.max_short_side)
    jpeg = _encode('.jpg', small, [cv2.IMWRITE_JPEG_QUALITY, plan.jpeg_quality])
    source = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = source.shape[:2]
    mask, mask_from = source_mask(source, plan.mask_files.get(src_id)
                                  or plan.mask_files.get(Path(src['path']).stem))
    soft = soft_mask(mask, **plan.fusion)

    folder = plan.layout.images / src_id
    folder.mkdir(parents=True, exist_ok=True)
    plan.layout.src_images.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(str(plan.layout.src_images / f'{src_id}{plan.layout.src_ext}'), jpeg)
    png = [cv2.IMWRITE_PNG_COMPRESSION, plan.png_compression, cv2.IMWRITE_PNG_STRATEGY, plan.png_strategy]
    variants: Dict[str, np.ndarray] = {}
    chosen = select_variants(plan.distortions, record['seed'], plan.variants)
    for distortion, rows in chosen.items():
        images = region_variants(source, distortion, record['seed'], soft, src_id, variants=rows)
        for name, image in images.items():
            atomic_write_bytes(str(folder / name), _encode('.png', image, png))
        if keep_images:
            variants.update(images)
    expected = {format_name(src_id, d, *v) for d, rows in chosen.items() for v in rows}
    for stale in set(os.listdir(folder)) - expected:  # leftovers of a killed run
        os.unlink(folder / stale)
    sx, sy = w / raw.shape[1], h / raw.shape[0]
    annotation = task_spec(plan.task).scale_annotation(src.get('annotation'), sx, sy)
    record.update(status='finished', mask_source=mask_from, size=[h, w], original_size=list(raw.shape[:2]),
                  mask_coverage=round(float(mask.mean()), 6))
    if annotation is not None:
        record['annotation'] = plain(annotation)
    return Prepared(src_id, record, source if keep_images else None, variants if keep_images else None,
                    annotation)


__all__ = ['MIN_SIDE', 'Prepared', 'downscale', 'prepare_source']
