"""Reuse of frozen region-encoder features across epochs and evaluations.

The region encoder of RA-MIQA is frozen and sees a deterministic view (the 288x288 warp,
spec §4, docs/CONTRACTS.md ``RegionView``), so its output for an image (the averaged
final-normed patch features, *before* the trainable projector) never changes: compute it
once, then skip the encoder. Entries are keyed by

- the **encoder fingerprint**: a SHA-256 of the encoder's state dict (names, dtypes, shapes,
  bytes) plus its identity (class, architecture, input size), and the compute context
  (device type, input dtype, autocast dtype, the region view's normalisation). It is
  recomputed whenever a parameter or buffer is replaced or modified in place (tracked by
  ``data_ptr`` and the tensor version counter: ``load_state_dict``, ``.to()``, in-place ops), so
  a different encoder never reuses an entry. Edits through ``.data`` bypass version counters:
  call :meth:`RegionTokenCache.clear`.
- the **sample key**. From the data pipeline (``data_samples['region_key']``, written by
  ``RegionView`` in the loader worker): an XXH3-128 digest of the exact image the view is made
  from plus the view's parameters, so a changed file, pipeline or view never matches. Without
  it (images handed in as tensors): ``img_path`` + file size + mtime (ns) + the view's shape + a
  digest of a strided probe of the view, or, for samples without a readable ``img_path``, a
  digest of the whole view (``hash_tensors``; by default only for CPU views: on an H100, bf16,
  batch 128 at 288x288, hashing took 524 ms per batch against about 10 ms for the encoder).

**The loader skips views the model holds.** Keys the cache stores are also written, as 64-bit
digests, into a :class:`~miqa.utils.shared_keys.SharedKeyIndex` (memory shared with the
fork-started DataLoader workers); a worker whose ``RegionView`` finds a sample's key there does
not build the view at all, so after the first epoch no region view is made, collated, pinned
or copied to the device. The index is only a hint: a sample whose view was skipped but whose
key the model does not hold (cache cleared, another encoder or compute context, an entry over
``max_items``) has its view rebuilt from the file and verified against its key
(``RAMIQA._rebuild_views``).

Entries live in one tensor per fingerprint on the device the encoder runs on (a batch of hits
is one gather, no per-sample tensors; ``store_device='cpu'`` keeps them in host memory instead):
1.5 KB per image for ViT-S (384 float32; 0.75 KB under bf16 autocast), 1.9 GB for the 1.25 M
images of MIQD-2.5M cls. Under DDP each rank fills its own cache; ``sync_ranks`` hands every new
entry to every rank, ``cache_dir`` on a shared disk lets ranks and runs share entries (atomic
writes).
A hit returns the stored tensor bit for bit; a miss runs the encoder on the missing items
only (floating-point results can depend, in the last bits, on batch composition).
"""
import hashlib
import os
import weakref
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..utils.paths import miqa_home
from ..utils.shared_keys import SharedKeyIndex, shared_key_index  # noqa: F401 (re-exported)

PROBE_STRIDE = 16  # pixels between probed values of the view (3 x 18 x 18 values at 288)


def _bytes(t: Tensor) -> memoryview:
    return memoryview(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())


def module_fingerprint(module: nn.Module, identity: str = '') -> str:
    """SHA-256 (hex, 32 chars) of ``identity`` and every state-dict tensor of ``module``."""
    h = hashlib.sha256(identity.encode())
    for name, t in module.state_dict().items():
        h.update(f'|{name}|{t.dtype}|{tuple(t.shape)}|'.encode())
        h.update(_bytes(t))
    return h.hexdigest()[:32]


def _version_state(module: nn.Module) -> Tuple:
    tensors = (*module.parameters(), *module.buffers())
    return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)


def compute_context(x: Tensor) -> str:
    """What besides the weights changes the encoder's numbers: device type, dtype, autocast."""
    return _context(x.device, x.dtype)


def _context(device: torch.device, dtype: torch.dtype) -> str:
    dev = device.type
    amp = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else None
    return f'{dev}|{dtype}|amp={amp}'


def _stat(path: Optional[str]) -> Optional[os.stat_result]:
    if not path:
        return None
    try:
        return os.stat(path)
    except OSError:
        return None


def sample_keys(region_inputs: Tensor, img_paths: Optional[Sequence[Optional[str]]] = None,
                hash_tensors: bool = True) -> List[Optional[str]]:
    """One key per sample of ``region_inputs`` (B, C, H, W) handed in without a pipeline key,
    see the module docstring; ``None`` for a sample without a readable path when
    ``hash_tensors`` is off."""
    n = region_inputs.shape[0]
    shape = 'x'.join(map(str, region_inputs.shape[1:]))
    stats = [_stat(img_paths[i] if img_paths else None) for i in range(n)]
    probe = region_inputs[:, :, ::PROBE_STRIDE, ::PROBE_STRIDE].detach().cpu()
    whole = region_inputs.detach().cpu() if hash_tensors and any(s is None for s in stats) else None
    keys: List[Optional[str]] = []
    for i, st in enumerate(stats):
        if st is not None:
            digest = hashlib.blake2b(_bytes(probe[i]), digest_size=8).hexdigest()
            keys.append(f'{img_paths[i]}|{st.st_size}|{st.st_mtime_ns}|{shape}|{digest}')
        elif whole is not None:
            digest = hashlib.blake2b(_bytes(whole[i]), digest_size=16).hexdigest()
            keys.append(f'<tensor>|{shape}|{region_inputs.dtype}|{digest}')
        else:
            keys.append(None)
    return keys


# ------------------------------------------------------------------ the cache
class _Publisher:
    """Adds stored pipeline keys to the loader's index (if any); skips the ``probed`` samples."""

    def __init__(self, index: Optional[SharedKeyIndex], probed: set) -> None:
        self.index, self.probed = index, probed

    def add(self, i: int, key: str) -> None:
        if self.index is not None and i not in self.probed:
            self.index.add(key)


def _index(rows: Sequence[int], device: torch.device) -> Tensor:
    """Row indices on ``device``; to a GPU through pinned memory, without stalling the stream."""
    idx = torch.as_tensor(np.asarray(rows, np.int64))
    if device.type == 'cuda':
        return idx.pin_memory().to(device, non_blocking=True)
    return idx.to(device)


class _Store:
    """The entries of one fingerprint: ``key -> row`` of one growing (N, ...) tensor."""

    def __init__(self) -> None:
        self.rows: Dict[str, int] = {}
        self.data: Optional[Tensor] = None

    def add(self, key: str, value: Tensor) -> int:
        n = len(self.rows)
        if self.data is None or n == self.data.shape[0]:
            grown = value.new_empty((max(64, 2 * n), *value.shape))
            if self.data is not None:
                grown[:n] = self.data
            self.data = grown
        self.data[n] = value
        self.rows[key] = n
        return n


class RegionTokenCache:
    """In-memory (and optional on-disk) cache of frozen-encoder features.

    Args:
        cache_dir: optional directory for a persistent cache
            (``<cache_dir>/<fingerprint>/<ab>/<sha1 of key>.pt``); ``True``:
            ``$MIQA_HOME/cache/tokens`` (runs on the same images share it).
        max_items: cap on in-memory entries (later entries then go to disk only, if any).
        hash_tensors: key samples without a pipeline key or ``img_path`` by a digest of their
            whole view; ``None`` (default): only when the view is on the CPU (on a GPU,
            re-encoding is cheaper than copying and hashing); ``False``: always encoded.
        store_device: where entries live: ``None`` (default) the device the encoder runs on,
            or e.g. ``'cpu'``.
        share_with_loader: write stored keys into this process's :class:`SharedKeyIndex`, so
            the loader skips those views (default ``True``).
        sync_ranks: under ``torch.distributed``, exchange every newly stored entry with the other
            ranks (one ``all_gather_object`` per call; every rank must call ``encode`` equally
            often, as DDP training and evaluation do). Without it each rank holds only the tokens
            of the samples it saw, and the sampler deals each rank other samples every epoch: a
            rank's hit rate in epoch e is 1 - (1 - 1/W)^(e-1) for W ranks (W=2: 50 %, 75 % ...).
    """

    def __init__(self, cache_dir: Union[str, bool, None] = None, max_items: Optional[int] = None,
                 hash_tensors: Optional[bool] = None, store_device: Optional[str] = None,
                 share_with_loader: bool = True, sync_ranks: bool = False) -> None:
        if cache_dir is True:
            cache_dir = miqa_home() / 'cache' / 'tokens'
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.max_items = max_items
        self.hash_tensors = hash_tensors
        self.store_device = torch.device(store_device) if store_device else None
        self.share_with_loader = share_with_loader
        self.sync_ranks = sync_ranks
        self._stores: Dict[str, _Store] = {}
        self._tracked: Optional[Tuple[weakref.ref, Tuple, str]] = None
        self.hits = self.misses = self.encoder_calls = self.rebuilt = 0

    def __getstate__(self) -> dict:  # picklable: drop the weak reference
        return {**self.__dict__, '_tracked': None}

    def clear(self) -> None:
        """Forget the in-memory entries and the encoder fingerprint (disk entries stay); the
        loader builds every view again."""
        self._stores.clear()
        self._tracked = None
        index = shared_key_index(create=False)
        if index is not None and self.share_with_loader:
            index.clear()

    def __len__(self) -> int:
        return sum(len(s.rows) for s in self._stores.values())

    def stats(self) -> Dict[str, int]:
        return dict(hits=self.hits, misses=self.misses, encoder_calls=self.encoder_calls,
                    entries=len(self), rebuilt=self.rebuilt)

    def fingerprint(self, encoder: nn.Module) -> str:
        """The encoder's fingerprint, rehashed only when its tensors changed."""
        state = _version_state(encoder)
        if self._tracked is not None:
            ref, old_state, fp = self._tracked
            if ref() is encoder and old_state == state:
                return fp
        identity = getattr(encoder, 'cache_identity', lambda: type(encoder).__qualname__)()
        fp = module_fingerprint(encoder, identity)
        self._tracked = (weakref.ref(encoder), state, fp)
        return fp

    def _file(self, fp: str, key: str) -> Path:
        digest = hashlib.sha1(key.encode()).hexdigest()
        return self.cache_dir / fp / digest[:2] / f'{digest}.pt'

    def _load(self, fp: str, key: str) -> Optional[Tensor]:
        file = self._file(fp, key)
        return torch.load(file, map_location='cpu', weights_only=True) if file.is_file() else None

    def _put(self, fp: str, key: str, value: Tensor, on_disk: bool) -> Optional[int]:
        """Store ``value``: its row in memory (``None`` when over ``max_items``)."""
        if on_disk and self.cache_dir is not None:
            file = self._file(fp, key)
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_name(f'.{file.name}.{os.getpid()}.tmp')
            torch.save(value.detach().cpu().clone(), tmp)
            os.replace(tmp, file)  # atomic: readers see the old state or the whole entry
        if self.max_items is not None and len(self) >= self.max_items:
            return None
        store = self._stores.setdefault(fp, _Store())
        if store.data is not None:
            value = value.to(store.data.device)
        elif self.store_device is not None:
            value = value.to(self.store_device)
        return store.add(key, value.detach())

    def encode(self, encoder: nn.Module, views: Optional[Tensor],
               img_paths: Optional[Sequence[Optional[str]]] = None, *,
               keys: Optional[Sequence[Optional[str]]] = None, has_view: Optional[Sequence[bool]] = None,
               rebuild: Optional[Callable[[List[int]], Tensor]] = None, context: str = '',
               device: Optional[torch.device] = None) -> Tensor:
        """``encoder(views)``, served from the cache where possible.

        Args:
            views: the batch's views (B, C, H, W); with ``has_view``, only the rows of the
                samples whose view the loader built, in batch order (``None`` when none was).
            img_paths: per-sample paths, for samples keyed without a pipeline key.
            keys: per-sample pipeline keys (``None``/``''`` where a sample has none).
            has_view: per sample, whether its view is in ``views`` (default: all).
            rebuild: ``rebuild(sample indices) -> views`` (normalised, on the device) for
                samples whose view was skipped but whose entry is missing.
            context: what else decides the numbers (e.g. the view's normalisation).
            device: the output device when ``views`` is ``None``.

        The encoder runs only on the samples that miss (not at all when every sample hits).
        """
        n = len(keys) if keys is not None else views.shape[0]
        has_view = [True] * n if has_view is None else [bool(h) for h in has_view]
        device = views.device if views is not None else device
        dtype = views.dtype if views is not None else torch.float32
        fp = hashlib.sha256(f'{self.fingerprint(encoder)}|{_context(device, dtype)}|{context}'.encode())
        fp = fp.hexdigest()[:32]
        view_row = np.cumsum(has_view) - 1  # sample -> its row in ``views``
        keys = list(keys) if keys is not None else [None] * n
        unkeyed = [i for i in range(n) if not keys[i] and has_view[i]]
        if unkeyed:  # no pipeline key: probe the view
            hash_tensors = self.hash_tensors
            if hash_tensors is None:
                hash_tensors = device.type == 'cpu'
            paths = [img_paths[i] for i in unkeyed] if img_paths else None
            probed = sample_keys(views[_index(view_row[unkeyed], views.device)], paths, hash_tensors)
            for i, key in zip(unkeyed, probed):
                keys[i] = key
        store = self._stores.get(fp)
        rows = [store.rows.get(k, -1) if store is not None and k else -1 for k in keys]
        miss = [i for i, r in enumerate(rows) if r < 0]
        self.hits += n - len(miss)
        self.misses += len(miss)
        fresh: Dict[int, Tensor] = {}
        stored: List[Tuple[str, Tensor]] = []
        if miss:
            self._fill(encoder, fp, views, keys, has_view, view_row, miss, rows, fresh, rebuild, set(unkeyed),
                       stored)
        if self.sync_ranks:
            self._exchange(fp, stored)
        store = self._stores.get(fp)
        if not fresh:
            return store.data[_index(rows, store.data.device)].to(device, non_blocking=True)
        return torch.stack([(fresh[i] if rows[i] < 0 else store.data[rows[i]]).to(device) for i in range(n)])

    def _fill(self, encoder, fp, views, keys, has_view, view_row, miss, rows, fresh, rebuild, probed,
              stored) -> None:
        """Rows for the missing samples: from disk, else by encoding (views rebuilt if skipped).
        Stored pipeline keys (not ``probed`` ones, which no loader asks for) go to the loader's index
        and to ``stored`` (for :meth:`_exchange`)."""
        shared = shared_key_index(create=False) if self.share_with_loader else None
        index = _Publisher(shared, probed)
        need = []
        for i in miss:
            value = self._load(fp, keys[i]) if self.cache_dir is not None and keys[i] else None
            if value is None:
                need.append(i)
                continue
            row = self._put(fp, keys[i], value, on_disk=False)
            rows[i] = -1 if row is None else row
            if row is None:
                fresh[i] = value
            else:
                index.add(i, keys[i])
                if i not in probed:
                    stored.append((keys[i], value))
        if not need:
            return
        built = [i for i in need if has_view[i]]
        skipped = [i for i in need if not has_view[i]]
        parts, order = [], built + skipped
        if built:
            rows_of_built = _index(view_row[built], views.device)
            parts.append(views if len(built) == views.shape[0] else views[rows_of_built])
        if skipped:
            if rebuild is None:
                raise RuntimeError(f'{len(skipped)} region views were skipped by the loader but their '
                                   'tokens are not cached, and no rebuild function was given')
            parts.append(rebuild(skipped))
            self.rebuilt += len(skipped)
        feats = encoder(parts[0] if len(parts) == 1 else torch.cat(parts)).detach()
        self.encoder_calls += 1
        for j, i in enumerate(order):
            row = self._put(fp, keys[i], feats[j], on_disk=True) if keys[i] else None
            if row is None:
                fresh[i] = feats[j]
                continue
            rows[i] = row
            index.add(i, keys[i])
            if i not in probed:
                stored.append((keys[i], feats[j]))

    def _exchange(self, fp: str, stored: List[Tuple[str, Tensor]]) -> None:
        """Store the entries the other ranks stored in this call (``sync_ranks``); a no-op outside
        ``torch.distributed`` or with one rank. Entries of another fingerprint are not taken."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return
        payload = (fp, [(k, v.detach().cpu()) for k, v in stored])
        gathered: List = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, payload)
        index = shared_key_index(create=False) if self.share_with_loader else None
        store = self._stores.get(fp)
        for rank, (their_fp, entries) in enumerate(gathered):
            if rank == dist.get_rank() or their_fp != fp:
                continue
            for key, value in entries:
                if store is None or key not in store.rows:
                    if self._put(fp, key, value, on_disk=False) is not None and index is not None:
                        index.add(key)
                    store = self._stores.get(fp)
