"""Database construction (spec §3): ROI masks, region-aware fusion and the MIQD-style builder.

``masks``: salient-object masks (file, spectral-residual saliency, centre prior);
``fusion``: soft-mask fusion and the 25 official variants per distortion;
``builder``: sources -> images, labels, splits and manifest in the official layout
(``tools/build_miqd.py``). The downstream models and the labeller live in ``machines`` and
``labels``; ``sources`` the MIQD-mini photos. Importing this package registers the source
collectors in ``miqa.registry.SOURCES`` (``'folder'``, ``'list'``, ``'miqd_mini'``).
"""
from . import sources  # noqa: F401  (registers the 'miqd_mini' collector)
from .builder import SOURCES, BuildConflict, BuildSummary, build_database, collect_sources, finalize_database
from .ensure import database_status, ensure_database
from .fusion import SoftMask, fuse, region_variants, soft_mask
from .masks import MASK_SOURCES, source_mask

__all__ = ['SOURCES', 'BuildConflict', 'BuildSummary', 'MASK_SOURCES', 'SoftMask', 'build_database',
           'collect_sources', 'database_status', 'ensure_database', 'finalize_database', 'fuse',
           'region_variants', 'soft_mask', 'source_mask']
