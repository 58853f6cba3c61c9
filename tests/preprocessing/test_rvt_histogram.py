"""RVT's stacked histogram: the numba kernel against its numpy statement, and each rule on hand-built
events."""

from __future__ import annotations

import numpy as np
import pytest
from rvt_reference import rvt_window_ref

from evdet.io.dtypes import EVENT_DTYPE
from evdet.preprocessing import events_to_tensor, get_representation
from evdet.preprocessing.rvt_histogram import correct_time, rvt_histogram_windows


def _stream(rng, n, height, width, duration):
    """Sorted random events plus hot pixels (2, 2) and (3, 3) firing 300 ON events each during
    [100, 101) ms (counted at every downsampling factor tested)."""
    hot = np.r_[np.full(300, 2), np.full(300, 3)]
    t = np.r_[rng.integers(0, duration, n), rng.integers(100_000, 101_000, 600)]
    x = np.r_[rng.integers(0, width, n), hot].astype(np.uint16)
    y = np.r_[rng.integers(0, height, n), hot].astype(np.uint16)
    p = np.r_[rng.integers(0, 2, n), np.ones(600, np.int64)].astype(np.int16)
    order = np.argsort(t, kind="stable")
    return x[order], y[order], p[order], t[order]


@pytest.mark.parametrize("d", [0, 1, 2])
@pytest.mark.parametrize("size", [(12, 16), (13, 19)])
def test_windows_match_numpy_reference(rng, d, size):
    height, width = size
    # many events on few pixels: counts wrap and clip; windows overlap, one is empty, one has one event
    x, y, p, t = _stream(rng, 30_000, height, width, 400_000)
    ends = np.array([50_000, 120_000, 125_000, 300_000, 399_999])
    starts = np.searchsorted(t, ends - 50_000, "left")
    stops = np.searchsorted(t, ends, "right")
    starts = np.r_[starts, 7, 7]
    stops = np.r_[stops, 7, 8]
    out = rvt_histogram_windows(x, y, p, t, starts, stops, height, width, 10, 10, d)
    assert out.dtype == np.uint8 and out.shape == (7, 20, height >> d, width >> d)
    for i, (s0, s1) in enumerate(zip(starts, stops, strict=True)):
        ref = rvt_window_ref(x[s0:s1], y[s0:s1], p[s0:s1], t[s0:s1], height, width, 10, 10, d)
        np.testing.assert_array_equal(out[i], ref, err_msg=f"window {i}")
    assert out.max() == 10 and not out[5].any()


def test_micro_bins_span_first_to_last_event_and_off_channels_first():
    # events at 0, 100, 500, 999 µs of a window: span 999; bins floor(10 * dt / 999) capped at 9
    t = np.array([1000, 1100, 1500, 1999])
    x = np.array([0, 1, 2, 3])
    y = np.zeros(4, dtype=np.int64)
    p = np.array([0, 1, -1, 1])  # -1 counts as OFF (RVT clips polarities at 0)
    out = rvt_histogram_windows(x, y, p, t, [0], [4], 1, 4)[0]
    expected = np.zeros((20, 1, 4), np.uint8)
    expected[0, 0, 0] = 1        # OFF, bin 0
    expected[10 + 1, 0, 1] = 1   # ON, bin floor(1000/999) = 1
    expected[5, 0, 2] = 1        # OFF (p = -1), bin floor(5005/999) = 5
    expected[10 + 9, 0, 3] = 1   # ON, last event: bin 10 capped at 9
    np.testing.assert_array_equal(out, expected)


def test_single_event_and_equal_times_fall_in_bin_zero():
    out = rvt_histogram_windows([0, 0], [0, 0], [1, 1], [5, 5], [0], [2], 1, 1)[0]
    assert out[10, 0, 0] == 2 and out.sum() == 2


@pytest.mark.parametrize("count, expected", [(9, 9), (10, 10), (255, 10), (256, 0), (260, 4), (265, 9)])
def test_counts_wrap_at_256_before_the_clip(count, expected):
    t = np.zeros(count, dtype=np.int64)
    out = rvt_histogram_windows(np.zeros(count), np.zeros(count), np.zeros(count), t, [0], [count], 1, 1)
    assert out[0, 0, 0, 0] == expected


def test_downsampling_keeps_odd_pixels_but_all_events_set_the_time_span():
    # the event at the even pixel (0, 0) is not counted but is the window's first event
    x, y, p = np.array([0, 1]), np.array([0, 1]), np.array([1, 1])
    t = np.array([0, 10])
    out = rvt_histogram_windows(x, y, p, t, [0], [2], 2, 2, downsampling_factor=1)[0]
    assert out.shape == (20, 1, 1) and out[19, 0, 0] == 1 and out.sum() == 1


def test_correct_time_is_a_running_maximum_with_carry():
    np.testing.assert_array_equal(correct_time(np.array([3, 1, 5, 4, 6])), [3, 3, 5, 5, 6])
    np.testing.assert_array_equal(correct_time(np.array([2, 9]), start=5), [5, 9])
    assert correct_time(np.zeros(0, np.int64)).size == 0


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="non-decreasing"):
        rvt_histogram_windows([0, 0], [0, 0], [0, 0], [5, 4], [0], [2], 1, 1)
    with pytest.raises(ValueError, match="window 0"):
        rvt_histogram_windows([0], [0], [0], [5], [0], [2], 1, 1)
    with pytest.raises(ValueError, match="max_count"):
        rvt_histogram_windows([0], [0], [0], [5], [0], [1], 1, 1, max_count=0)
    with pytest.raises(ValueError, match="lengths"):
        rvt_histogram_windows([0], [0, 1], [0], [5], [0], [1], 1, 1)


def test_registry_entry_is_counts_storable_as_uint8(rng):
    rep = get_representation("rvt_stacked_histogram")
    assert rep.channels() == 20 and rep.uint8_scale_for() == 1.0 and rep.value_range_for() == (0.0, 10.0)
    ev = np.zeros(20_000, EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 100_000, 20_000))
    ev["x"], ev["y"] = rng.integers(0, 4, 20_000), rng.integers(0, 3, 20_000)
    ev["p"] = rng.integers(0, 2, 20_000)
    out = events_to_tensor(ev, "rvt_stacked_histogram", 2, 6, 8, 50_000)
    first = ev[ev["t"] < 50_000]
    ref = rvt_window_ref(first["x"], first["y"], first["p"], first["t"], 6, 8)
    np.testing.assert_array_equal(out[0], ref)
    assert out.dtype == np.float32 and np.all(out == np.round(out)) and out.max() == 10
