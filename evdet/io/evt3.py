"""Prophesee EVT 3.0 word decoding (SPEC 2.3): the decoder state and ``decode_evt3``.

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

Two implementations decode, with identical output: the numba kernel of :mod:`evdet.io.evt3_kernels`
(every rule here) and, in a process that has not loaded it yet, a numpy path for clean streams in the
``"spec"`` time mode: every word of a known type, every time-high step 0 or 1 (no wrap, no corrupt word; a
stream's first time high followed by another), every event inside the geometry. Loading numba and the
kernel costs about 0.5 s in a fresh process, more than the numpy path spends on a real recording, so a
script that reads one file pays no such cost; the kernel is loaded by the first read that needs the rules,
or once the numpy path has decoded ``KERNELS.budget`` words (:mod:`evdet.io.kernel_budget`).

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

import numpy as np

from evdet.io.dtypes import concatenate_events, empty_events
from evdet.io.evt_words import latest, steady_time_highs, word_range
from evdet.io.kernel_budget import KernelBudget

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
KERNELS = KernelBudget("evdet.io.evt3_kernels", 1 << 23)
"""The numpy path decodes up to 2^23 words in a process before the kernel loads: at ~74 ns saved per word
by the kernel (numpy 80 ns, kernel 6 ns on the real sample), ~7 M words repay its ~0.5 s load."""
_KNOWN = np.zeros(16, dtype=bool)  # [type] -> known
_KNOWN[list(EVT3_KNOWN_TYPES)] = True
_NUMPY_CHUNK = 1 << 16  # words per step of the numpy path (its temporaries stay in the CPU cache)


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

    Before the kernel is loaded in this process, clean words in the ``"spec"`` mode are decoded with numpy
    instead (module docstring), with the same output and state.
    """
    if time_mode not in EVT3_TIME_MODES:
        raise ValueError(f"{source}: unknown EVT3 time_mode {time_mode!r}; valid: {sorted(EVT3_TIME_MODES)}")
    compat = EVT3_TIME_MODES[time_mode]
    if state is None:
        state = new_evt3_state()
    words, start, nw = word_range(words, np.uint16, start, stop)
    height, width = (EVT3_MAX_COORD, EVT3_MAX_COORD) if geometry is None else geometry
    capacity = max((nw - start) + (nw - start) // 2, 4 * EVT3_MAX_EVENTS_PER_WORD)
    if not compat and KERNELS.numpy_first():
        events = _decode_clean_numpy(words, start, nw, state, int(height), int(width), capacity)
        if events is not None:
            KERNELS.spend(nw - start)
            return events
    out = empty_events(capacity)
    from evdet.io.evt3_kernels import decode_evt3_kernel

    n, i = decode_evt3_kernel(words, start, nw, out.view(np.int64), state, compat, width, height)
    parts = []
    while state[_ERR] < 0 and i < nw:  # dense vectors filled the buffer: continue into new ones
        parts.append(out[:n])
        out = empty_events(max(2 * (nw - i), 4 * EVT3_MAX_EVENTS_PER_WORD))
        n, i = decode_evt3_kernel(words, i, nw, out.view(np.int64), state, compat, width, height)
    if state[_ERR] >= 0:
        k = int(state[_ERR])
        raise ValueError(f"{source}: unknown EVT 3.0 event type 0x{int(words[k]) >> 12:x} in word "
                         f"0x{int(words[k]):04x} at byte offset {byte_offset + 2 * k}")
    if parts:
        parts.append(out[:n])
        return concatenate_events(parts)
    return out[:n]


def _decode_clean_numpy(words: np.ndarray, start: int, stop: int, state: np.ndarray, height: int,
                        width: int, capacity: int) -> np.ndarray | None:
    """Decode ``words[start:stop]`` (``uint16``) with numpy in the ``"spec"`` time mode, in cache-sized
    chunks, when no rule of the format applies but the backward count: every word of a known type, every
    time-high step (from ``state``'s time high on) 0 or 1 without a wrap, a first time high (none in
    ``state``) followed by another in the range, every event at or after a time high inside ``(height,
    width)``. Returns the events (``EVENT_DTYPE ndarray``, decoded into a buffer of ``capacity`` events
    that doubles when dense vectors fill it) with ``state`` updated, or None, leaving ``state`` untouched,
    when a rule applies (the kernel decodes then)."""
    y, bx, pol, th, tl = (int(state[k]) for k in (_Y, _BX, _POL, _TH, _TL))
    loop, last_t = int(state[_LOOP]), int(state[_LAST_T])
    out = empty_events(capacity)
    pairs = out.view(np.int64).reshape(-1, 2)  # [capacity, 2]: x | y << 16 | p << 32, t
    pending = th < 0  # no time high yet, or only the stream's first: it must be followed by another
    n = back = 0
    for s in range(start, stop, _NUMPY_CHUNK):
        w = words[s:min(s + _NUMPY_CHUNK, stop)].astype(np.int64)  # [m]
        kind = w >> 12
        if not _KNOWN[kind].all():
            return None
        is_th = kind == 8
        highs = w[is_th] & 0xFFF
        if not steady_time_highs(highs, th):
            return None
        if pending and highs.shape[0]:
            pending = th < 0 and highs.shape[0] == 1
        th_w = latest(is_th, highs, th)  # [m] each word's time high, time low, y
        is_tl, is_y, is_base = kind == 6, kind == 0, kind == 3
        tl_w = latest(is_tl, w[is_tl] & 0xFFF, tl)
        y_w = latest(is_y, w[is_y] & 0x7FF, y)
        bases = w[is_base]
        pol_w = latest(is_base, (bases >> 11) & 1, pol)
        inc = np.where(kind == 4, 12, 0) + np.where(kind == 5, 8, 0)  # [m] base x advance of each word
        before = np.cumsum(inc) - inc  # [m] advance of the chunk's words before each one
        bx_w = latest(is_base, (bases & 0x7FF) - before[is_base], bx) + before  # [m] each word's base x
        vect = (kind == 4) | (kind == 5)
        emits = ((kind == 2) | vect) & (th_w >= 0)
        rows = np.flatnonzero(emits)  # [r] the words that carry events
        if rows.shape[0]:
            wr, vr = w[rows], vect[rows]
            bits = np.where(vr, wr & np.where(kind[rows] == 4, 0xFFF, 0xFF), 1).astype("<u2")
            word_of, col = np.nonzero(np.unpackbits(bits.view(np.uint8).reshape(-1, 2), axis=1,
                                                    bitorder="little"))  # [k] event -> row, bit
            x0 = np.where(vr, bx_w[rows], wr & 0x7FF)
            p = np.where(vr, pol_w[rows], (wr >> 11) & 1)
            k = word_of.shape[0]
            if k:
                ev = rows[word_of]
                x = (x0[word_of] + col) & 0x7FF
                ye = y_w[ev]
                if int(x.max()) >= width or int(ye.max()) >= height:
                    return None
                if n + k > pairs.shape[0]:  # dense vectors: a buffer twice as large (or large enough)
                    out = concatenate_events([out[:n], empty_events(max(n, k, 4096))])
                    pairs = out.view(np.int64).reshape(-1, 2)
                t = loop + (th_w[ev] << 12) + tl_w[ev]
                back += int(t[0] < last_t) + int(np.count_nonzero(t[1:] < t[:-1]))
                last_t = int(t[-1])
                pairs[n:n + k, 0] = x | (ye << 16) | (p[word_of] << 32)
                pairs[n:n + k, 1] = t
                n += k
        y, pol, th, tl = int(y_w[-1]), int(pol_w[-1]), int(th_w[-1]), int(tl_w[-1])
        bx = int(bx_w[-1] + inc[-1])
    if pending and th >= 0:
        return None  # the stream's first time high is the range's last: its verdict reads beyond the range
    state[_Y], state[_BX], state[_POL], state[_TH], state[_TL], state[_LAST_T] = y, bx, pol, th, tl, last_t
    state[_BACK] += back
    return out[:n]
