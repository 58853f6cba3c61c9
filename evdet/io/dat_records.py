"""DAT record codec (SPEC 2.2): 8-byte records <-> ``EVENT_DTYPE`` events, numba kernels.

Record layout (8 bytes, little-endian): ``uint32 t`` (µs), ``uint32 w`` with ``x = w & 0x3FFF``,
``y = (w >> 14) & 0x3FFF``, ``p = (w >> 28) & 1``.

Timestamps are stored on 32 bits and wrap after 2^32 µs (~71.6 min). Unwrapping rule: while decoding
in file order, whenever the stored time *decreases by more than 2^31* from the previous record, 2^32
is added to all following times. Smaller decreases are treated as unsorted data, not wraps.
"""

from __future__ import annotations

import numba
import numpy as np

from evdet.io.dtypes import EVENT_DTYPE

DAT_RECORD_SIZE = 8
TIME_WRAP = 1 << 32
"""µs after which the stored 32-bit time wraps."""
HALF_TIME_WRAP = 1 << 31
"""A stored-time decrease larger than this is a wrap; a smaller one is unsorted data."""
PARALLEL_MIN_RECORDS = 1 << 21
"""Reads of at least this many records decode on all numba threads (``NUMBA_NUM_THREADS`` limits them)."""
PARALLEL_BLOCK = 1 << 18
"""Records per block of the parallel decoder."""


@numba.njit(cache=True, nogil=True, inline="always")
def _unwrap_step(t32, prev, offset, backward):  # pragma: no cover - compiled
    """One step of the 32-bit time unwrapping: returns the new (offset, backward)."""
    if t32 < prev:
        if prev - t32 > HALF_TIME_WRAP:
            offset += TIME_WRAP
        else:
            backward += 1
    return offset, backward


@numba.njit(cache=True, nogil=True, inline="always")
def _pack_xyp(w):  # pragma: no cover - compiled
    """Packed DAT word -> int64 word ``x | y << 16 | p << 32`` (first 8 bytes of an EVENT_DTYPE record)."""
    return (w & 0x3FFF) | (((w >> 14) & 0x3FFF) << 16) | (((w >> 28) & 1) << 32)


@numba.njit(cache=True, nogil=True)
def _decode_dat_kernel(records, out64, state):  # pragma: no cover - compiled
    """records uint32[N, 2] -> out64 int64[2N] (the EVENT_DTYPE[N] buffer seen as int64, little-endian:
    word 2i = x | y << 16 | p << 32, word 2i+1 = t); state int64[2] = (wrap offset, previous t32 or -1).

    Returns the number of backward time steps that were not wraps (unsorted data)."""
    offset = state[0]
    prev = state[1]
    backward = 0
    for i in range(records.shape[0]):
        t32 = np.int64(records[i, 0])
        offset, backward = _unwrap_step(t32, prev, offset, backward)
        prev = t32
        out64[2 * i] = _pack_xyp(np.int64(records[i, 1]))
        out64[2 * i + 1] = t32 + offset
    state[0] = offset
    state[1] = prev
    return backward


@numba.njit(cache=True, nogil=True, inline="always")
def _block_bounds(records, state, block, b):  # pragma: no cover - compiled
    """Records ``[start, stop)`` of block ``b`` and the time word before it (``state[1]`` for block 0)."""
    start = b * block
    stop = min(start + block, records.shape[0])
    prev = state[1] if b == 0 else np.int64(records[start - 1, 0])
    return start, stop, prev


@numba.njit(cache=True, nogil=True, parallel=True)
def _decode_dat_kernel_parallel(records, out64, state, block):  # pragma: no cover - compiled
    """Same result as ``_decode_dat_kernel``, over blocks of ``block`` records on all numba threads.

    One pass decodes every block independently from the starting offset ``state[0]`` (each block starts
    from the last time word of the block before it) and counts its wraps and backward steps. A block
    after a wrap is then shifted by the wraps of the blocks before it: a second pass over those blocks
    only (none in a recording shorter than 71.6 min), so the records are read once."""
    n = records.shape[0]
    nblocks = (n + block - 1) // block
    base = state[0]
    wraps = np.zeros(nblocks, dtype=np.int64)
    backs = np.zeros(nblocks, dtype=np.int64)
    for b in numba.prange(nblocks):
        start, stop, prev = _block_bounds(records, state, block, b)
        offset = base
        backward = np.int64(0)
        for i in range(start, stop):
            t32 = np.int64(records[i, 0])
            offset, backward = _unwrap_step(t32, prev, offset, backward)
            prev = t32
            out64[2 * i] = _pack_xyp(np.int64(records[i, 1]))
            out64[2 * i + 1] = t32 + offset
        wraps[b] = offset - base
        backs[b] = backward
    shift = np.zeros(nblocks, dtype=np.int64)  # wraps of the blocks before b (µs)
    acc = np.int64(0)
    for b in range(nblocks):
        shift[b] = acc
        acc += wraps[b]
    if acc != 0:
        for b in numba.prange(nblocks):
            if shift[b] != 0:
                for i in range(b * block, min((b + 1) * block, n)):
                    out64[2 * i + 1] += shift[b]
    state[0] = base + acc
    state[1] = np.int64(records[n - 1, 0])
    return backs.sum()


@numba.njit(cache=True, nogil=True)
def max_xy(records):  # pragma: no cover - compiled
    """``records uint32[N, 2]`` -> (max x, max y) over the records, (-1, -1) when empty."""
    max_x = -1
    max_y = -1
    for i in range(records.shape[0]):
        w = records[i, 1]
        x = np.int64(w & 0x3FFF)
        y = np.int64((w >> 14) & 0x3FFF)
        if x > max_x:
            max_x = x
        if y > max_y:
            max_y = y
    return max_x, max_y


def decode_dat_records(records: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Decode DAT records into events (numba kernel).

    Args:
        records: ``uint32 ndarray[N, 2]`` (time word, packed x/y/p word), e.g. a memory map.
        state: ``int64 ndarray[2]`` (wrap offset in µs, previous 32-bit time or -1), updated in place so
            consecutive calls continue the unwrapping; None starts fresh.

    Returns:
        ``(events, backward)``: ``EVENT_DTYPE ndarray[N]`` with unwrapped ``t`` (µs), and the number of
        times ``t`` decreased without being a wrap (0 for sorted data).

    Reads of at least ``PARALLEL_MIN_RECORDS`` records run the one-pass block-parallel kernel on all
    numba threads; its output is identical to the sequential kernel's.
    """
    if state is None:
        state = np.array([0, -1], dtype=np.int64)
    out = np.empty(records.shape[0], dtype=EVENT_DTYPE)
    if records.shape[0] == 0:
        return out, 0
    if records.shape[0] >= PARALLEL_MIN_RECORDS and numba.get_num_threads() > 1:
        backward = _decode_dat_kernel_parallel(records, out.view(np.int64), state, PARALLEL_BLOCK)
    else:
        backward = _decode_dat_kernel(records, out.view(np.int64), state)
    return out, int(backward)


def encode_dat_records(events: np.ndarray) -> np.ndarray:
    """``EVENT_DTYPE ndarray[N]`` -> ``uint32 ndarray[N, 2]`` DAT records (time wrapped to 32 bits)."""
    records = np.empty((events.shape[0], 2), dtype=np.uint32)
    records[:, 0] = (events["t"] & 0xFFFFFFFF).astype(np.uint32)
    records[:, 1] = (events["x"].astype(np.uint32) | (events["y"].astype(np.uint32) << 14)
                     | (events["p"].astype(np.uint32) << 28))
    return records
