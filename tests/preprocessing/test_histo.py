"""histo and diff against their numpy references (SPEC 3)."""

from __future__ import annotations

import numpy as np
import pytest
from representation_reference import diff_ref, histo_ref, random_events

from evdet.io.dtypes import EVENT_DTYPE
from evdet.preprocessing import diff, events_to_tensor, histo


@pytest.mark.parametrize("d", [0, 1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histo_and_diff_match_numpy_reference(seed, d):
    rng = np.random.default_rng(seed)
    total = 30_000
    ev = random_events(rng, 5000, 40, 56, total, start_ts=1000)
    shape = (3, 2, 40 >> d, 56 >> d)
    out = np.full(shape, 7.0, dtype=np.float32)  # garbage: the kernel must overwrite it
    histo(ev, out, total, d, max_incr_per_pixel=3.0, start_ts=1000)
    np.testing.assert_allclose(out, histo_ref(ev, shape, total, d, 1000, 3.0), rtol=1e-6, atol=1e-6)
    assert out.max() == 1.0 if d == 0 else out.max() > 0  # saturated somewhere at full resolution
    out1 = np.full((3, 1, 40 >> d, 56 >> d), 7.0, dtype=np.float32)
    diff(ev, out1, total, d, start_ts=1000)
    np.testing.assert_allclose(out1, diff_ref(ev, out1.shape, total, d, 1000), rtol=1e-6, atol=1e-6)


def test_histo_counts_exact_values():
    ev = np.zeros(4, dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = [1, 1, 1, 2], [0, 0, 0, 1], [1, 1, 0, 1], [0, 99, 100, 199]
    out = events_to_tensor(ev, "histo", 2, 2, 4, 100)  # bins [0, 100) and [100, 200)
    assert out.shape == (2, 2, 2, 4)
    assert out[0, 1, 0, 1] == pytest.approx(0.4)  # two ON events in bin 0
    assert out[1, 0, 0, 1] == pytest.approx(0.2)  # one OFF event in bin 1
    assert out[1, 1, 1, 2] == pytest.approx(0.2)
    assert np.count_nonzero(out) == 3
    d = events_to_tensor(ev, "diff", 1, 2, 4, 200)
    assert d[0, 0, 0, 1] == pytest.approx(0.2)  # 2 ON - 1 OFF


def test_events_outside_window_and_frame_are_ignored():
    ev = np.zeros(5, dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"] = [8, 0, 0, 0, 3], [0, 4, 0, 0, 3], [5, 5, -1, 100, 50]
    ev["p"] = 1
    out = events_to_tensor(ev, "histo", 1, 4, 8, 100)
    assert out.sum() == pytest.approx(0.2)  # only the last event lands
    assert out[0, 1, 3, 3] == pytest.approx(0.2)


def test_histo_rejects_bad_arguments():
    ev = np.zeros(1, dtype=EVENT_DTYPE)
    with pytest.raises(ValueError, match="max_incr_per_pixel"):
        histo(ev, np.zeros((1, 2, 4, 4), np.float32), 100, max_incr_per_pixel=0)
    with pytest.raises(ValueError, match="channels"):
        histo(ev, np.zeros((1, 3, 4, 4), np.float32), 100)
    with pytest.raises(TypeError, match="float32"):
        histo(ev, np.zeros((1, 2, 4, 4), np.float64), 100)
    with pytest.raises(ValueError, match="window"):
        histo(ev, np.zeros((1, 2, 4, 4), np.float32), 0)
    with pytest.raises(ValueError, match="window"):
        histo(ev, np.zeros((1, 2, 4, 4), np.float32), 10.5)
