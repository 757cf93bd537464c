"""The weight hub: every weight file miqa knows, one lookup, one checksum store, one download,
two loaders. Models, HVS scorers, labelling machines, detectors and the model zoo ask here.

- :mod:`~miqa.hub.table`: the table (``weights.csv``: backbones, region encoders, labelling
  machines, HVS scorers, detectors, zoo checkpoints) and ``$MIQA_HOME/weights``;
- :mod:`~miqa.hub.lookup`: explicit path -> ``$MIQA_HOME/weights/<file>`` -> installed pip package
  copy, and the one missing-file message;
- :mod:`~miqa.hub.checksums`: :func:`verify` (pinned, published, or trusted on first use) and the
  store ``$MIQA_HOME/weights/sha256.json``;
- :mod:`~miqa.hub.download`: :func:`fetch` (download with checksum; ``MIQA_OFFLINE=1``);
- :mod:`~miqa.hub.loading`: :func:`load_state_dict_file` (user weights, ``weights_only=True``) and
  :func:`load_training_checkpoint` (mmengine checkpoints, exact allow-list).

Names are imported on first use: the table, the lookup, the checksums and the download need only
the standard library; the loaders load torch.
"""
from miqa.utils.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(('WEIGHTS', 'WeightFile', 'weight_entry', 'weights_dir'), 'table'),
    **dict.fromkeys(('CONFIG_HINT', 'Pretrained', 'find_weights', 'missing_error', 'resolve_weights'),
                    'lookup'),
    **dict.fromkeys(('ChecksumError', 'expected_sha256', 'file_sha256', 'pin_sha256', 'record_sha256',
                     'recorded_sha256', 'sha256_store', 'verify'), 'checksums'),
    **dict.fromkeys(('TRANSPORTS', 'download_file', 'drive_direct_url', 'fetch', 'offline'), 'download'),
    **dict.fromkeys(('UnsafeCheckpointError', 'load_checkpoint_state_dict', 'load_state_dict_file',
                     'load_training_checkpoint', 'load_weight', 'training_checkpoint_globals',
                     'unwrap_state_dict'), 'loading'),
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
