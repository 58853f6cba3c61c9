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

import math
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

    def free(self) -> None:
        """Mark the buffer free (any process that maps ``flags``)."""
        self.flags[self.index] = 0


def _new_storage(nbytes: int) -> torch.UntypedStorage:
    return torch.empty(nbytes, dtype=torch.uint8).share_memory_().untyped_storage()


class _Pool:
    """The buffers of one worker process: ``storages[i]`` is free when ``flags[i] == 0``."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.flags = torch.zeros(MAX_BUFFERS, dtype=torch.uint8).share_memory_()
        self.storages: list[torch.UntypedStorage] = []
        self.leases: dict[int, Lease] = {}  # storage data_ptr -> its lease

    def acquire(self, nbytes: int) -> torch.UntypedStorage:
        """A free buffer of ``nbytes`` marked busy: a free one of that size, else a new one (in a new slot,
        or replacing a free buffer of another size), else, all busy, a fresh unpooled one."""
        free = [i for i in range(len(self.storages)) if int(self.flags[i]) == 0]
        index = next((i for i in free if self.storages[i].nbytes() == nbytes), None)
        if index is None:
            if len(self.storages) < MAX_BUFFERS:
                index = len(self.storages)
                self.storages.append(_new_storage(nbytes))
            elif free:
                index = free[0]
                del self.leases[self.storages[index].data_ptr()]
                self.storages[index] = _new_storage(nbytes)
            else:  # every buffer still seen by the main process
                return _new_storage(nbytes)
            self.leases[self.storages[index].data_ptr()] = Lease(self.flags, index)
        self.flags[index] = 1
        return self.storages[index]


_POOL: list[_Pool] = []


def _own_pool() -> _Pool | None:
    """This process's pool, None before its first :func:`shared_tensor` (a pool inherited by a fork
    belongs to the parent)."""
    return _POOL[0] if _POOL and _POOL[0].pid == os.getpid() else None


def shared_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised contiguous ``Tensor[shape]`` in one of this process's reusable shared-memory
    buffers (busy until :func:`free_when_dropped` in the receiving process sees it dropped, or
    :func:`release`)."""
    pool = _own_pool()
    if pool is None:
        pool = _Pool()
        _POOL[:] = [pool]
    storage = pool.acquire(math.prod(shape) * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape)


def lease_of(tensor: torch.Tensor) -> Lease | None:
    """The lease of the pooled buffer under ``tensor``, None when it is not one (also in the main
    process)."""
    pool = _own_pool()
    return None if pool is None else pool.leases.get(tensor.untyped_storage().data_ptr())


def release(tensor: torch.Tensor) -> None:
    """Mark the buffer of ``tensor`` (from :func:`shared_tensor`) free again: for a batch that is never
    sent (its reading failed)."""
    lease = lease_of(tensor)
    if lease is not None:
        lease.free()


def free_when_dropped(tensor: torch.Tensor, lease: Lease) -> None:
    """In the receiving process: mark ``lease``'s buffer free once the storage of ``tensor`` (the buffer,
    mapped here) is freed, i.e. when no tensor, view or numpy array over it is left."""
    weakref.finalize(tensor.untyped_storage(), lease.free)
