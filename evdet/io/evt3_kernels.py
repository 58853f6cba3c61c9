"""The numba kernel of EVT 3.0 (:mod:`evdet.io.evt3` holds the format, the state, the numpy path for clean
streams and the entry point ``decode_evt3``, which imports this module only when the rules are needed)."""

from __future__ import annotations

import numba
import numpy as np

from evdet.io.evt3 import (
    _BACK,
    _BX,
    _ERR,
    _FOUT,
    _LAST_T,
    _LOOP,
    _LOOP_STEP,
    _NOUT,
    _NSKIP,
    _POL,
    _TH,
    _TH_HALF,
    _TH_MASK,
    _TL,
    _TLOVF,
    _Y,
    EVT3_MAX_EVENTS_PER_WORD,
)
from evdet.io.time_high import EVT3_TIME_HIGH, skip_corrupt_time_high


@numba.njit(cache=True, nogil=True)
def decode_evt3_kernel(words, start, stop, out64, state, compat, width,
                        height):  # pragma: no cover - compiled
    """Decode words[start:stop] into out64 (EVENT_DTYPE buffer seen as int64, little-endian: word 2n =
    x | y << 16 | p << 32, word 2n+1 = t) until it could overflow; returns (events written, next word).
    Events with x >= width or y >= height are dropped and counted."""
    y = state[_Y]
    bx = state[_BX]
    pol = state[_POL]
    th = state[_TH]
    tl = state[_TL]
    loop = state[_LOOP]
    tlovf = state[_TLOVF]
    last_t = state[_LAST_T]
    back = state[_BACK]
    n_out = state[_NOUT]
    first_out = state[_FOUT]
    cap = out64.shape[0] // 2 - EVT3_MAX_EVENTS_PER_WORD
    n = 0
    i = start
    nw = stop
    t = loop + ((th + tlovf) << 12) + tl
    while i < nw and n <= cap:
        w = np.int64(words[i])
        kind = w >> 12
        if kind == 0x2:
            if th >= 0:
                if t < last_t:
                    back += 1
                last_t = t
                x = w & 0x7FF
                if x >= width or y >= height:
                    if n_out == 0:
                        first_out = i
                    n_out += 1
                else:
                    out64[2 * n] = x | (y << 16) | (((w >> 11) & 1) << 32)
                    out64[2 * n + 1] = t
                    n += 1
        elif kind == 0x0:
            y = w & 0x7FF
        elif kind == 0x4 or kind == 0x5:
            nbits = 12 if kind == 0x4 else 8
            mask = (w & 0xFFF) if kind == 0x4 else (w & 0xFF)
            if th >= 0 and mask:
                if t < last_t:
                    back += 1
                last_t = t
                high = (y << 16) | (pol << 32)
                for b in range(nbits):
                    if (mask >> b) & 1:
                        x = (bx + b) & 0x7FF  # x field: 11 bits, no carry into y
                        if x >= width or y >= height:
                            if n_out == 0:
                                first_out = i
                            n_out += 1
                        else:
                            out64[2 * n] = x | high
                            out64[2 * n + 1] = t
                            n += 1
            bx += nbits
        elif kind == 0x3:
            bx = w & 0x7FF
            pol = (w >> 11) & 1
        elif kind == 0x6:
            new = w & 0xFFF
            if compat and new < tl:
                tlovf += 1
            tl = new
            t = loop + ((th + tlovf) << 12) + tl
        elif kind == 0x8:
            new = w & 0xFFF
            jump = th < 0 or ((new - th) & _TH_MASK) > 1
            if jump and skip_corrupt_time_high(words, i, th, new, EVT3_TIME_HIGH, state, _NSKIP):
                i += 1
                continue
            if th >= 0 and (th - new > _TH_HALF or (compat and new < th)):
                loop += _LOOP_STEP
            th = new
            t = loop + ((th + tlovf) << 12) + tl
        elif kind != 0x7 and kind != 0xA and kind != 0xE and kind != 0xF:
            state[_ERR] = i
            break
        i += 1
    state[_Y] = y
    state[_BX] = bx
    state[_POL] = pol
    state[_TH] = th
    state[_TL] = tl
    state[_LOOP] = loop
    state[_TLOVF] = tlovf
    state[_LAST_T] = last_t
    state[_BACK] = back
    state[_NOUT] = n_out
    state[_FOUT] = first_out
    return n, i
