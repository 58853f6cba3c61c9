"""Prophesee EVT 2.0 word decoding (SPEC 2.3): the decoder state and ``decode_evt2``.

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

Two implementations decode, with identical output: the numba kernel of :mod:`evdet.io.evt2_kernels`
(every rule above) and, in a process that has not loaded it yet, a numpy path for clean streams: every
word of a known type, every time-high step 0 or 1 (no wrap, no corrupt word; a stream's first time high
followed by another), every CD event inside the geometry. Loading numba and the kernel costs about 0.5 s
in a fresh process, more than the numpy path spends on a real recording, so a script that reads one file
pays no such cost; the kernel is loaded by the first read that needs the rules, or once the numpy path has
decoded ``KERNELS.budget`` words (:mod:`evdet.io.kernel_budget`).
"""

from __future__ import annotations

import numpy as np

from evdet.io.dtypes import empty_events
from evdet.io.evt_words import latest, steady_time_highs, word_range
from evdet.io.kernel_budget import KernelBudget

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
KERNELS = KernelBudget("evdet.io.evt2_kernels", 1 << 25)
"""The numpy path decodes up to 2^25 words in a process before the kernel loads: at ~13 ns saved per word
by the kernel (numpy 15.5 ns, kernel 2.1 ns on the real sample), ~37 M words repay its ~0.5 s load."""
_KNOWN = np.zeros(16, dtype=bool)  # [type] -> known
_KNOWN[list(EVT2_KNOWN_TYPES)] = True
_NUMPY_CHUNK = 1 << 16  # words per step of the numpy path (its temporaries stay in the CPU cache)


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

    Before the kernel is loaded in this process, clean words are decoded with numpy instead (module
    docstring), with the same output and state.
    """
    if state is None:
        state = new_evt2_state()
    words, start, stop = word_range(words, np.uint32, start, stop)
    out = empty_events(stop - start)
    if stop == start:
        return out
    if KERNELS.numpy_first():
        n = _decode_clean_numpy(words, start, stop, out, state, geometry)
        if n is not None:
            KERNELS.spend(stop - start)
            return out[:n]
    from evdet.io import evt2_kernels

    limits = None
    if geometry is not None and evt2_kernels.any_outside(words, start, stop, int(geometry[0]),
                                                         int(geometry[1])):
        limits = (int(geometry[0]), int(geometry[1]))
    n = evt2_kernels.decode_evt2_kernel(words, start, stop, out.view(np.int64), state, limits)
    if state[_ERR] >= 0:
        i = int(state[_ERR])
        raise ValueError(f"{source}: unknown EVT 2.0 event type {int(words[i]) >> 28} in word "
                         f"0x{int(words[i]):08x} at byte offset {byte_offset + 4 * i}")
    return out[:n]


def _decode_clean_numpy(words: np.ndarray, start: int, stop: int, out: np.ndarray, state: np.ndarray,
                        geometry: tuple[int, int] | None) -> int | None:
    """Decode ``words[start:stop]`` (``uint32``) into ``out`` (``EVENT_DTYPE ndarray[>= stop - start]``)
    with numpy, in cache-sized chunks, when no rule of the format but the backward count applies: every
    word of a known type, every time-high step (from ``state``'s time high on) 0 or 1 without a wrap, a
    first time high (none in ``state``) followed by another in the range, every CD event at or after a
    time high inside ``geometry`` (``(height, width)``, None: no limit). Returns the number of events
    written with ``state`` updated, or None, leaving ``state`` untouched, when a rule applies (the kernel
    decodes then; ``out`` is overwritten)."""
    height, width = (1 << 11, 1 << 11) if geometry is None else (int(geometry[0]), int(geometry[1]))
    pairs = out.view(np.int64).reshape(-1, 2)  # [n, 2]: x | y << 16 | p << 32, t
    th, loop, last_t = int(state[_TH]), int(state[_LOOP]), int(state[_LAST_T])
    pending = th < 0  # no time high yet, or only the stream's first: it must be followed by another
    n = back = 0
    for s in range(start, stop, _NUMPY_CHUNK):
        w = words[s:min(s + _NUMPY_CHUNK, stop)]
        kind = w >> 28
        if not _KNOWN[kind].all():
            return None
        is_th = kind == 8
        highs = (w[is_th] & _TH_MASK).astype(np.int64)  # [k] the chunk's time highs
        if not steady_time_highs(highs, th):
            return None
        if pending and highs.shape[0]:
            pending = th < 0 and highs.shape[0] == 1
        governing = latest(is_th, highs, th)  # [m] time high of each word
        cd = (kind <= 1) & (governing >= 0)
        wc = w[cd].astype(np.int64)
        m = wc.shape[0]
        if highs.shape[0]:
            th = int(highs[-1])
        if m == 0:
            continue
        x = (wc >> 11) & 0x7FF
        y = wc & 0x7FF
        if int(x.max()) >= width or int(y.max()) >= height:
            return None
        t = loop + ((governing[cd] << 6) | ((wc >> 22) & 0x3F))
        back += int(t[0] < last_t) + int(np.count_nonzero(t[1:] < t[:-1]))
        last_t = int(t[-1])
        pairs[n:n + m, 0] = x | (y << 16) | ((wc >> 28) << 32)
        pairs[n:n + m, 1] = t
        n += m
    if pending and th >= 0:
        return None  # the stream's first time high is the range's last: its verdict reads beyond the range
    state[_TH], state[_LAST_T] = th, last_t
    state[_BACK] += back
    return n
