"""Tests of evdet.io.dat_records: the numba DAT record decoders against a numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from evdet.io.dat_records import (
    TIME_WRAP,
    _decode_dat_kernel,
    _decode_dat_kernel_parallel,
    decode_dat_records,
    encode_dat_records,
    max_xy,
)
from evdet.io.dtypes import EVENT_DTYPE

WRAP = TIME_WRAP


def reference_decode(records: np.ndarray) -> np.ndarray:
    """Plain numpy DAT decode with the unwrapping rule of SPEC 2.2."""
    t32 = records[:, 0].astype(np.int64)
    w = records[:, 1].astype(np.int64)
    steps = np.diff(t32)
    wraps = np.concatenate([[0], np.cumsum(steps < -(1 << 31))])
    out = np.zeros(len(records), dtype=EVENT_DTYPE)
    out["x"] = w & 0x3FFF
    out["y"] = (w >> 14) & 0x3FFF
    out["p"] = (w >> 28) & 1
    out["t"] = t32 + wraps * WRAP
    return out


def test_kernel_matches_numpy_reference_with_wraps(rng):
    n = 2000
    records = np.zeros((n, 2), dtype=np.uint32)
    t = np.sort(rng.integers(0, 3 * WRAP, n))
    records[:, 0] = t % WRAP
    records[:, 1] = (rng.integers(0, 1 << 14, n) | (rng.integers(0, 1 << 14, n) << 14)
                     | (rng.integers(0, 2, n) << 28)).astype(np.uint32)
    events, backward = decode_dat_records(records)
    ref = reference_decode(records)
    assert backward == 0
    np.testing.assert_array_equal(events, ref)
    np.testing.assert_array_equal(events["t"], t)
    # decoding in two pieces with the carried state gives the same result
    state = np.array([0, -1], dtype=np.int64)
    a, _ = decode_dat_records(records[:777], state)
    b, _ = decode_dat_records(records[777:], state)
    np.testing.assert_array_equal(np.concatenate([a, b]), ref)


@pytest.mark.parametrize("span", [4 * WRAP, WRAP // 2])  # many wraps (shifted blocks) / none
@pytest.mark.parametrize("block", [1, 7, 256, 5000])
def test_parallel_kernel_equals_sequential(rng, block, span):
    n = 3000
    records = np.zeros((n, 2), dtype=np.uint32)
    t = np.sort(rng.integers(0, span, n))
    t[100:110] = t[100:110][::-1]  # a few backward steps that are not wraps
    records[:, 0] = t % WRAP
    records[:, 1] = rng.integers(0, 1 << 29, n).astype(np.uint32)
    for first_state in ([0, -1], [WRAP, int(records[0, 0]) + 5]):
        s_seq = np.array(first_state, dtype=np.int64)
        s_par = s_seq.copy()
        out_seq = np.empty(2 * n, dtype=np.int64)
        out_par = np.empty(2 * n, dtype=np.int64)
        back_seq = _decode_dat_kernel(records, out_seq, s_seq)
        back_par = _decode_dat_kernel_parallel(records, out_par, s_par, block)
        np.testing.assert_array_equal(out_par, out_seq)
        np.testing.assert_array_equal(s_par, s_seq)
        assert back_par == back_seq > 0


def test_kernel_counts_backward_steps():
    records = np.array([[10, 0], [5, 0], [7, 0]], dtype=np.uint32)
    events, backward = decode_dat_records(records)
    assert backward == 1
    np.testing.assert_array_equal(events["t"], [10, 5, 7])  # small decrease is not a wrap


def test_encode_decode_round_trip_and_max_xy(rng):
    events = np.zeros(500, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, 1 << 14, 500)
    events["y"] = rng.integers(0, 1 << 14, 500)
    events["p"] = rng.integers(0, 2, 500)
    events["t"] = np.sort(rng.integers(0, 3 * WRAP, 500))
    records = encode_dat_records(events)
    decoded, backward = decode_dat_records(records)
    assert backward == 0
    np.testing.assert_array_equal(decoded, events)
    assert max_xy(records) == (events["x"].max(), events["y"].max())
    assert max_xy(records[:0]) == (-1, -1)
