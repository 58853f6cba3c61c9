"""stacked_histogram against its numpy reference (SPEC 3)."""

from __future__ import annotations

import numpy as np
import pytest
from representation_reference import random_events, stacked_histogram_ref

from evdet.io.dtypes import EVENT_DTYPE
from evdet.preprocessing import events_to_tensor, stacked_histogram


@pytest.mark.parametrize("d", [0, 1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stacked_histogram_matches_numpy_reference(seed, d):
    rng = np.random.default_rng(seed)
    total = 50_000
    ev = random_events(rng, 20_000, 16, 24, total)
    shape = (2, 10, 16 >> d, 24 >> d)
    out = np.full(shape, 9.0, dtype=np.float32)
    stacked_histogram(ev, out, total, d, num_utbins=5, max_count=4)
    np.testing.assert_allclose(out, stacked_histogram_ref(ev, shape, total, d, 0, 5, 4), rtol=1e-6)
    assert out.max() == 4.0 if d == 0 else 0 < out.max() <= 4.0  # clipped at full resolution


def test_stacked_histogram_counts_per_polarity_and_microbin():
    ev = np.zeros(3, dtype=EVENT_DTYPE)
    ev["t"], ev["p"] = [0, 1, 99], [0, 0, 1]
    out = events_to_tensor(ev, "stacked_histogram", 1, 1, 1, 100, num_utbins=2)
    assert out.shape == (1, 4, 1, 1)
    np.testing.assert_array_equal(out[0, :, 0, 0], [2, 0, 0, 1])


def test_stacked_histogram_rejects_bad_max_count():
    with pytest.raises(ValueError, match="max_count"):
        stacked_histogram(np.zeros(0, EVENT_DTYPE), np.zeros((1, 20, 2, 2), np.float32), 100, max_count=0)


def test_sorted_events_on_fractional_bin_boundaries():
    # one event per µs: every micro-bin boundary of 3 x 7 bins over 1001 µs is hit (the sorted fast path)
    ev = np.zeros(1001 + 20, dtype=EVENT_DTYPE)
    ev["t"] = np.concatenate([np.arange(1001), np.arange(20) * 50])  # then a few unsorted ones
    ev["x"], ev["p"] = np.arange(ev.size) % 3, np.arange(ev.size) % 2
    out = np.zeros((3, 14, 1, 3), np.float32)
    stacked_histogram(ev, out, 1001, num_utbins=7, max_count=1000)
    np.testing.assert_array_equal(out, stacked_histogram_ref(ev, out.shape, 1001, 0, 0, 7, 1000))
    assert out.sum() == ev.size
