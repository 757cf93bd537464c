"""A set of string keys shared, read-only, with fork-started DataLoader workers.

The bridge between RA-MIQA's region-token cache (:mod:`miqa.models.region_cache`, the writer, in
the trainer's process) and ``RegionView`` (:mod:`miqa.datasets.transforms`, the readers, in the
loader workers): a worker skips the region view of a sample whose key the model holds. Standard
library, numpy and xxhash only, so the data side imports it for nothing.
"""
import logging
import mmap
from typing import Optional, Tuple

import numpy as np
import xxhash
from mmengine.logging import print_log

INDEX_SLOTS = 1 << 22  # 4 M slots (32 MB of shared memory, touched as filled): 2 M keys at most


class SharedKeyIndex:
    """A set of 64-bit key digests in anonymous shared memory (open addressing, linear probing).

    The process that creates it (the trainer, before its DataLoader forks workers) is its only
    writer; fork-started workers read the same pages. Reads need no lock: a slot is one aligned
    8-byte word, and a read that races a write only makes a worker build a view it could have
    skipped. Pickled (spawn/forkserver workers) it arrives detached: an empty set, so those
    workers always build the view. ``ready`` is set in a process once its collate function can
    batch samples without a view (``miqa_collate``); before that nothing is skipped there.
    """

    def __init__(self, slots: int = INDEX_SLOTS) -> None:
        if slots & (slots - 1):
            raise ValueError(f'slots must be a power of two, got {slots}')
        self.slots, self.count, self.ready, self._full_warned = slots, 0, False, False
        self._buf = mmap.mmap(-1, slots * 8)  # anonymous, MAP_SHARED: inherited by fork
        self._table = np.frombuffer(self._buf, np.uint64)

    def __getstate__(self) -> dict:
        return dict(slots=self.slots)

    def __setstate__(self, state: dict) -> None:
        self.slots, self.count, self.ready, self._full_warned = state['slots'], 0, False, True
        self._buf, self._table = None, np.zeros(1, np.uint64)

    @staticmethod
    def digest(key: str) -> int:
        return xxhash.xxh3_64_intdigest(key.encode()) | 1  # 0 marks an empty slot

    def _slot(self, d: int) -> Tuple[int, bool]:
        """(slot index, whether ``d`` is stored there); stops at the first empty slot."""
        table, mask = self._table, self.slots - 1
        i = d & mask
        while True:
            value = int(table[i])
            if value == d or value == 0:
                return i, value == d
            i = (i + 1) & mask

    def __contains__(self, key: str) -> bool:
        return self._buf is not None and self._slot(self.digest(key))[1]

    def add(self, key: str) -> None:
        if self._buf is None:
            return
        if self.count >= self.slots // 2:  # keep probe chains short; later keys keep their views
            if not self._full_warned:
                self._full_warned = True
                print_log(f'region-view index full ({self.count:,} keys): later samples keep their '
                          'region views (correct, only slower)', logger='current', level=logging.WARNING)
            return
        d = self.digest(key)
        i, present = self._slot(d)
        if not present:
            self._table[i] = d
            self.count += 1

    def clear(self) -> None:
        if self._buf is not None:
            self._table[:] = 0
        self.count = 0


_INDEX: Optional[SharedKeyIndex] = None


def shared_key_index(create: bool = True) -> Optional[SharedKeyIndex]:
    """This process's :class:`SharedKeyIndex` (made on first use when ``create``)."""
    global _INDEX
    if _INDEX is None and create:
        _INDEX = SharedKeyIndex()
    return _INDEX
