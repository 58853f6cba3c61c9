"""timesurface and multi_channel_timesurface against their numpy references (SPEC 3)."""

from __future__ import annotations

import numpy as np
import pytest
from representation_reference import random_events, timesurface_ref

from evdet.io.dtypes import EVENT_DTYPE
from evdet.preprocessing import events_to_tensor, multi_channel_timesurface, timesurface


@pytest.mark.parametrize("d", [0, 1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_timesurfaces_match_numpy_reference(seed, d):
    rng = np.random.default_rng(seed)
    total = 30_001  # bins of fractional length
    ev = random_events(rng, 3000, 24, 40, total, start_ts=7)
    shape = (3, 2, 24 >> d, 40 >> d)
    out = np.full(shape, 5.0, dtype=np.float32)
    timesurface(ev, out, total, d, start_ts=7)
    np.testing.assert_allclose(out, timesurface_ref(ev, shape, total, d, 7, 1), rtol=1e-6, atol=1e-7)
    assert 0.0 <= out.min() and out.max() <= 1.0 and out.max() > 0
    shape3 = (3, 6, 24 >> d, 40 >> d)
    out3 = np.full(shape3, 5.0, dtype=np.float32)
    multi_channel_timesurface(ev, out3, total, d, num_utbins=3, start_ts=7)
    np.testing.assert_allclose(out3, timesurface_ref(ev, shape3, total, d, 7, 3), rtol=1e-6, atol=1e-7)


def test_timesurface_keeps_latest_event_and_value_range():
    ev = np.zeros(4, dtype=EVENT_DTYPE)
    # bins of 100 µs; pixel (0, 0) ON: events at 10 then 5 (unsorted) -> latest is 10 -> 11/100
    ev["t"], ev["p"], ev["x"] = [10, 5, 199, 100], [1, 1, 0, 0], [0, 0, 1, 2]
    out = events_to_tensor(ev, "timesurface", 2, 1, 3, 100)
    assert out[0, 1, 0, 0] == pytest.approx(0.11)
    assert out[1, 0, 0, 1] == pytest.approx(1.0)  # last µs of the bin -> 1
    assert out[1, 0, 0, 2] == pytest.approx(0.01)  # first µs of the bin -> 1 / L, never 0
    assert np.count_nonzero(out) == 3


def test_multi_channel_timesurface_channels():
    ev = np.zeros(1, dtype=EVENT_DTYPE)
    ev["t"], ev["p"] = [150], [1]  # U = 2 micro-bins of 100 µs in one bin of 200 µs -> micro-bin 1
    out = events_to_tensor(ev, "multi_channel_timesurface", 1, 1, 1, 200, num_utbins=2)
    assert out.shape == (1, 4, 1, 1)
    np.testing.assert_allclose(out[0, :, 0, 0], [0, 0, 0, 0.51])
