"""Tests of evdet.io.evt2: the numba EVT 2.0 kernel against a per-word Python reference."""

from __future__ import annotations

import numpy as np
import pytest

from evdet.io.dtypes import EVENT_DTYPE
from evdet.io.evt2 import decode_evt2, new_evt2_state


def reference_decode_evt2(words) -> np.ndarray:
    """Per-word reference: CD words before the first time high dropped; wrap of 2^34 on big decrease."""
    out = []
    time_high, loop = None, 0
    for w in (int(v) for v in words):
        kind = w >> 28
        if kind in (0, 1):
            if time_high is not None:
                t = loop + ((time_high << 6) | ((w >> 22) & 0x3F))
                out.append(((w >> 11) & 0x7FF, w & 0x7FF, kind, t))
        elif kind == 8:
            new = w & 0xFFFFFFF
            if time_high is not None and time_high - new > (1 << 27):
                loop += 1 << 34
            time_high = new
        elif kind not in (10, 14, 15):
            raise ValueError(f"unknown type {kind}")
    return np.array(out, dtype=[("x", "<u2"), ("y", "<u2"), ("p", "<i2"), ("t", "<i8")]).astype(EVENT_DTYPE)


def cd(x: int, y: int, p: int, t_low: int) -> int:
    return (p << 28) | (t_low << 22) | (x << 11) | y


def th(value: int) -> int:
    return (8 << 28) | value


def encode_evt2(events: np.ndarray) -> np.ndarray:
    """Sorted events -> EVT 2.0 words (a time-high word whenever t >> 6 changes)."""
    words, last = [], None
    for x, y, p, t in zip(events["x"], events["y"], events["p"], events["t"], strict=True):
        high = (int(t) >> 6) & 0xFFFFFFF
        if high != last:
            words.append(th(high))
            last = high
        words.append(cd(int(x), int(y), int(p), int(t) & 0x3F))
    return np.array(words, dtype=np.uint32)


def random_stream(rng, n: int) -> np.ndarray:
    """Random valid words: CD, time high (increasing), ext trigger, others, continued."""
    words, high = [cd(1, 2, 1, 3)], 5  # a CD word before the first time high (dropped)
    for _ in range(n):
        r = rng.random()
        if r < 0.1:
            high += int(rng.integers(0, 3))
            words.append(th(high))
        elif r < 0.13:
            words.append((int(rng.choice([10, 14, 15])) << 28) | int(rng.integers(0, 1 << 28)))
        else:
            words.append(cd(int(rng.integers(0, 2048)), int(rng.integers(0, 2048)), int(rng.integers(0, 2)),
                            int(rng.integers(0, 64))))
    return np.array(words, dtype=np.uint32)


def test_kernel_matches_reference_on_random_stream(rng):
    words = random_stream(rng, 3000)
    ref = reference_decode_evt2(words)
    out = decode_evt2(words)
    assert out.dtype == EVENT_DTYPE
    assert out.size == ref.size > 2000
    np.testing.assert_array_equal(out, ref)


def test_chunked_decoding_carries_state(rng):
    words = random_stream(rng, 2000)
    ref = decode_evt2(words)
    state = new_evt2_state()
    cuts = [0, 1, 17, 500, 501, 1999, words.size]
    parts = [decode_evt2(words[a:b], state) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    np.testing.assert_array_equal(np.concatenate(parts), ref)


def test_encode_decode_roundtrip(rng):
    events = np.zeros(500, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, 640, 500)
    events["y"] = rng.integers(0, 480, 500)
    events["p"] = rng.integers(0, 2, 500)
    events["t"] = np.sort(rng.integers(1_000_000, 1_050_000, 500))
    np.testing.assert_array_equal(decode_evt2(encode_evt2(events)), events)


def test_fields_and_time():
    words = np.array([th(0x123), cd(599, 475, 1, 0x2A), cd(0, 0, 0, 0)], dtype=np.uint32)
    out = decode_evt2(words)
    assert out.size == 2
    assert (out["x"][0], out["y"][0], out["p"][0], out["t"][0]) == (599, 475, 1, (0x123 << 6) | 0x2A)
    assert (out["x"][1], out["y"][1], out["p"][1], out["t"][1]) == (0, 0, 0, 0x123 << 6)


def test_time_high_wrap():
    top = (1 << 28) - 1
    words = np.array([th(top), cd(1, 1, 1, 63), th(0), cd(2, 2, 0, 1)], dtype=np.uint32)
    out = decode_evt2(words)
    np.testing.assert_array_equal(out["t"], [(top << 6) | 63, (1 << 34) + 1])
    assert np.all(np.diff(out["t"]) > 0)


def test_unknown_type_names_byte_offset():
    words = np.array([th(1), cd(1, 1, 1, 1), 5 << 28], dtype=np.uint32)
    with pytest.raises(ValueError, match="f.raw: unknown EVT 2.0 event type 5 .* byte offset 108"):
        decode_evt2(words, source="f.raw", byte_offset=100)


def test_empty_input():
    out = decode_evt2(np.zeros(0, dtype=np.uint32))
    assert out.size == 0 and out.dtype == EVENT_DTYPE
