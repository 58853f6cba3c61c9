"""The word arrays every EVT decoder (``evt2.py``, ``evt21.py``, ``evt3.py``) takes: one place that reads
a decoder's ``words`` and ``[start, stop)`` arguments; and the vectorised steps of their numpy paths."""

from __future__ import annotations

import numpy as np


def word_range(words: np.ndarray, dtype: type, start: int, stop: int | None) -> tuple[np.ndarray, int, int]:
    """``(words as an ndarray of dtype, start, stop)`` with ``stop`` (None: the end) clipped to the words
    and ``start`` to ``stop`` (a memory map of the right dtype is used as it is, not copied)."""
    words = np.asarray(words)
    if words.dtype != dtype:
        words = words.astype(dtype)
    stop = words.shape[0] if stop is None else min(int(stop), words.shape[0])
    return words, min(int(start), stop), stop


def latest(mask: np.ndarray, selected: np.ndarray, carried: int) -> np.ndarray:
    """``int64 ndarray[m]``: at each of ``m`` words, the value of the last word at or before it where
    ``mask`` (``bool [m]``) holds, ``selected`` being those words' values (``[mask.sum()]``), and ``carried``
    before the first of them: a decoder's running state (time high, y, ...) word by word, vectorised."""
    return np.concatenate(([carried], selected))[np.cumsum(mask)]


def steady_time_highs(highs: np.ndarray, th: int) -> bool:
    """Whether the time highs ``highs`` (``int64 [k]``, in stream order) following the time high ``th``
    (-1: none yet) only step by 0 or 1 (no wrap, no gap, no corrupt word): then no time-high rule of the
    EVT formats applies to them (:mod:`evdet.io.time_high`)."""
    if highs.shape[0] == 0:
        return True
    steps = np.diff(highs, prepend=highs[0] if th < 0 else th)
    return int(steps.min()) >= 0 and int(steps.max()) <= 1
