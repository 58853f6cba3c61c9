"""Numba kernels of the EVT 2.0 decoder (:mod:`evdet.io.evt2` holds the format, the state and the entry
point), and the time-high step shared with EVT 2.1 (:mod:`evdet.io.evt21`).

Kept apart so that importing the decoder, and decoding clean streams with its numpy path, never imports
numba: loading numba and these cached kernels costs about half a second in a fresh process, far more than
decoding a real recording's words with numpy (``evt2.decode_evt2`` chooses).
"""

from __future__ import annotations

import numba
import numpy as np

from evdet.io.evt2 import (
    _BACK,
    _ERR,
    _FOUT,
    _LAST_T,
    _LOOP,
    _LOOP_STEP,
    _NOUT,
    _NSKIP,
    _TH,
    _TH_HALF,
    _TH_MASK,
)
from evdet.io.time_high import EVT2_TIME_HIGH, skip_corrupt_time_high


@numba.njit(cache=True, nogil=True, inline="always")
def load_evt2_state(state):  # pragma: no cover - compiled
    """The running values of an EVT 2.x decoder kept in ``state``: ``(time high, wrap offset, last event
    time, backward steps, events outside the geometry, first such word)``."""
    return state[_TH], state[_LOOP], state[_LAST_T], state[_BACK], state[_NOUT], state[_FOUT]


@numba.njit(cache=True, nogil=True, inline="always")
def store_evt2_state(state, th, loop, last_t, back, n_out, first_out):  # pragma: no cover - compiled
    """Write the running values of :func:`load_evt2_state` back into ``state``."""
    state[_TH] = th
    state[_LOOP] = loop
    state[_LAST_T] = last_t
    state[_BACK] = back
    state[_NOUT] = n_out
    state[_FOUT] = first_out


@numba.njit(cache=True, nogil=True, inline="always")
def evt2_time_high(words, i, th, new, loop, layout, state):  # pragma: no cover - compiled
    """The EVT 2.x TIME_HIGH word ``i`` of value ``new`` applied to the time high ``th`` and wrap offset
    ``loop``: returns the new ``(th, loop)``; unchanged when the word is corrupt (skipped and counted in
    ``state``, see :mod:`evdet.io.time_high`); a decrease by more than half the range adds 2^34 µs."""
    jump = th < 0 or ((new - th) & _TH_MASK) > 1
    if jump and skip_corrupt_time_high(words, i, th, new, layout, state, _NSKIP):
        return th, loop
    if th >= 0 and th - new > _TH_HALF:
        loop += _LOOP_STEP
    return new, loop


@numba.njit(cache=True, nogil=True)
def any_outside(words, start, stop, height, width):  # pragma: no cover - compiled
    """Whether a CD word of ``words[start:stop]`` has ``x >= width`` or ``y >= height`` (a branch-free
    scan, ~10x faster than decoding, that lets the decoder skip the per-event check)."""
    chunk = words[start:stop]
    bad = np.uint32(0)
    h, wd = np.uint32(height), np.uint32(width)
    for k in range(chunk.shape[0]):
        w = chunk[k]
        outside = np.uint32(((w >> 11) & 0x7FF) >= wd) | np.uint32((w & 0x7FF) >= h)
        bad |= np.uint32((w >> 28) <= 1) & outside
    return bad != 0


@numba.njit(cache=True, nogil=True)
def decode_evt2_kernel(words, start, stop, out64, state, limits):  # pragma: no cover - compiled
    """words[start:stop] (uint32) -> out64 int64[>=2 (stop - start)] (EVENT_DTYPE buffer seen as int64,
    little-endian: word 2n = x | y << 16 | p << 32, word 2n+1 = t); returns the number of events written.

    ``limits``: ``(height, width)``, events outside are dropped and counted, or None (no check: numba
    compiles that case without it)."""
    th, loop, last_t, back, n_out, first_out = load_evt2_state(state)
    n = 0
    chunk = words[start:stop]  # a loop over a slice is ~6 % faster than over range(start, stop)
    for k in range(chunk.shape[0]):
        w = np.int64(chunk[k])
        kind = w >> 28
        if kind <= 1:
            if th >= 0:
                x = (w >> 11) & 0x7FF
                y = w & 0x7FF
                if limits is not None:
                    if x >= limits[1] or y >= limits[0]:
                        if n_out == 0:
                            first_out = start + k
                        n_out += 1
                        continue
                t = loop + ((th << 6) | ((w >> 22) & 0x3F))
                if t < last_t:
                    back += 1
                last_t = t
                out64[2 * n] = x | (y << 16) | (kind << 32)
                out64[2 * n + 1] = t
                n += 1
        elif kind == 8:
            th, loop = evt2_time_high(words, start + k, th, w & _TH_MASK, loop, EVT2_TIME_HIGH, state)
        elif kind != 10 and kind != 14 and kind != 15:
            state[_ERR] = start + k
            break
    store_evt2_state(state, th, loop, last_t, back, n_out, first_out)
    return n
