"""``miqa_collate``: mmengine's ``default_collate`` for batches where some region views are absent.

``RegionView`` leaves out the view of a sample whose region token the model already holds
(:mod:`miqa.models.region_cache`), so after the first epoch a batch may have views for some
samples, or for none. ``default_collate`` would fail (or silently drop every view, when the
first sample has none); this collate stacks the views that exist, in batch order, and records
which samples they belong to in ``data_samples['has_region_view']`` (B bools), which
``RAMIQA`` reads. Batches without ``RegionView`` are exactly ``default_collate``'s.
"""
from typing import Any, Sequence

from mmengine.dataset import default_collate

from miqa.registry import FUNCTIONS
from miqa.utils.shared_keys import shared_key_index


@FUNCTIONS.register_module()
def miqa_collate(data_batch: Sequence[dict]) -> Any:
    """``default_collate`` of ``data_batch``, with ``region_inputs`` stacked over the samples
    that have one (absent when none has) and ``data_samples['has_region_view']``."""
    index = shared_key_index(create=False)
    if index is not None:
        index.ready = True  # this process batches samples without views: RegionView may skip them
    if not data_batch or not isinstance(data_batch[0], dict) or not any(
            'region_inputs' in d or 'region_key' in d.get('data_samples', {}) for d in data_batch):
        return default_collate(data_batch)
    views = [d.get('region_inputs') for d in data_batch]
    batch = default_collate([{k: v for k, v in d.items() if k != 'region_inputs'} for d in data_batch])
    present = [v for v in views if v is not None]
    if present:
        batch['region_inputs'] = default_collate(present)
    # a list, not a tensor: it stays on the host (the model reads it before any device work)
    batch['data_samples']['has_region_view'] = [v is not None for v in views]
    return batch
