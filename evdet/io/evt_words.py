"""The word arrays every EVT decoder (``evt2.py``, ``evt21.py``, ``evt3.py``) takes: one place that reads
a decoder's ``words`` and ``[start, stop)`` arguments."""

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
