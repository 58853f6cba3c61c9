"""DAT record codec (SPEC 2.2): 8-byte records <-> ``EVENT_DTYPE`` events.

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

Two implementations decode, with identical output: the numba kernels of :mod:`evdet.io.dat_kernels`
(every rule above, ~4x faster than numpy once loaded) and, in a process that has not loaded them yet, a
numpy path for clean records (no step of more than ``OUTLIER_STEP``, nothing outside the geometry: then
no rule above applies but the backward-step count). Loading numba and the kernels costs about 0.5 s in a
fresh process, more than the numpy path spends on 10 M records, so a script that reads one file pays
no such cost; the kernels are loaded by the first read that needs the rules, or once the numpy path has
decoded ``KERNELS.budget`` records (:mod:`evdet.io.kernel_budget`).
"""

from __future__ import annotations

import os
import threading

import numpy as np

from evdet.io.dtypes import empty_events
from evdet.io.kernel_budget import KernelBudget

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
KERNELS = KernelBudget("evdet.io.dat_kernels", 1 << 26)
"""The numpy path decodes up to 2^26 records in a process before the kernels load: at ~7 ns saved per
record by the kernels (2 cores), ~67 M records repay their ~0.5 s load."""
_NUMPY_THREADS = min(4, os.cpu_count() or 1)  # threads of the numpy path (memory-bound: more do not help)
_NUMPY_CHUNK = 1 << 16  # records per step of the numpy path (its temporaries stay in the CPU cache)
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


def decode_dat_records(records: np.ndarray, state: np.ndarray | None = None, start: int = 0,
                       stop: int | None = None, geometry: tuple[int, int] | None = None,
                       keep_dropped: bool = False) -> tuple[np.ndarray, int]:
    """Decode DAT records ``[start, stop)`` into events.

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
    numba threads; its output is identical to the sequential kernel's. Before the kernels are loaded in
    this process, clean records are decoded with numpy instead (module docstring), with the same output.
    """
    if state is None:
        state = new_dat_state()
    stop = records.shape[0] if stop is None else min(int(stop), records.shape[0])
    start = min(int(start), stop)
    out = empty_events(stop - start)
    if stop == start:
        return out, 0
    height, width = (DAT_MAX_COORD, DAT_MAX_COORD) if geometry is None else geometry
    if not records.flags.c_contiguous:
        records = np.ascontiguousarray(records)
    flat = records.view(np.uint64).reshape(-1)  # [N]: time word | packed word << 32 (little-endian)
    if KERNELS.numpy_first():
        backward = _decode_clean_numpy(flat, start, stop, out, state, height, width)
        if backward is not None:
            KERNELS.spend(stop - start)
            return out, backward
    from evdet.io import dat_kernels

    jumps, outside = dat_kernels.needs_checks(flat, start, stop, state[_PREV], np.uint64(height),
                                              np.uint64(width))
    limits = (int(height), int(width)) if outside else None
    jumps = True if jumps else None
    before = state[_NJUMP] + state[_NOUT]
    if stop - start >= PARALLEL_MIN_RECORDS and dat_kernels.numba.get_num_threads() > 1:
        backward = dat_kernels.decode_dat_kernel_parallel(records, start, stop, out.view(np.int64), state,
                                                          limits, jumps, PARALLEL_BLOCK)
    else:
        backward = dat_kernels.decode_dat_kernel(records, start, stop, out.view(np.int64), state, limits,
                                                 jumps)
    if not keep_dropped and state[_NJUMP] + state[_NOUT] != before:
        out = out[out["p"] >= 0]
    return out, int(backward)


def _decode_clean_numpy(flat: np.ndarray, start: int, stop: int, out: np.ndarray, state: np.ndarray,
                        height: int, width: int) -> int | None:
    """Decode ``flat[start:stop]`` (``uint64`` records: time word | packed word << 32) into ``out``
    (``EVENT_DTYPE ndarray[stop - start]``) with numpy, when no rule but the backward count applies: every
    time step from ``state``'s previous time through the record after ``stop`` (and from the one before
    ``start``) is at most ``OUTLIER_STEP``, and every x/y is inside ``(height, width)``. Returns the
    backward steps with ``state`` updated, or None, leaving ``state`` untouched, when a rule applies (the
    kernels decode then; ``out`` is overwritten). Reads of ``PARALLEL_MIN_RECORDS`` or more are split
    between up to ``_NUMPY_THREADS`` threads (numpy releases the GIL)."""
    n = flat.shape[0]
    parts = min(_NUMPY_THREADS, stop - start) if stop - start >= PARALLEL_MIN_RECORDS else 1
    cuts = [start + (stop - start) * k // parts for k in range(parts + 1)]
    spans: list = [None] * parts  # per part: (backward, first t32, last t32), None, or the exception raised

    def decode(k: int) -> None:
        try:
            spans[k] = _decode_clean_span(flat, cuts[k], cuts[k + 1],
                                          out[cuts[k] - start:cuts[k + 1] - start], height, width)
        except BaseException as exc:  # re-raised by the calling thread
            spans[k] = exc

    threads = [threading.Thread(target=decode, args=(k,)) for k in range(1, parts)]
    for thread in threads:
        thread.start()
    decode(0)
    for thread in threads:
        thread.join()
    for span in spans:
        if isinstance(span, BaseException):
            raise span
    if any(span is None for span in spans):
        return None
    prev = int(state[_PREV])
    steps = [(prev, spans[0][1])] if prev >= 0 else []  # steps between the parts, backward ones counted
    steps += [(a[2], b[1]) for a, b in zip(spans[:-1], spans[1:], strict=True)]
    edges = []  # the neighbours outside the range: judged, not counted
    if start > 0:
        edges.append((int(flat[start - 1] & 0xFFFFFFFF), spans[0][1]))
    if stop < n:
        edges.append((spans[-1][2], int(flat[stop] & 0xFFFFFFFF)))
    if any(abs(b - a) > OUTLIER_STEP for a, b in steps + edges):
        return None
    if state[_OFFSET]:
        out["t"] += state[_OFFSET]
    state[_PREV] = spans[-1][2]
    return sum(span[0] for span in spans) + sum(b < a for a, b in steps)


def _decode_clean_span(flat: np.ndarray, start: int, stop: int, out: np.ndarray, height: int,
                       width: int) -> tuple[int, int, int] | None:
    """``flat[start:stop]`` -> ``out`` (``EVENT_DTYPE ndarray[stop - start]``, t = the stored 32-bit time)
    in cache-sized chunks: ``(backward steps within the span, first t32, last t32)``, or None as soon as a
    step exceeds ``OUTLIER_STEP`` or an x/y lies outside ``(height, width)``."""
    words = out.view(np.uint64).reshape(-1, 2)  # [n, 2]: x | y << 16 | p << 32, t
    t_signed = out.view(np.int64).reshape(-1, 2)[:, 1]
    a = np.empty(_NUMPY_CHUNK, dtype=np.uint64)
    b = np.empty(_NUMPY_CHUNK, dtype=np.uint64)
    diffs = np.empty(_NUMPY_CHUNK, dtype=np.int64)
    backward = 0
    last = None  # stored time of the record before the chunk
    for s in range(start, stop, _NUMPY_CHUNK):
        e = min(s + _NUMPY_CHUNK, stop)
        m, lo = e - s, s - start
        v = flat[s:e]
        t = t_signed[lo:lo + m]
        np.bitwise_and(v, 0xFFFFFFFF, out=words[lo:lo + m, 1])
        if last is not None:
            step = int(t[0]) - last
            if abs(step) > OUTLIER_STEP:
                return None
            backward += step < 0
        if m > 1:
            d = np.subtract(t[1:], t[:-1], out=diffs[:m - 1])
            low = int(d.min())
            if low < -OUTLIER_STEP or int(d.max()) > OUTLIER_STEP:
                return None
            if low < 0:
                backward += int(np.count_nonzero(d < 0))
        last = int(t[-1])
        packed, field = a[:m], b[:m]
        np.right_shift(v, 32, out=packed)
        xy = words[lo:lo + m, 0]
        np.bitwise_and(packed, 0x3FFF, out=xy)  # x
        np.bitwise_and(packed, 0x0FFFC000, out=field)  # y << 14
        if int(xy.max()) >= width or int(field.max()) >> 14 >= height:
            return None
        np.left_shift(field, 2, out=field)
        np.bitwise_or(xy, field, out=xy)
        np.bitwise_and(packed, 0x10000000, out=field)  # p << 28
        np.left_shift(field, 4, out=field)
        np.bitwise_or(xy, field, out=xy)
    return backward, int(t_signed[0]), last


def max_xy(records: np.ndarray) -> tuple[int, int]:
    """``records uint32[N, 2]`` -> (max x, max y) over the records, (-1, -1) when empty."""
    if records.shape[0] == 0:
        return -1, -1
    max_x = max_y = 0
    for s in range(0, records.shape[0], _NUMPY_CHUNK):
        w = np.asarray(records[s:s + _NUMPY_CHUNK, 1])
        max_x = max(max_x, int((w & 0x3FFF).max()))
        max_y = max(max_y, int((w & 0x0FFFC000).max()) >> 14)
    return max_x, max_y


def encode_dat_records(events: np.ndarray) -> np.ndarray:
    """``EVENT_DTYPE ndarray[N]`` -> ``uint32 ndarray[N, 2]`` DAT records (time wrapped to 32 bits)."""
    records = np.empty((events.shape[0], 2), dtype=np.uint32)
    records[:, 0] = (events["t"] & 0xFFFFFFFF).astype(np.uint32)
    records[:, 1] = (events["x"].astype(np.uint32) | (events["y"].astype(np.uint32) << 14)
                     | (events["p"].astype(np.uint32) << 28))
    return records
