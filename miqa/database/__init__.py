"""Database construction (spec §3): sources, ROI masks, region-aware fusion, labelling machines
and the MIQD-style builder.

``builder`` (:func:`build_database`, ``tools/build_miqd.py`` / :mod:`.cli`) runs the jobs of
``settings``, ``collectors``, ``render``, ``labelling``, ``pool``, ``manifest`` and
``splitting``; ``tasks`` says what differs per task and ``coco`` reads, writes and scores COCO
annotations. ``masks``: salient-object masks; ``fusion``: soft-mask fusion and the 25 official
variants per distortion. The downstream models and the labeller live in ``machines``,
``detectors`` (with the ``tfjs`` graph interpreter) and ``labels``; ``sources`` the MIQD-mini
photos. Names are imported on first use; ``miqa.registry.SOURCES`` imports the source
collectors (``'folder'``, ``'list'``, ``'miqd_mini'``) on its first look-up.
"""
from miqa.utils.lazy import lazy_exports

_EXPORTS = {
    'SOURCES': 'collectors', 'collect_sources': 'collectors',
    'BuildSummary': 'builder', 'build_database': 'builder',
    'BuildConflict': 'manifest', 'finalize_database': 'manifest',
    'database_status': 'ensure', 'ensure_database': 'ensure',
    **dict.fromkeys(('SoftMask', 'fuse', 'region_variants', 'soft_mask'), 'fusion'),
    **dict.fromkeys(('MASK_SOURCES', 'source_mask'), 'masks'),
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
