"""Prophesee EVT 3.0 word decoding (SPEC 2.3): numba kernel and its public wrapper ``decode_evt3``.

16-bit little-endian words, type in bits 12-15 (the decoder keeps its state across words and chunks):

- ``0x0`` EVT_ADDR_Y: ``y`` = bits 0-10 (bit 11: system type, ignored);
- ``0x2`` EVT_ADDR_X: one event at ``x`` = bits 0-10, polarity bit 11, current ``y`` and time;
- ``0x3`` VECT_BASE_X: base ``x`` = bits 0-10, vector polarity bit 11;
- ``0x4`` VECT_12: events at ``x = (base_x + i) & 0x7FF`` (the 11-bit field width) for each set bit ``i``
  of bits 0-11, then ``base_x += 12``;
- ``0x5`` VECT_8: the same with bits 0-7, then ``base_x += 8``;
- ``0x6`` EVT_TIME_LOW / ``0x8`` EVT_TIME_HIGH: 12 bits each; ``t = (time_high << 12) | time_low`` (µs);
- ``0x7`` CONTINUED_4, ``0xA`` EXT_TRIGGER, ``0xE`` OTHERS, ``0xF`` CONTINUED_12: ignored.

Any other type is an error. Events before the first EVT_TIME_HIGH are dropped (time unknown), and so
are events outside the sensor geometry given to the decoder (counted in the state). The
24-bit time wraps every 2^24 µs (~16.8 s): when time high decreases by more than half its range,
2^24 µs is added to the following times.

Corrupt time-high words. OpenEB's EVT 3.0 decoder (``evt3_validator.h``, ``BasicCheckValidator``) checks
each EVT_TIME_HIGH against the previous one: it may stay or move forward, and may go back only across the
wrap (0xFFF -> 0, or a "loose" overflow landing within 0xFF steps past the top); any other decrease is
reported as a ``NonMonotonicTimeHigh`` protocol violation, but the word is still used, and a time-high loop
is counted whenever the previous value is at least 2^11 above the new one, so one corrupt word can still
shift the rest of the stream. evdet applies the rule of ``time_high.py`` (shared with EVT 2.0 and 2.1),
which decides from the following word instead of the previous one alone and skips the bad word: a sensor's
time high moves by 0 or 1 between two EVT_TIME_HIGH words (each step is 4096 µs; EVT_TIME_HIGH is sent at
least once per step), so any other step is checked against the next EVT_TIME_HIGH word. The word is corrupt
when that next time high is reached sooner (forward, modulo 2^12) from the current time high than from the
new one, i.e. when the stream continues from where it was; a real jump (a gap in the recording) or a wrap
(4095 -> 0) is followed by time highs continuing from it. Without a next time high, a step backwards (more
than half the range forward) is corrupt. The first time high is corrupt when neither of the next two is
forward from it (kept when fewer than two follow). A corrupt word is skipped (the following events keep the
previous time high) and counted (``evt3_drops``). The look-ahead reads the words beyond ``stop``, so the
result does not depend on where a stream is cut into chunks. The rule applies in both time modes.

Time modes (``time_mode``):

- ``"spec"`` (default): ``t = wrap offset + (time_high << 12 | time_low)`` as the format defines it.
  Real IMX636 streams contain small backward steps of EVT_TIME_LOW words (e.g. 811 -> 800 in
  ``evt3_sample.raw``, with no event in between); they are not overflows. On the sample, this mode
  gives non-decreasing times spanning 8.8 ms (t 11 718 656 .. 11 727 457).
- ``"expelliarmus"``: reproduces the expelliarmus 1.1 decoder (and so ``evt3_sample.npy``) exactly:
  every decrease of EVT_TIME_LOW counts as an overflow that adds 4096 µs for the rest of the stream,
  and any decrease of EVT_TIME_HIGH adds 2^24 µs. On real data this stretches time (the sample's
  8.8 ms become 53.9 ms); use it only for compatibility with data decoded by that tool.
"""

from __future__ import annotations

import numba
import numpy as np

from evdet.io.dtypes import concatenate_events, empty_events
from evdet.io.evt_words import word_range
from evdet.io.time_high import EVT3_TIME_HIGH, skip_corrupt_time_high

EVT3_STATE_SIZE = 14
# state slots: y, base x, vector polarity, time high (-1 = none yet), time low, loop offset, error word,
# time-low overflow count (expelliarmus mode only), last event time, count of backward time steps,
# events outside the geometry and the word index of the first one (-1: none), corrupt time-high words
# skipped and the word index of the first one (-1: none)
_Y, _BX, _POL, _TH, _TL, _LOOP, _ERR, _TLOVF, _LAST_T, _BACK, _NOUT, _FOUT, _NSKIP, _FSKIP = range(
    EVT3_STATE_SIZE)
EVT3_MAX_COORD = 1 << 11
"""x and y are 11-bit fields: the geometry limit that drops nothing."""
EVT3_TIME_MODES = {"spec": 0, "expelliarmus": 1}
assert _FSKIP == _NSKIP + 1  # the layout skip_corrupt_time_high counts into
_TH_MASK = (1 << 12) - 1
_TH_HALF = 1 << 11
_LOOP_STEP = 1 << 24
EVT3_KNOWN_TYPES = (0x0, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8, 0xA, 0xE, 0xF)
EVT3_MAX_EVENTS_PER_WORD = 12


def new_evt3_state() -> np.ndarray:
    """Fresh decoder state: ``int64 ndarray[14]`` (y, base x, polarity, time high, time low, wrap offset,
    error word index, time-low overflow count, last event time, count of backward time steps, events
    outside the geometry, first such word, corrupt time-high words skipped, first such word; -1 =
    none)."""
    return np.array([0, 0, 0, -1, 0, 0, -1, 0, -1, 0, 0, -1, 0, -1], dtype=np.int64)


def evt3_outside(state: np.ndarray) -> tuple[int, int]:
    """``(events outside the geometry dropped, word index of the first one or -1)`` counted in ``state``."""
    return int(state[_NOUT]), int(state[_FOUT])


def evt3_drops(state: np.ndarray) -> tuple[int, int, int, int]:
    """``(corrupt time-high words skipped, first one's word index, events outside the geometry, first
    one's word index)`` counted in ``state`` (indices into the decoded ``words``, -1 when none)."""
    return int(state[_NSKIP]), int(state[_FSKIP]), int(state[_NOUT]), int(state[_FOUT])


def backward_steps(state: np.ndarray) -> int:
    """Events decoded so far with ``t`` below the previous event's (0 for a time-ordered stream)."""
    return int(state[_BACK])


@numba.njit(cache=True, nogil=True)
def _decode_evt3_kernel(words, start, stop, out64, state, compat, width,
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


def decode_evt3(words: np.ndarray, state: np.ndarray | None = None, source: str = "EVT3 data",
                byte_offset: int = 0, time_mode: str = "spec", start: int = 0, stop: int | None = None,
                geometry: tuple[int, int] | None = None) -> np.ndarray:
    """Decode EVT 3.0 words ``[start, stop)`` into events.

    Args:
        words: ``uint16 ndarray[N]`` (little-endian words, header removed), e.g. a memory map of the whole
            stream: words from ``stop`` on are read (not decoded) to check a time-high word near the end
            of the range, so that the result does not depend on where a stream is cut.
        state: decoder state from ``new_evt3_state()``, updated in place so that a stream can be decoded
            chunk by chunk (a chunk may end inside a vector; ``evt3_drops`` gives the corrupt time-high
            words skipped and the events outside the geometry); None starts fresh.
        source, byte_offset: file name and byte offset of ``words[0]``, used in error messages.
        time_mode: ``"spec"`` or ``"expelliarmus"`` (see the module docstring).
        start, stop: the words to decode (default: all).
        geometry: ``(height, width)``: events with ``y >= height`` or ``x >= width`` are dropped and
            counted; None drops none.

    Returns:
        ``EVENT_DTYPE ndarray[n]`` (``t`` in µs); a word may yield up to 12 events.

    Raises:
        ValueError: a word has an unknown type (names ``source``, the byte offset and the type), or an
            unknown ``time_mode``.
    """
    if time_mode not in EVT3_TIME_MODES:
        raise ValueError(f"{source}: unknown EVT3 time_mode {time_mode!r}; valid: {sorted(EVT3_TIME_MODES)}")
    compat = EVT3_TIME_MODES[time_mode]
    if state is None:
        state = new_evt3_state()
    words, start, nw = word_range(words, np.uint16, start, stop)
    height, width = (EVT3_MAX_COORD, EVT3_MAX_COORD) if geometry is None else geometry
    capacity = max((nw - start) + (nw - start) // 2, 4 * EVT3_MAX_EVENTS_PER_WORD)
    out = empty_events(capacity)
    n, i = _decode_evt3_kernel(words, start, nw, out.view(np.int64), state, compat, width, height)
    parts = []
    while state[_ERR] < 0 and i < nw:  # dense vectors filled the buffer: continue into new ones
        parts.append(out[:n])
        out = empty_events(max(2 * (nw - i), 4 * EVT3_MAX_EVENTS_PER_WORD))
        n, i = _decode_evt3_kernel(words, i, nw, out.view(np.int64), state, compat, width, height)
    if state[_ERR] >= 0:
        k = int(state[_ERR])
        raise ValueError(f"{source}: unknown EVT 3.0 event type 0x{int(words[k]) >> 12:x} in word "
                         f"0x{int(words[k]):04x} at byte offset {byte_offset + 2 * k}")
    if parts:
        parts.append(out[:n])
        return concatenate_events(parts)
    return out[:n]
