"""Numba kernels of the DAT record codec (:mod:`evdet.io.dat_records` holds the rules and the entry point).

Kept apart so that importing the codec, and decoding clean records with its numpy path, never imports
numba: loading numba and these cached kernels costs about half a second in a fresh process, more than
decoding 10 M records with numpy (``dat_records.decode_dat_records`` chooses).
"""

from __future__ import annotations

import numba
import numpy as np

from evdet.io.dat_records import (
    _FJUMP,
    _NJUMP,
    _OFFSET,
    _PREV,
    HALF_TIME_WRAP,
    OUTLIER_STEP,
    TIME_WRAP,
)


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
def needs_checks(flat, start, stop, prev, height, width):  # pragma: no cover - compiled
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
    records, or None (``needs_checks`` found no jump: numba compiles the None cases without the
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
def decode_dat_kernel(records, start, stop, out64, state, limits, jumps):  # pragma: no cover - compiled
    """Records ``[start, stop)`` -> out64 int64[2 (stop - start)] with ``state`` (see ``new_dat_state``)
    updated; returns the number of backward time steps that were not wraps (unsorted data)."""
    offset, prev, backward = _decode_range(records, start, stop, out64, state[_OFFSET], state[_PREV],
                                           limits, jumps, state[_NJUMP:])
    state[_OFFSET] = offset
    state[_PREV] = prev
    return backward


@numba.njit(cache=True, nogil=True, parallel=True)
def decode_dat_kernel_parallel(records, start, stop, out64, state, limits, jumps,
                                block):  # pragma: no cover - compiled
    """Same result as ``decode_dat_kernel``, over blocks of ``block`` records on all numba threads.

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
