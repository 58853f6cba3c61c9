"""event_cube against its numpy reference (SPEC 3)."""

from __future__ import annotations

import numpy as np
import pytest
from representation_reference import event_cube_ref, random_events

from evdet.io.dtypes import EVENT_DTYPE
from evdet.preprocessing import event_cube, events_to_tensor


@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize("d", [0, 1, 2])
@pytest.mark.parametrize("seed", [0, 1])
def test_event_cube_matches_numpy_reference(seed, d, split):
    rng = np.random.default_rng(seed)
    total = 40_000
    ev = random_events(rng, 4000, 32, 48, total, start_ts=-500)
    u = 4
    shape = (2, u * (2 if split else 1), 32 >> d, 48 >> d)
    out = np.full(shape, 3.0, dtype=np.float32)
    event_cube(ev, out, total, d, num_utbins=u, split_polarity=split, max_incr_per_pixel=2.0, start_ts=-500)
    ref = event_cube_ref(ev, shape, total, d, -500, u, split, 2.0)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    assert out.min() >= (0.0 if split else -1.0) and out.max() <= 1.0
    assert np.count_nonzero(out) > 0


def test_event_cube_weights_split_between_nearest_microbins():
    ev = np.zeros(3, dtype=EVENT_DTYPE)
    # U = 2 over one bin of 400 µs: micro-bin centres at 100 and 300 µs
    ev["t"], ev["p"], ev["x"] = [200, 50, 399], 1, [0, 1, 2]
    out = events_to_tensor(ev, "event_cube", 1, 1, 4, 400, num_utbins=2, max_incr_per_pixel=1.0)
    assert out.shape == (1, 4, 1, 4)
    np.testing.assert_allclose(out[0, 2:, 0, 0], [0.5, 0.5])  # halfway between the centres
    np.testing.assert_allclose(out[0, 2:, 0, 1], [1.0, 0.0])  # before the first centre: all to it
    np.testing.assert_allclose(out[0, 2:, 0, 2], [0.0, 1.0])
    assert not out[0, :2].any()  # no OFF events


def test_event_cube_without_split_is_signed():
    ev = np.zeros(2, dtype=EVENT_DTYPE)
    ev["t"], ev["p"] = [100, 100], [0, 0]
    out = events_to_tensor(ev, "event_cube", 1, 1, 1, 400, num_utbins=2, split_polarity=False,
                           max_incr_per_pixel=4.0)
    assert out.shape == (1, 2, 1, 1)
    np.testing.assert_allclose(out[0, :, 0, 0], [-0.5, 0.0])


def test_event_cube_rejects_bad_params():
    ev = np.zeros(1, dtype=EVENT_DTYPE)
    with pytest.raises(ValueError, match="num_utbins"):
        event_cube(ev, np.zeros((1, 0, 2, 2), np.float32), 100, num_utbins=0)
    with pytest.raises(ValueError, match="channels"):
        event_cube(ev, np.zeros((1, 3, 2, 2), np.float32), 100, num_utbins=2)
