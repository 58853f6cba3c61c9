"""Registry, events_to_tensor, and every representation on real recordings and empty input."""

from __future__ import annotations

import numpy as np
import pytest
from representation_reference import REFERENCES, dat_events, random_events

from evdet.io.dtypes import EVENT_DTYPE, as_events
from evdet.preprocessing import REPRESENTATIONS, events_to_tensor, get_representation, register_representation

BUILTIN = ["histo", "diff", "event_cube", "timesurface", "multi_channel_timesurface", "stacked_histogram",
           "rvt_stacked_histogram"]


def _reference(name, events, num_tbins, height, width, delta_t, start_ts, d, **params):
    rep = get_representation(name)
    resolved = rep.resolve_params(params)
    shape = (num_tbins, rep.channels(**resolved), height >> d, width >> d)
    return REFERENCES[name](events, shape, num_tbins * delta_t, d, start_ts, **resolved)


def test_builtins_registered_with_channels():
    assert set(BUILTIN) <= set(REPRESENTATIONS)
    assert get_representation("histo").channels() == 2
    assert get_representation("diff").channels() == 1
    assert get_representation("event_cube").channels() == 6
    assert get_representation("event_cube").channels(split_polarity=False, num_utbins=4) == 4
    assert get_representation("multi_channel_timesurface").channels(num_utbins=5) == 10
    assert get_representation("stacked_histogram").channels() == 20


def test_unknown_name_and_param_raise():
    ev = np.zeros(0, dtype=EVENT_DTYPE)
    with pytest.raises(ValueError, match="histo"):  # lists the valid names
        events_to_tensor(ev, "histogram", 1, 4, 4, 100)
    with pytest.raises(TypeError, match="max_incr"):
        events_to_tensor(ev, "histo", 1, 4, 4, 100, max_incr=3)
    with pytest.raises(ValueError, match="delta_t"):
        events_to_tensor(ev, "histo", 1, 4, 4, -5)
    with pytest.raises(ValueError, match="time bin"):
        events_to_tensor(ev, "histo", 0, 4, 4, 100)
    with pytest.raises(ValueError, match="downsampling_factor"):
        events_to_tensor(ev, "histo", 1, 4, 4, 100, downsampling_factor=-1)


@pytest.mark.parametrize("name", BUILTIN)
def test_empty_events_give_zeros(name):
    out = events_to_tensor(np.zeros(0, dtype=EVENT_DTYPE), name, 2, 10, 12, 1000, downsampling_factor=1)
    assert out.dtype == np.float32
    assert out.shape == (2, get_representation(name).channels(), 5, 6)
    assert not out.any()


@pytest.mark.parametrize("name", BUILTIN)
def test_events_to_tensor_window_matches_reference(name, rng):
    ev = random_events(rng, 3000, 30, 40, 40_000, start_ts=123_456)
    for d in (0, 1):
        out = events_to_tensor(ev, name, 4, 30, 40, 10_000, start_ts=123_456, downsampling_factor=d)
        ref = _reference(name, ev, 4, 30, 40, 10_000, 123_456, d)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_events_to_tensor_accepts_other_field_order(rng):
    ev = random_events(rng, 500, 8, 8, 1000)
    other = np.zeros(ev.size, dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    for f in ("t", "x", "y", "p"):
        other[f] = ev[f]
    np.testing.assert_array_equal(events_to_tensor(other, "histo", 2, 8, 8, 500),
                                  events_to_tensor(ev, "histo", 2, 8, 8, 500))


def test_user_representation_can_be_registered(rng):
    def count_all(events, out, delta_t, downsampling_factor=0, *, weight=1.0):
        out[...] = 0
        t = events["t"]
        out[0, 0, 0, 0] = weight * np.count_nonzero((t >= 0) & (t < delta_t))

    register_representation("test_count_all", count_all, 1, {"weight": 1.0}, value_range=(0, np.inf))
    try:
        ev = np.zeros(3, dtype=EVENT_DTYPE)
        ev["t"] = [999, 1000, 1500]
        out = events_to_tensor(ev, "test_count_all", 1, 2, 2, 1000, start_ts=1000, weight=2.0)
        assert out[0, 0, 0, 0] == 4.0  # start_ts shifted for a kernel that does not take it
        with pytest.raises(ValueError, match="uint8"):
            get_representation("test_count_all").uint8_scale_for()
        with pytest.raises(ValueError, match="already registered"):
            register_representation("test_count_all", count_all, 1)
    finally:
        REPRESENTATIONS.pop("test_count_all", None)


def test_uint8_scale_rules():
    assert get_representation("histo").uint8_scale_for() == 255.0
    assert get_representation("stacked_histogram").uint8_scale_for() == 1.0
    assert get_representation("event_cube").uint8_scale_for() == 255.0
    for name, params in [("diff", {}), ("event_cube", {"split_polarity": False}),
                         ("stacked_histogram", {"max_count": 300})]:
        with pytest.raises(ValueError, match="store_as_uint8"):
            get_representation(name).uint8_scale_for(**params)


@pytest.mark.parametrize("name", BUILTIN)
def test_real_recordings_match_reference(name, real_data):
    ncars = dat_events(real_data / "sample_ncars.dat")
    assert ncars.size == 2009
    out = events_to_tensor(ncars, name, 5, 240, 304, 20_000)
    np.testing.assert_allclose(out, _reference(name, ncars, 5, 240, 304, 20_000, 0, 0), rtol=1e-5, atol=1e-6)
    assert out.any()
    evt3 = as_events(np.load(real_data / "evt3_sample.npy"))
    t0 = int(evt3["t"][0])
    out = events_to_tensor(evt3, name, 2, 720, 1280, 25_000, start_ts=t0, downsampling_factor=1)
    ref = _reference(name, evt3, 2, 720, 1280, 25_000, t0, 1)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    assert out.any()
