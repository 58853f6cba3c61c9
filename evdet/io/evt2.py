"""Prophesee EVT 2.0 word decoding (SPEC 2.3): numba kernel and its public wrapper ``decode_evt2``.

Each 32-bit little-endian word carries its type in bits 28-31:

- ``0`` CD_OFF / ``1`` CD_ON: ``y`` bits 0-10, ``x`` bits 11-21, time low (6 bits) bits 22-27;
- ``8`` EV_TIME_HIGH: bits 0-27 are bits 6-33 of the time; ``t = (time_high << 6) | time_low`` (µs);
- ``10`` EXT_TRIGGER, ``14`` OTHERS, ``15`` CONTINUED: ignored.

Any other type is an error. CD words before the first EV_TIME_HIGH are dropped (their time is unknown).
The 34-bit time wraps after ~4.8 h: when time high decreases by more than half its range, 2^34 µs is
added to the following times.
"""

from __future__ import annotations

import numba
import numpy as np

from evdet.io.dtypes import EVENT_DTYPE

EVT2_STATE_SIZE = 5
# state slots: time high (-1 = none yet), loop offset (µs), first bad word or -1, last event time,
# number of events whose time is below the previous event's (unsorted stream)
_TH, _LOOP, _ERR, _LAST_T, _BACK = 0, 1, 2, 3, 4
_TH_HALF = 1 << 27
_LOOP_STEP = 1 << 34
EVT2_KNOWN_TYPES = (0, 1, 8, 10, 14, 15)


def new_evt2_state() -> np.ndarray:
    """Fresh decoder state: ``int64 ndarray[5]`` (time high, wrap offset, error word index, last event
    time, count of backward time steps)."""
    return np.array([-1, 0, -1, -1, 0], dtype=np.int64)


def backward_steps(state: np.ndarray) -> int:
    """Events decoded so far with ``t`` below the previous event's (0 for a time-ordered stream)."""
    return int(state[_BACK])


@numba.njit(cache=True, nogil=True)
def _decode_evt2_kernel(words, out64, state):  # pragma: no cover - compiled
    """words uint32[N] -> out64 int64[>=2N] (EVENT_DTYPE buffer seen as int64, little-endian:
    word 2n = x | y << 16 | p << 32, word 2n+1 = t); returns the number of events written."""
    th = state[_TH]
    loop = state[_LOOP]
    last_t = state[_LAST_T]
    back = state[_BACK]
    n = 0
    for i in range(words.shape[0]):
        w = np.int64(words[i])
        kind = w >> 28
        if kind <= 1:
            if th >= 0:
                t = loop + ((th << 6) | ((w >> 22) & 0x3F))
                if t < last_t:
                    back += 1
                last_t = t
                out64[2 * n] = ((w >> 11) & 0x7FF) | ((w & 0x7FF) << 16) | (kind << 32)
                out64[2 * n + 1] = t
                n += 1
        elif kind == 8:
            new = w & 0xFFFFFFF
            if th >= 0 and th - new > _TH_HALF:
                loop += _LOOP_STEP
            th = new
        elif kind != 10 and kind != 14 and kind != 15:
            state[_ERR] = i
            break
    state[_TH] = th
    state[_LOOP] = loop
    state[_LAST_T] = last_t
    state[_BACK] = back
    return n


def decode_evt2(words: np.ndarray, state: np.ndarray | None = None, source: str = "EVT2 data",
                byte_offset: int = 0) -> np.ndarray:
    """Decode EVT 2.0 words into events.

    Args:
        words: ``uint32 ndarray[N]`` (little-endian words, header removed).
        state: decoder state from ``new_evt2_state()``, updated in place so that a stream can be decoded
            chunk by chunk; None starts fresh.
        source, byte_offset: file name and byte offset of ``words[0]``, used in error messages.

    Returns:
        ``EVENT_DTYPE ndarray[n]`` (``t`` in µs), n <= N.

    Raises:
        ValueError: a word has an unknown type (names ``source``, the byte offset and the type).
    """
    if state is None:
        state = new_evt2_state()
    words = np.ascontiguousarray(words, dtype=np.uint32)
    out = np.empty(words.shape[0], dtype=EVENT_DTYPE)
    if words.shape[0] == 0:
        return out
    n = _decode_evt2_kernel(words, out.view(np.int64), state)
    if state[_ERR] >= 0:
        i = int(state[_ERR])
        raise ValueError(f"{source}: unknown EVT 2.0 event type {int(words[i]) >> 28} in word "
                         f"0x{int(words[i]):08x} at byte offset {byte_offset + 4 * i}")
    return out[:n]
