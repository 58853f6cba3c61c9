"""The reused shared-memory buffers of DataLoader workers (evdet.data.shared_memory) and the in-place row
flip of stored bytes, in process (the cross-process path is tested through the DataLoader in
test_loader.py)."""

from __future__ import annotations

import numpy as np
import torch

from evdet.data import shared_memory
from evdet.data.dataset import flip_rows


def test_buffers_are_handed_out_once_until_released(monkeypatch):
    monkeypatch.setattr(shared_memory, "_POOL", [])
    shape = (2, 3, 4)
    taken = [shared_memory.shared_tensor(shape, torch.uint8) for _ in range(shared_memory.MAX_BUFFERS)]
    assert len({t.data_ptr() for t in taken}) == shared_memory.MAX_BUFFERS
    assert all(t.is_shared() and shared_memory.lease_of(t) is not None for t in taken)
    extra = shared_memory.shared_tensor(shape, torch.uint8)  # all busy: a fresh, unpooled buffer
    assert extra.is_shared() and shared_memory.lease_of(extra) is None
    assert extra.data_ptr() not in {t.data_ptr() for t in taken}
    shared_memory.release(taken[2])
    again = shared_memory.shared_tensor(shape, torch.uint8)
    assert again.data_ptr() == taken[2].data_ptr()
    lease = shared_memory.lease_of(again)
    assert lease.index == 2 and int(lease.flags[2]) == 1


def test_a_free_buffer_of_another_size_is_replaced_when_the_pool_is_full(monkeypatch):
    monkeypatch.setattr(shared_memory, "_POOL", [])
    taken = [shared_memory.shared_tensor((8,), torch.uint8) for _ in range(shared_memory.MAX_BUFFERS)]
    shared_memory.release(taken[1])
    bigger = shared_memory.shared_tensor((4, 8), torch.float32)
    lease = shared_memory.lease_of(bigger)
    assert lease.index == 1 and bigger.shape == (4, 8) and bigger.untyped_storage().nbytes() == 128
    assert shared_memory.lease_of(taken[1]) is None  # the replaced buffer is no longer the pool's


def test_finalizer_frees_the_buffer_when_the_last_view_is_gone():
    """free_when_dropped (what the receiving process registers) marks the lease free only once no tensor,
    view or numpy array over the storage is left."""
    flags = torch.ones(2, dtype=torch.uint8)
    tensor = torch.zeros(6, dtype=torch.uint8)
    shared_memory.free_when_dropped(tensor, shared_memory.Lease(flags, 1))
    view = tensor[2:].view(2, 2)
    array = view.numpy()
    del tensor, view
    assert flags.tolist() == [1, 1]
    del array
    assert flags.tolist() == [1, 0]


def test_flip_rows_reverses_the_last_axis_in_place(rng):
    frames = rng.integers(0, 256, (3, 2, 5, 7), dtype=np.uint8)
    expected = frames[..., ::-1].copy()
    flip_rows(frames)
    np.testing.assert_array_equal(frames, expected)
