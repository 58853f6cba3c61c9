"""Prophesee EVT 2.1 word decoding (SPEC 2.3): numba kernel and its public wrapper ``decode_evt21``.

EVT 2.1 (the default of GenX320, an option of IMX636) extends EVT 2.0 to 64-bit vectorised words. Each
word, read as a little-endian 64-bit integer, carries its type in bits 60-63:

- ``0`` EVT_NEG / ``1`` EVT_POS: a group of up to 32 events of one polarity on one row: bits 0-31 are a
  valid mask, ``y`` bits 32-42, ``x`` bits 43-53 (the group's first column), time low (6 bits) bits
  54-59; bit ``i`` of the mask set means an event at ``(x + i, y)``, emitted in increasing ``i``;
- ``8`` EVT_TIME_HIGH: bits 32-59 are bits 6-33 of the time; ``t = (time_high << 6) | time_low`` (µs);
- ``10`` EXT_TRIGGER, ``14`` OTHERS, ``15`` CONTINUED: ignored.

Any other type is an error. Events before the first EVT_TIME_HIGH are dropped (their time is unknown).
The 34-bit time wraps after ~4.8 h: as for EVT 2.0, a time high that decreases by more than half its
range adds 2^34 µs to the following times.

IMX636 sends each 64-bit word as two 32-bit little-endian halves, low half *second*: OpenEB calls this
layout "legacy" (``% format EVT21;endianness=legacy``); with ``legacy=True`` the two halves are swapped
before decoding (type in bits 28-31 of the first 32-bit half).

Corrupt time-high words: EVT 2.0's rule, in the one implementation shared by all EVT decoders
(:mod:`evdet.io.time_high`): an EVT_TIME_HIGH word whose step from the current time high is neither 0 nor
1 is checked against the next EVT_TIME_HIGH words (read beyond ``stop`` if needed, so that the result does
not depend on where the stream is cut) and skipped when the stream continues from the previous time high;
its events keep that time high.

The decoder state is EVT 2.0's (:func:`evdet.io.evt2.new_evt2_state`): time high, wrap offset, error
word, last time, backward steps, corrupt time-high words skipped and the first one's word, events outside
the geometry and the first one's word (counted as :func:`evdet.io.evt2.evt2_drops` reads them).
"""

from __future__ import annotations

import numba
import numpy as np

from evdet.io.dtypes import EVENT_DTYPE, empty_events
from evdet.io.evt2 import _ERR, new_evt2_state
from evdet.io.evt2_kernels import evt2_time_high, load_evt2_state, store_evt2_state
from evdet.io.evt_words import word_range
from evdet.io.time_high import EVT21_LEGACY_TIME_HIGH, EVT21_TIME_HIGH


@numba.njit(cache=True, nogil=True, inline="always")
def _word(words, i, legacy):  # pragma: no cover - compiled
    w = np.uint64(words[i])
    if legacy:
        w = (w >> np.uint64(32)) | ((w & np.uint64(0xFFFFFFFF)) << np.uint64(32))
    return w


@numba.njit(cache=True, nogil=True)
def _count_evt21_kernel(words, start, stop, legacy):  # pragma: no cover - compiled
    """Upper bound of the events in ``words[start:stop]``: the set mask bits of every CD word."""
    n = 0
    for i in range(start, stop):
        w = _word(words, i, legacy)
        if (w >> np.uint64(60)) <= np.uint64(1):
            m = np.uint32(w & np.uint64(0xFFFFFFFF))
            while m:
                m &= m - np.uint32(1)
                n += 1
    return n


@numba.njit(cache=True, nogil=True)
def _decode_evt21_kernel(words, start, stop, out64, state, legacy, height, width,
                         layout):  # pragma: no cover - compiled
    """words uint64[N], decoded in ``[start, stop)`` -> out64 int64[>= 2 * events] (EVENT_DTYPE buffer seen
    as int64: word 2n = x | y << 16 | p << 32, word 2n+1 = t); events with ``y >= height`` or
    ``x >= width`` are dropped and counted (a negative height keeps all); ``layout``: the time-high layout
    of :mod:`evdet.io.time_high` matching ``legacy``; returns the events written."""
    th, loop, last_t, back, n_out, first_out = load_evt2_state(state)
    n = 0
    for i in range(start, stop):
        w = _word(words, i, legacy)
        kind = np.int64(w >> np.uint64(60))
        hi = np.int64((w >> np.uint64(32)) & np.uint64(0xFFFFFFF))  # bits 32-59
        if kind <= 1:
            if th >= 0:
                t = loop + ((th << 6) | (hi >> 22))
                if t < last_t:
                    back += 1
                last_t = t
                y = hi & 0x7FF
                x = (hi >> 11) & 0x7FF
                mask = np.int64(w & np.uint64(0xFFFFFFFF))
                head = (y << 16) | (kind << 32)
                for b in range(32):
                    if (mask >> b) & 1:
                        if height >= 0 and (y >= height or x + b >= width):
                            if first_out < 0:
                                first_out = i
                            n_out += 1
                            continue
                        out64[2 * n] = (x + b) | head
                        out64[2 * n + 1] = t
                        n += 1
        elif kind == 8:
            th, loop = evt2_time_high(words, i, th, hi, loop, layout, state)
        elif kind != 10 and kind != 14 and kind != 15:
            state[_ERR] = i
            break
    store_evt2_state(state, th, loop, last_t, back, n_out, first_out)
    return n


def decode_evt21(words: np.ndarray, state: np.ndarray | None = None, source: str = "EVT2.1 data",
                 byte_offset: int = 0, start: int = 0, stop: int | None = None,
                 geometry: tuple[int, int] | None = None, legacy: bool = False) -> np.ndarray:
    """Decode EVT 2.1 words ``[start, stop)`` into events.

    Args:
        words: ``uint64 ndarray[N]`` (little-endian 64-bit words, header removed), e.g. a memory map of the
            whole stream: words from ``stop`` on are read (not decoded) to check a time-high word near the
            end of the range.
        state: decoder state from :func:`evdet.io.evt2.new_evt2_state`, updated in place so that a stream
            can be decoded chunk by chunk (``evt2_drops`` gives the corrupt time-high words skipped and the
            events outside the geometry); None starts fresh.
        source, byte_offset: file name and byte offset of ``words[0]``, used in error messages.
        start, stop: the words to decode (default: all).
        geometry: ``(height, width)``: events with ``y >= height`` or ``x >= width`` are dropped and
            counted; None drops none.
        legacy: the IMX636 layout (32-bit halves swapped, see the module docstring).

    Returns:
        ``EVENT_DTYPE ndarray[n]`` (``t`` in µs), ``n <= 32 (stop - start)``.

    Raises:
        ValueError: a word has an unknown type (names ``source``, the byte offset and the type).
    """
    if state is None:
        state = new_evt2_state()
    words, start, stop = word_range(words, np.uint64, start, stop)
    if stop == start:
        return np.empty(0, dtype=EVENT_DTYPE)
    height, width = (-1, -1) if geometry is None else (int(geometry[0]), int(geometry[1]))
    out = empty_events(_count_evt21_kernel(words, start, stop, bool(legacy)))
    layout = EVT21_LEGACY_TIME_HIGH if legacy else EVT21_TIME_HIGH
    n = _decode_evt21_kernel(words, start, stop, out.view(np.int64), state, bool(legacy), height, width,
                             layout)
    if state[_ERR] >= 0:
        i = int(state[_ERR])
        w = int(words[i])
        if legacy:
            w = (w >> 32) | ((w & 0xFFFFFFFF) << 32)
        raise ValueError(f"{source}: unknown EVT 2.1 event type {w >> 60} in word 0x{w:016x} at byte "
                         f"offset {byte_offset + 8 * i}")
    return out[:n]
