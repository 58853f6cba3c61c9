"""Prophesee EVT 2.0 word decoding (SPEC 2.3): numba kernel and its public wrapper ``decode_evt2``.

Each 32-bit little-endian word carries its type in bits 28-31:

- ``0`` CD_OFF / ``1`` CD_ON: ``y`` bits 0-10, ``x`` bits 11-21, time low (6 bits) bits 22-27;
- ``8`` EV_TIME_HIGH: bits 0-27 are bits 6-33 of the time; ``t = (time_high << 6) | time_low`` (µs);
- ``10`` EXT_TRIGGER, ``14`` OTHERS, ``15`` CONTINUED: ignored.

Any other type is an error. CD words before the first EV_TIME_HIGH are dropped (their time is unknown).
The 34-bit time wraps after ~4.8 h: when time high decreases by more than half its range, 2^34 µs is
added to the following times.

Corrupt time-high words (the rule of ``time_high.py``, shared with EVT 2.1 and 3.0). A sensor's time high
moves by 0 or 1 between two EV_TIME_HIGH words (each is 64 µs), so any other step is checked against the
next EV_TIME_HIGH word, in the spirit of OpenEB's EVT 3.0 validator (which rejects a time high that goes
backwards except across the wrap): the word is corrupt when the next time high is reached sooner (forward,
modulo 2^28) from the current one than from the new one, i.e. when the stream continues from where it was; a
real jump (a gap in the recording) is followed by time highs continuing from it. Without a next time high, a
step backwards is corrupt. The first time high is corrupt when neither of the next two is forward from it
(it is kept when fewer than two follow). A corrupt word is skipped (its CD events keep the previous time
high) and counted. CD events outside the sensor geometry given to the decoder are dropped and counted.
"""

from __future__ import annotations

import numba
import numpy as np

from evdet.io.dtypes import empty_events
from evdet.io.evt_words import word_range
from evdet.io.time_high import EVT2_TIME_HIGH, skip_corrupt_time_high

EVT2_STATE_SIZE = 9
# state slots: time high (-1 = none yet), loop offset (µs), first bad word or -1, last event time,
# number of events whose time is below the previous event's (unsorted stream), corrupt time-high words
# skipped and the first one's word index (-1: none), events outside the geometry and the first one's word
_TH, _LOOP, _ERR, _LAST_T, _BACK, _NSKIP, _FSKIP, _NOUT, _FOUT = range(EVT2_STATE_SIZE)
assert _FSKIP == _NSKIP + 1  # the layout skip_corrupt_time_high counts into
_TH_MASK = (1 << 28) - 1
_TH_HALF = 1 << 27
_LOOP_STEP = 1 << 34
EVT2_KNOWN_TYPES = (0, 1, 8, 10, 14, 15)


def new_evt2_state() -> np.ndarray:
    """Fresh decoder state: ``int64 ndarray[9]`` (time high, wrap offset, error word index, last event
    time, count of backward time steps, corrupt time-high words skipped, first such word, events outside
    the geometry, first such word; -1 = none)."""
    return np.array([-1, 0, -1, -1, 0, 0, -1, 0, -1], dtype=np.int64)


def backward_steps(state: np.ndarray) -> int:
    """Events decoded so far with ``t`` below the previous event's (0 for a time-ordered stream)."""
    return int(state[_BACK])


def evt2_drops(state: np.ndarray) -> tuple[int, int, int, int]:
    """``(corrupt time-high words skipped, first one's word index, events outside the geometry, first
    one's word index)`` counted in ``state`` (indices into the decoded ``words``, -1 when none)."""
    return int(state[_NSKIP]), int(state[_FSKIP]), int(state[_NOUT]), int(state[_FOUT])


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
def _any_outside(words, start, stop, height, width):  # pragma: no cover - compiled
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
def _decode_evt2_kernel(words, start, stop, out64, state, limits):  # pragma: no cover - compiled
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


def decode_evt2(words: np.ndarray, state: np.ndarray | None = None, source: str = "EVT2 data",
                byte_offset: int = 0, start: int = 0, stop: int | None = None,
                geometry: tuple[int, int] | None = None) -> np.ndarray:
    """Decode EVT 2.0 words ``[start, stop)`` into events.

    Args:
        words: ``uint32 ndarray[N]`` (little-endian words, header removed), e.g. a memory map of the whole
            stream: words from ``stop`` on are read (not decoded) to check a time-high word near the end
            of the range, so that the result does not depend on where a stream is cut.
        state: decoder state from ``new_evt2_state()``, updated in place so that a stream can be decoded
            chunk by chunk (and the drops counted, ``evt2_drops``); None starts fresh.
        source, byte_offset: file name and byte offset of ``words[0]``, used in error messages.
        start, stop: the words to decode (default: all).
        geometry: ``(height, width)``: events with ``y >= height`` or ``x >= width`` are dropped and
            counted; None drops none.

    Returns:
        ``EVENT_DTYPE ndarray[n]`` (``t`` in µs), n <= stop - start.

    Raises:
        ValueError: a word has an unknown type (names ``source``, the byte offset and the type).
    """
    if state is None:
        state = new_evt2_state()
    words, start, stop = word_range(words, np.uint32, start, stop)
    out = empty_events(stop - start)
    if stop == start:
        return out
    limits = None
    if geometry is not None and _any_outside(words, start, stop, int(geometry[0]), int(geometry[1])):
        limits = (int(geometry[0]), int(geometry[1]))
    n = _decode_evt2_kernel(words, start, stop, out.view(np.int64), state, limits)
    if state[_ERR] >= 0:
        i = int(state[_ERR])
        raise ValueError(f"{source}: unknown EVT 2.0 event type {int(words[i]) >> 28} in word "
                         f"0x{int(words[i]):08x} at byte offset {byte_offset + 4 * i}")
    return out[:n]
