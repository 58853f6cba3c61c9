"""DAT record codec (SPEC 2.2): 8-byte records <-> ``EVENT_DTYPE`` events, numba kernels.

Record layout (8 bytes, little-endian): ``uint32 t`` (µs), ``uint32 w`` with ``x = w & 0x3FFF``,
``y = (w >> 14) & 0x3FFF``, ``p = (w >> 28) & 1``.

Timestamps are stored on 32 bits and wrap after 2^32 µs (~71.6 min). A *jump* is a step of more
than 2^31 between two stored times. Unwrapping rule, decoding in file order:

- a jump from the previous accepted record is accepted only when the next record continues from the
  new time (no jump between them); a decrease accepted that way is a wrap: 2^32 is added to all
  following times. An isolated jump (the next record jumps again, or there is no next record) is a
  corrupt record: it is skipped and counted. The first record of a file is corrupt when it jumps to
  the second and the second continues into the third.
- a record *between* two others is also corrupt when it is an *outlier*: more than ``OUTLIER_STEP``
  (2^26 µs, 67 s) away from the previous accepted time and from the next record's, while the next
  record is within ``OUTLIER_STEP`` of the previous accepted time (distances modulo 2^32, so wraps are
  no outliers): a time word such as ``0x7FFFFFFF`` among times near 1 s, which is no jump (it is less
  than 2^31 away) but would stretch the recording to 35 min. Genuine gaps (the stream continues from the
  new time) and sparse recordings (the next record is far from both) are kept.
- smaller decreases are unsorted data, not wraps (counted as backward steps).

Events whose x or y lies outside the sensor geometry given to the decoder are dropped and counted.
The decoder state (``new_dat_state``) carries the unwrapping across calls and accumulates both counts.
"""

from __future__ import annotations

import numba
import numpy as np

from evdet.io.dtypes import EVENT_DTYPE

DAT_RECORD_SIZE = 8
TIME_WRAP = 1 << 32
"""µs after which the stored 32-bit time wraps."""
HALF_TIME_WRAP = 1 << 31
"""A stored-time step larger than this is a jump (a wrap when confirmed, otherwise a corrupt record)."""
OUTLIER_STEP = 1 << 26
"""A record this far (µs, modulo 2^32) from both neighbours, which are close to each other, is corrupt."""
DAT_MAX_COORD = 1 << 14
"""x and y are 14-bit fields: the geometry limit that drops nothing."""
PARALLEL_MIN_RECORDS = 1 << 21
"""Reads of at least this many records decode on all numba threads (``NUMBA_NUM_THREADS`` limits them)."""
PARALLEL_BLOCK = 1 << 18
"""Records per block of the parallel decoder."""
DAT_STATE_SIZE = 6
# state slots: wrap offset (µs), previous accepted 32-bit time (-1: none yet), corrupt records skipped,
# index of the first one (-1: none), events outside the geometry dropped, index of the first one
_OFFSET, _PREV, _NJUMP, _FJUMP, _NOUT, _FOUT = range(DAT_STATE_SIZE)


def new_dat_state() -> np.ndarray:
    """Fresh decoder state: ``int64 ndarray[6]`` (wrap offset, previous time, corrupt records skipped,
    first such record, events outside the geometry, first such record; -1 = none)."""
    return np.array([0, -1, 0, -1, 0, -1], dtype=np.int64)


def dat_drops(state: np.ndarray) -> tuple[int, int, int, int]:
    """``(corrupt records skipped, first one's index, events outside the geometry, first one's index)``
    counted in ``state`` (indices into the ``records`` given to the decoder, -1 when none)."""
    return int(state[_NJUMP]), int(state[_FJUMP]), int(state[_NOUT]), int(state[_FOUT])


@numba.njit(cache=True, nogil=True, inline="always")
def _is_jump(a, b):  # pragma: no cover - compiled
    return abs(b - a) > HALF_TIME_WRAP


@numba.njit(cache=True, nogil=True, inline="always")
def _far(a, b):  # pragma: no cover - compiled
    """Stored times ``a`` and ``b`` are more than ``OUTLIER_STEP`` apart, modulo 2^32."""
    d = abs(b - a)
    return min(d, TIME_WRAP - d) > OUTLIER_STEP


@numba.njit(cache=True, nogil=True, inline="always")
def _is_corrupt(records, i, prev):  # pragma: no cover - compiled
    """Record ``i`` is an isolated time jump or an outlier (module docstring), given the previous accepted
    time ``prev`` (-1: none)."""
    t = np.int64(records[i, 0])
    n = records.shape[0]
    if prev < 0:
        if i + 2 >= n:
            return False
        t1 = np.int64(records[i + 1, 0])
        return _is_jump(t, t1) and not _is_jump(t1, np.int64(records[i + 2, 0]))
    if i + 1 < n:
        t1 = np.int64(records[i + 1, 0])
        if _far(prev, t) and _far(t, t1) and not _far(prev, t1):
            return True
    if not _is_jump(prev, t):
        return False
    return i + 1 >= n or _is_jump(t, np.int64(records[i + 1, 0]))


@numba.njit(cache=True, nogil=True)
def _needs_checks(flat, start, stop, prev, height, width):  # pragma: no cover - compiled
    """(any time step of more than ``OUTLIER_STEP`` near records ``[start, stop)``, which every jump,
    wrap and outlier has, any x/y outside ``(height, width)`` near them), from ``flat`` = the records as
    ``uint64[N]`` (time word | packed word << 32): a branch-free scan, ~2.5x faster than decoding, that
    lets the decoder leave out the checks. The steps looked at are those from ``prev`` (the previous
    accepted time, -1: none) to the first record and between the records from the one before ``start``
    to the one after ``stop``."""
    seg = flat[max(start - 1, 0):min(stop + 1, flat.shape[0])]
    last = np.int64(seg[0] & 0xFFFFFFFF)
    jump = prev >= 0 and abs(np.int64(flat[start] & 0xFFFFFFFF) - prev) > OUTLIER_STEP
    jumps = np.uint64(0)
    outside = np.uint64(0)
    for k in range(seg.shape[0]):
        v = seg[k]
        t = np.int64(v & 0xFFFFFFFF)
        d = t - last
        last = t
        jumps |= np.uint64((d > OUTLIER_STEP) | (d < -OUTLIER_STEP))
        outside |= np.uint64((((v >> 32) & 0x3FFF) >= width) | (((v >> 46) & 0x3FFF) >= height))
    return jump or jumps != 0, outside != 0


@numba.njit(cache=True, nogil=True)
def _decode_range(records, start, stop, out64, offset, prev, limits, jumps, drops):  # pragma: no cover
    """Decode ``records[start:stop]`` into ``out64[2 (i - start) ...]`` (the EVENT_DTYPE buffer seen as
    int64, little-endian: word 2k = x | y << 16 | p << 32, word 2k+1 = t). A dropped event has word
    2k = -1 (p = -1); a skipped corrupt record gets the previous accepted time. ``records`` beyond
    ``stop`` are read (never decoded) to judge a jump at the end of the range.

    ``limits``: ``(height, width)`` to drop events outside, or None; ``jumps``: True to look for corrupt
    records, or None (``_needs_checks`` found no jump: numba compiles the None cases without the
    checks). ``drops`` int64[4] (corrupt count, first corrupt index, outside count, first outside
    index) is updated. Returns (wrap offset, previous accepted t32, backward steps)."""
    backward = np.int64(0)
    seg = records[start:stop]  # a loop over a slice compiles to faster code than over range(start, stop)
    for k in range(seg.shape[0]):
        j = 2 * k
        if jumps is not None:
            if _is_corrupt(records, start + k, prev):
                if drops[0] == 0:
                    drops[1] = start + k
                drops[0] += 1
                out64[j] = -1
                out64[j + 1] = offset + max(prev, 0)
                continue
        t32 = np.int64(seg[k, 0])
        if t32 < prev:
            if prev - t32 > HALF_TIME_WRAP:
                offset += TIME_WRAP
            else:
                backward += 1
        prev = t32
        w = np.int64(seg[k, 1])
        x = w & 0x3FFF
        y = (w >> 14) & 0x3FFF
        out64[j] = x | (y << 16) | (((w >> 28) & 1) << 32)
        if limits is not None:
            if x >= limits[1] or y >= limits[0]:
                if drops[2] == 0:
                    drops[3] = start + k
                drops[2] += 1
                out64[j] = -1
        out64[j + 1] = t32 + offset
    return offset, prev, backward


@numba.njit(cache=True, nogil=True)
def _decode_dat_kernel(records, start, stop, out64, state, limits, jumps):  # pragma: no cover - compiled
    """Records ``[start, stop)`` -> out64 int64[2 (stop - start)] with ``state`` (see ``new_dat_state``)
    updated; returns the number of backward time steps that were not wraps (unsorted data)."""
    offset, prev, backward = _decode_range(records, start, stop, out64, state[_OFFSET], state[_PREV],
                                           limits, jumps, state[_NJUMP:])
    state[_OFFSET] = offset
    state[_PREV] = prev
    return backward


@numba.njit(cache=True, nogil=True, parallel=True)
def _decode_dat_kernel_parallel(records, start, stop, out64, state, limits, jumps,
                                block):  # pragma: no cover - compiled
    """Same result as ``_decode_dat_kernel``, over blocks of ``block`` records on all numba threads.

    One pass decodes every block independently from the starting offset ``state[0]``, each block
    starting from the time word before it (``state[1]`` for block 0). A sequential pass over the
    blocks then re-decodes the rare block whose predecessor ended on a skipped corrupt record (its
    previous accepted time was another one), and a block after a wrap is shifted by the wraps of the
    blocks before it (none in a recording shorter than 71.6 min), so the records are read once."""
    n = stop - start
    nblocks = (n + block - 1) // block
    base = state[_OFFSET]
    wraps = np.zeros(nblocks, dtype=np.int64)
    backs = np.zeros(nblocks, dtype=np.int64)
    lastp = np.zeros(nblocks, dtype=np.int64)
    drops = np.zeros((nblocks, 4), dtype=np.int64)
    for b in numba.prange(nblocks):
        s = start + b * block
        e = min(s + block, stop)
        prev = state[_PREV] if b == 0 else np.int64(records[s - 1, 0])
        drops[b, 1] = -1
        drops[b, 3] = -1
        offset, lastp[b], backs[b] = _decode_range(records, s, e, out64[2 * (s - start):], base, prev,
                                                   limits, jumps, drops[b])
        wraps[b] = offset - base
    for b in range(1, nblocks):
        s = start + b * block
        if lastp[b - 1] != np.int64(records[s - 1, 0]):
            e = min(s + block, stop)
            drops[b, 0] = 0
            drops[b, 2] = 0
            offset, lastp[b], backs[b] = _decode_range(records, s, e, out64[2 * (s - start):], base,
                                                       lastp[b - 1], limits, jumps, drops[b])
            wraps[b] = offset - base
    shift = np.zeros(nblocks, dtype=np.int64)  # wraps of the blocks before b (µs)
    acc = np.int64(0)
    for b in range(nblocks):
        shift[b] = acc
        acc += wraps[b]
        for k in (0, 2):
            if drops[b, k]:
                if state[_NJUMP + k] == 0:
                    state[_FJUMP + k] = drops[b, k + 1]
                state[_NJUMP + k] += drops[b, k]
    if acc != 0:
        for b in numba.prange(nblocks):
            if shift[b] != 0:
                for i in range(b * block, min((b + 1) * block, n)):
                    out64[2 * i + 1] += shift[b]
    state[_OFFSET] = base + acc
    state[_PREV] = lastp[nblocks - 1]
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


def decode_dat_records(records: np.ndarray, state: np.ndarray | None = None, start: int = 0,
                       stop: int | None = None, geometry: tuple[int, int] | None = None,
                       keep_dropped: bool = False) -> tuple[np.ndarray, int]:
    """Decode DAT records ``[start, stop)`` into events (numba kernel).

    Args:
        records: ``uint32 ndarray[N, 2]`` (time word, packed x/y/p word), e.g. a memory map of the whole
            file: the record after ``stop`` is read to judge a jump at the end of the range.
        state: from ``new_dat_state()``, updated in place so that consecutive calls continue the
            unwrapping and accumulate the drop counts (``dat_drops``); None starts fresh.
        start, stop: the records to decode (default: all).
        geometry: ``(height, width)``; events with ``y >= height`` or ``x >= width`` are dropped and
            counted. None drops none.
        keep_dropped: return one event per record, dropped ones marked ``p = -1`` (a skipped corrupt
            record with the previous accepted time), as a binary search over record indices needs.

    Returns:
        ``(events, backward)``: ``EVENT_DTYPE ndarray[n]`` with unwrapped ``t`` (µs), n = stop - start
        minus the dropped ones, and the number of times ``t`` decreased without being a wrap (0 for
        sorted data).

    Reads of at least ``PARALLEL_MIN_RECORDS`` records run the one-pass block-parallel kernel on all
    numba threads; its output is identical to the sequential kernel's.
    """
    if state is None:
        state = new_dat_state()
    stop = records.shape[0] if stop is None else min(int(stop), records.shape[0])
    start = min(int(start), stop)
    out = np.empty(stop - start, dtype=EVENT_DTYPE)
    if stop == start:
        return out, 0
    height, width = (DAT_MAX_COORD, DAT_MAX_COORD) if geometry is None else geometry
    if not records.flags.c_contiguous:
        records = np.ascontiguousarray(records)
    flat = records.view(np.uint64).reshape(-1)  # [N]: time word | packed word << 32 (little-endian)
    jumps, outside = _needs_checks(flat, start, stop, state[_PREV], np.uint64(height), np.uint64(width))
    limits = (int(height), int(width)) if outside else None
    jumps = True if jumps else None
    before = state[_NJUMP] + state[_NOUT]
    if stop - start >= PARALLEL_MIN_RECORDS and numba.get_num_threads() > 1:
        backward = _decode_dat_kernel_parallel(records, start, stop, out.view(np.int64), state, limits,
                                               jumps, PARALLEL_BLOCK)
    else:
        backward = _decode_dat_kernel(records, start, stop, out.view(np.int64), state, limits, jumps)
    if not keep_dropped and state[_NJUMP] + state[_NOUT] != before:
        out = out[out["p"] >= 0]
    return out, int(backward)


def encode_dat_records(events: np.ndarray) -> np.ndarray:
    """``EVENT_DTYPE ndarray[N]`` -> ``uint32 ndarray[N, 2]`` DAT records (time wrapped to 32 bits)."""
    records = np.empty((events.shape[0], 2), dtype=np.uint32)
    records[:, 0] = (events["t"] & 0xFFFFFFFF).astype(np.uint32)
    records[:, 1] = (events["x"].astype(np.uint32) | (events["y"].astype(np.uint32) << 14)
                     | (events["p"].astype(np.uint32) << 28))
    return records
