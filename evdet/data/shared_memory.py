"""Reused shared-memory buffers for the batches a DataLoader worker sends to the main process.

A worker puts each batch's input tensor in shared memory so that the main process maps it instead of
copying it. A fresh shared-memory tensor per batch costs more than reading the batch: every page of a new
tmpfs file is allocated and zeroed on first touch (about 0.12 s per 140 MB batch of Gen1 RVT frames, as
long as decoding them). So each worker keeps a few buffers and writes the next batch into one the main
process no longer uses:

- the worker marks a buffer busy (a byte of a small shared ``flags`` tensor) when it hands it out;
- the batch carries a :class:`Lease` (the flags and the buffer's index) to the main process, which
  registers a finalizer on the storage it received (:func:`free_when_dropped`); the finalizer runs when
  the last tensor, view or numpy array over that storage is gone, and marks the buffer free again.

A buffer is therefore only overwritten once nothing in the main process can see it. When every buffer is
busy (the main process holds many batches), the worker allocates a fresh, unpooled one: correct, slower.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass

import torch

MAX_BUFFERS = 4
"""Buffers kept per worker: the DataLoader's default prefetch (2 batches per worker) plus the batch being
trained on and one being released."""


@dataclass(frozen=True)
class Lease:
    """Buffer ``index`` of a worker's pool, busy while ``flags[index]`` is 1 (``flags``: shared
    ``Tensor[MAX_BUFFERS]`` uint8)."""

    flags: torch.Tensor
    index: int


class _Pool:
    """The buffers of one worker process: ``storages[i]`` is free when ``flags[i] == 0``."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.flags = torch.zeros(MAX_BUFFERS, dtype=torch.uint8).share_memory_()
        self.storages: list[torch.UntypedStorage] = []
        self.leases: dict[int, Lease] = {}  # storage data_ptr -> its lease

    def acquire(self, nbytes: int) -> torch.UntypedStorage:
        free = [i for i in range(len(self.storages)) if int(self.flags[i]) == 0]
        same = [i for i in free if self.storages[i].nbytes() == nbytes]
        if same:
            index = same[0]
        elif len(self.storages) < MAX_BUFFERS or free:
            index = len(self.storages) if len(self.storages) < MAX_BUFFERS else free[0]
            storage = torch.empty(nbytes, dtype=torch.uint8).share_memory_().untyped_storage()
            if index == len(self.storages):
                self.storages.append(storage)
            else:
                del self.leases[self.storages[index].data_ptr()]
                self.storages[index] = storage
            self.leases[storage.data_ptr()] = Lease(self.flags, index)
        else:  # every buffer still seen by the main process
            return torch.empty(nbytes, dtype=torch.uint8).share_memory_().untyped_storage()
        self.flags[index] = 1
        return self.storages[index]

    def release(self, storage: torch.UntypedStorage) -> None:
        lease = self.leases.get(storage.data_ptr())
        if lease is not None:
            self.flags[lease.index] = 0


_POOL: list[_Pool] = []


def _pool() -> _Pool:
    if not _POOL or _POOL[0].pid != os.getpid():
        _POOL[:] = [_Pool()]
    return _POOL[0]


def shared_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised contiguous ``Tensor[shape]`` in one of this process's reusable shared-memory
    buffers (busy until :func:`free_when_dropped` in the receiving process sees it dropped, or
    :func:`release`)."""
    count = 1
    for n in shape:
        count *= n
    storage = _pool().acquire(count * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape)


def release(tensor: torch.Tensor) -> None:
    """Mark the buffer of ``tensor`` (from :func:`shared_tensor`) free again: for a batch that is never
    sent (its reading failed)."""
    _pool().release(tensor.untyped_storage())


def lease_of(tensor: torch.Tensor) -> Lease | None:
    """The lease of the pooled buffer under ``tensor``, None when it is not one (also in the main
    process)."""
    if not _POOL or _POOL[0].pid != os.getpid():
        return None
    return _POOL[0].leases.get(tensor.untyped_storage().data_ptr())


def _mark_free(flags: torch.Tensor, index: int) -> None:
    flags[index] = 0


def free_when_dropped(tensor: torch.Tensor, lease: Lease) -> None:
    """In the receiving process: mark ``lease``'s buffer free once the storage of ``tensor`` (the buffer,
    mapped here) is freed, i.e. when no tensor, view or numpy array over it is left."""
    weakref.finalize(tensor.untyped_storage(), _mark_free, lease.flags, lease.index)
