"""Tests of evdet.io.time_high: the compiled corrupt time-high rule against a plain-Python statement of it,
for the word layouts of EVT 2.0, 2.1 (both layouts) and 3.0."""

from __future__ import annotations

import numpy as np
import pytest

from evdet.io.time_high import (
    EVT2_TIME_HIGH,
    EVT3_TIME_HIGH,
    EVT21_LEGACY_TIME_HIGH,
    EVT21_TIME_HIGH,
    time_high_is_corrupt,
)


def reference_is_corrupt(th: int | None, new: int, following: list[int], bits: int) -> bool:
    """The rule as the module docstring states it: ``th`` current time high (None: none yet), ``new`` the
    word's value, ``following`` the values of the next time-high words."""
    r = 1 << bits
    if th is not None and (new - th) % r <= 1:
        return False
    if not following:
        return th is not None and (new - th) % r >= r // 2
    if th is not None:
        return (following[0] - th) % r < (following[0] - new) % r
    return len(following) >= 2 and all((v - new) % r >= r // 2 for v in following[:2])


def encoders():
    """(layout, bits, time-high word of a value, a non-time-high word, dtype) per format."""
    def swap(w: int) -> int:
        return (w >> 32) | ((w & 0xFFFFFFFF) << 32)

    return [
        (EVT2_TIME_HIGH, 28, lambda v: (8 << 28) | v, (1 << 28) | 5, np.uint32),
        (EVT3_TIME_HIGH, 12, lambda v: (8 << 12) | v, (2 << 12) | 5, np.uint16),
        (EVT21_TIME_HIGH, 28, lambda v: (8 << 60) | (v << 32), (1 << 60) | 5, np.uint64),
        (EVT21_LEGACY_TIME_HIGH, 28, lambda v: swap((8 << 60) | (v << 32)), swap((1 << 60) | 5), np.uint64),
    ]


@pytest.mark.parametrize("layout, bits, encode, other, dtype", encoders())
def test_compiled_rule_matches_the_reference(rng, layout, bits, encode, other, dtype):
    r = 1 << bits
    seen = set()
    for _ in range(400):
        n = int(rng.integers(1, 5))  # the word and up to 3 following time highs, other words between
        near = int(rng.integers(0, r))
        values = [int(v) % r for v in near + rng.choice([0, 1, 2, -1, -3, r // 2, r // 2 + 1, 77], n)]
        words = []
        for v in values:
            words += [encode(v), other]
        th = None if rng.random() < 0.3 else int(rng.choice([near, near - 1, near + 5, near + r // 2])) % r
        arr = np.array(words, dtype=dtype)
        got = time_high_is_corrupt(arr, 0, -1 if th is None else th, values[0], layout)
        assert got == reference_is_corrupt(th, values[0], values[1:], bits), (th, values)
        seen.add(bool(got))
    assert seen == {False, True}  # both verdicts were exercised
