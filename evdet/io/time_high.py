"""The corrupt time-high rule shared by the EVT 2.0, 2.1 and 3.0 decoders (``evt2.py``, ``evt21.py``,
``evt3.py``).

Every Prophesee EVT format sends the high bits of the time in a TIME_HIGH word whose value moves by 0 or
1 between two such words (each step is 64 µs in EVT 2.x, 4096 µs in EVT 3.0). In the spirit of OpenEB's
EVT 3.0 validator (which rejects a time high that goes backwards except across the wrap), any other step
from the current time high ``th`` to a new value ``new`` is checked against the next TIME_HIGH word
``nxt`` of the stream (all arithmetic modulo the field range ``R``):

- the word is corrupt when ``nxt`` is reached sooner going forward from ``th`` than from ``new``
  (``(nxt - th) % R < (nxt - new) % R``): the stream continues from where it was; a real jump (a gap
  in the recording, or the wrap) is followed by time highs continuing from it;
- without a next time high, a step backwards (``(new - th) % R >= R / 2``) is corrupt;
- the first time high of a stream (no ``th`` yet) is corrupt when neither of the next two time highs is
  forward from it (less than ``R / 2`` ahead); it is kept when fewer than two follow.

The decoders skip a corrupt word (the following events keep the previous time high) and count it, all
through :func:`skip_corrupt_time_high`.

A format is described to :func:`time_high_is_corrupt` by a ``layout`` tuple of five ints (numba compiles
one version for all formats): ``(type shift, type value, value shift, value bits, rotate)``: a word ``w``
(read as an unsigned 64-bit integer and, when ``rotate`` > 0, rotated right by ``rotate`` bits, which
swaps the 32-bit halves of EVT 2.1's "legacy" layout) is a TIME_HIGH word when ``w >> type shift ==
type value``, and its value is ``(w >> value shift) & (2^value bits - 1)``. ``tests/io/test_time_high.py``
holds the plain-Python statement of the rule that the compiled one is checked against.
"""

from __future__ import annotations

import numba
import numpy as np

EVT2_TIME_HIGH = (28, 8, 0, 28, 0)
"""EVT 2.0 (32-bit words): type in bits 28-31, time high in bits 0-27."""
EVT3_TIME_HIGH = (12, 8, 0, 12, 0)
"""EVT 3.0 (16-bit words): type in bits 12-15, time high in bits 0-11."""
EVT21_TIME_HIGH = (60, 8, 32, 28, 0)
"""EVT 2.1 (64-bit words): type in bits 60-63, time high in bits 32-59."""
EVT21_LEGACY_TIME_HIGH = (60, 8, 32, 28, 32)
"""EVT 2.1 in IMX636's legacy layout (32-bit halves swapped)."""


@numba.njit(cache=True, nogil=True, inline="always")
def _unpack(word, layout):  # pragma: no cover - compiled
    """``(is a TIME_HIGH word, its value)`` of one word under ``layout``."""
    w = np.uint64(word)
    rot = np.uint64(layout[4])
    if layout[4] > 0:
        w = (w >> rot) | (w << (np.uint64(64) - rot))
    is_th = np.int64(w >> np.uint64(layout[0])) == layout[1]
    value = np.int64((w >> np.uint64(layout[2])) & np.uint64((1 << layout[3]) - 1))
    return is_th, value


@numba.njit(cache=True, nogil=True)
def _next_time_high(words, i, layout):  # pragma: no cover - compiled
    """``(index, value)`` of the first TIME_HIGH word after word ``i``, or ``(-1, -1)``."""
    for j in range(i + 1, words.shape[0]):
        is_th, value = _unpack(words[j], layout)
        if is_th:
            return j, value
    return -1, np.int64(-1)


@numba.njit(cache=True, nogil=True)
def time_high_is_corrupt(words, i, th, new, layout):  # pragma: no cover - compiled
    """Whether the TIME_HIGH word ``words[i]`` (value ``new``) after time high ``th`` (-1: none yet) is
    corrupt (see the module docstring); reads ahead to the next TIME_HIGH words of ``words``, beyond the
    range being decoded if needed, so that the verdict does not depend on where a stream is cut."""
    mask = (np.int64(1) << layout[3]) - 1
    half = np.int64(1) << (layout[3] - 1)
    step = (new - th) & mask
    if th >= 0 and step <= 1:
        return False
    j, nxt = _next_time_high(words, i, layout)
    if j < 0:
        return th >= 0 and step >= half
    if th >= 0:
        return ((nxt - th) & mask) < ((nxt - new) & mask)
    if ((nxt - new) & mask) < half:
        return False
    j, after = _next_time_high(words, j, layout)  # the next one may be the corrupt one: the one after decides
    return j >= 0 and ((after - new) & mask) >= half



@numba.njit(cache=True, nogil=True)
def skip_corrupt_time_high(words, i, th, new, layout, state, slot):  # pragma: no cover - compiled
    """The decoders' step for a TIME_HIGH word ``words[i]`` of value ``new`` after time high ``th``: True
    when it is corrupt, counted in ``state[slot]`` (the first one's word index in ``state[slot + 1]``);
    False when it is to be used. The decoders call it only for a step other than 0 or 1 (or the first
    time high): nearly every word is decided in the kernel's loop without a call, which keeps the loop
    as fast as before the rule was shared."""
    if not time_high_is_corrupt(words, i, th, new, layout):
        return False
    if state[slot] == 0:
        state[slot + 1] = i
    state[slot] += 1
    return True
