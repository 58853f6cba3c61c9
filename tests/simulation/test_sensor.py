"""Tests of evdet/simulation/sensor.py: threshold crossings (numba vs numpy reference), the stateful
sensor, noise and hot pixels."""

from __future__ import annotations

import numpy as np
import pytest

from evdet.io.dtypes import EVENT_DTYPE
from evdet.simulation.config import SensorConfig
from evdet.simulation.sensor import (
    EventSensor,
    hot_pixel_events,
    noise_events,
    threshold_crossings,
    threshold_crossings_reference,
)

NEVER = -(1 << 40)


def _maps(shape, thr=0.2):
    return np.full(shape, thr), np.full(shape, thr), np.full(shape, NEVER, np.int64)


def _same(a: np.ndarray, b: np.ndarray) -> None:
    ka = np.lexsort((a["p"], a["x"], a["y"], a["t"]))
    kb = np.lexsort((b["p"], b["x"], b["y"], b["t"]))
    for f in EVENT_DTYPE.names:
        np.testing.assert_array_equal(a[f][ka], b[f][kb], err_msg=f)


def test_ramp_fires_one_event_per_threshold_at_interpolated_times():
    log0, log1 = np.zeros((1, 1)), np.full((1, 1), 1.05)
    on, off, last = _maps((1, 1))
    ev, ref, last_t = threshold_crossings(log0, log1, log0, on, off, last, 1000, 2000, 0)
    assert ev.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(ev["p"], [1] * 5)
    np.testing.assert_array_equal(ev["t"], 1000 + np.round(np.arange(1, 6) * 0.2 / 1.05 * 1000).astype(int))
    assert ref[0, 0] == pytest.approx(1.0)
    assert last_t[0, 0] == ev["t"][-1]
    ev, ref, _ = threshold_crossings(log1, log0, ref, on, off, last_t, 2000, 3000, 0)
    np.testing.assert_array_equal(ev["p"], [0] * 5)  # back down: 5 OFF events, reference back near 0
    assert ref[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(ev["t"]) > 0)


def test_small_change_fires_nothing_and_inputs_unchanged():
    log0 = np.zeros((3, 4))
    log1 = np.full((3, 4), 0.19)
    on, off, last = _maps((3, 4))
    ref = log0.copy()
    ev, new_ref, _ = threshold_crossings(log0, log1, ref, on, off, last, 0, 1000, 0)
    assert ev.size == 0
    np.testing.assert_array_equal(new_ref, ref)
    ev, new_ref, _ = threshold_crossings(log0, log1 + 0.02, ref, on, off, last, 0, 1000, 0)
    assert ev.size == 12 and np.all(ev["p"] == 1)
    np.testing.assert_array_equal(ref, 0.0)  # the caller's reference is not modified


def test_refractory_period_drops_close_events_but_moves_reference():
    log0, log1 = np.zeros((1, 1)), np.full((1, 1), 1.0 + 1e-9)
    on, off, last = _maps((1, 1))
    ev, ref, _ = threshold_crossings(log0, log1, log0, on, off, last, 0, 1000, 300)
    np.testing.assert_array_equal(ev["t"], [200, 600, 1000])  # 200, 400 (dropped), 600, 800 (dropped), 1000
    assert ref[0, 0] == pytest.approx(1.0)


def test_numba_kernel_matches_numpy_reference(rng):
    shape = (23, 31)
    log0 = rng.normal(0, 0.3, shape)
    ref = log0 + rng.uniform(-0.15, 0.15, shape)
    log1 = log0 + rng.normal(0, 0.8, shape)
    log1[:, :5] = log0[:, :5]  # no change
    on = rng.uniform(0.16, 0.3, shape)
    off = rng.uniform(0.16, 0.3, shape)
    last = np.where(rng.random(shape) < 0.5, NEVER, rng.integers(9000, 10_000, shape)).astype(np.int64)
    got = threshold_crossings(log0, log1, ref, on, off, last, 10_000, 13_000, 250)
    exp = threshold_crossings_reference(log0, log1, ref, on, off, last, 10_000, 13_000, 250)
    assert got[0].size > 1024  # more than the initial buffer: exercises the resume-after-growth path
    _same(got[0], exp[0])
    np.testing.assert_allclose(got[1], exp[1], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got[2], exp[2])


def test_threshold_crossings_rejects_bad_input():
    a = np.zeros((2, 2))
    on, off, last = _maps((2, 2))
    with pytest.raises(ValueError, match="shape"):
        threshold_crossings(a, np.zeros((2, 3)), a, on, off, last, 0, 10, 0)
    with pytest.raises(ValueError, match="t1 = 5 < t0 = 10"):
        threshold_crossings(a, a, a, on, off, last, 10, 5, 0)


def test_event_sensor_equals_chained_pure_calls(rng):
    cfg = SensorConfig(threshold_sigma=0.02, refractory_us=100)
    sensor = EventSensor(cfg, 12, 10, np.random.default_rng(1))
    frames = [np.clip(0.5 + 0.3 * rng.standard_normal((12, 10)), 0, 1) for _ in range(4)]
    frames[2][:6] = frames[1][:6]  # half the pixels static during one step
    times = [0, 700, 1500, 4000]
    sensor.reset(frames[0], 0)
    for f, t in zip(frames[1:], times[1:], strict=True):
        sensor.step(f, t)
    ref = np.log(frames[0] + cfg.log_eps)
    last = np.full((12, 10), NEVER, np.int64)
    expected = []
    for k in range(1, 4):
        l0, l1 = np.log(frames[k - 1] + cfg.log_eps), np.log(frames[k] + cfg.log_eps)
        ev, ref, last = threshold_crossings_reference(l0, l1, ref, sensor.thr_on, sensor.thr_off, last,
                                                      times[k - 1], times[k], 100)
        expected.append(ev)
    got = sensor.events()
    assert np.all(np.diff(got["t"]) >= 0)
    _same(got, np.concatenate(expected))
    with pytest.raises(ValueError, match="must be >"):
        sensor.step(frames[0], 4000)


def test_static_image_fires_nothing_and_threshold_mismatch_has_sigma():
    cfg = SensorConfig(threshold_on=0.3, threshold_sigma=0.05)
    sensor = EventSensor(cfg, 100, 100, np.random.default_rng(0))
    img = np.random.default_rng(1).random((100, 100))
    sensor.reset(img, 0)
    for t in range(1000, 10_000, 1000):
        sensor.step(img, t)
    assert sensor.events().size == 0
    assert sensor.thr_on.mean() == pytest.approx(0.3, abs=0.005)
    assert sensor.thr_on.std() == pytest.approx(0.05, rel=0.05)


def test_noise_is_uniform_with_the_right_rate_and_balanced_polarity():
    ev = noise_events(60, 80, 2_000_000, 2.0, np.random.default_rng(0))
    expected = 2.0 * 60 * 80 * 2.0
    assert abs(ev.size - expected) < 5 * np.sqrt(expected)
    assert ev["x"].max() < 80 and ev["y"].max() < 60 and ev["t"].max() < 2_000_000 and ev["t"].min() >= 0
    assert ev["p"].mean() == pytest.approx(0.5, abs=0.02)
    counts = np.histogram2d(ev["y"], ev["x"], bins=(4, 4), range=((0, 60), (0, 80)))[0]
    chi2 = ((counts - counts.mean()) ** 2 / counts.mean()).sum()
    assert chi2 < 40  # 15 dof: p < 1e-3 for a uniform spread
    t_counts = np.histogram(ev["t"], bins=10, range=(0, 2_000_000))[0]
    assert t_counts.min() > 0.9 * t_counts.mean()


def test_hot_pixels_fire_at_few_pixels():
    ev = hot_pixel_events(50, 50, 1_000_000, 0.002, 100.0, np.random.default_rng(0))
    pixels = np.unique(ev["y"].astype(int) * 50 + ev["x"])
    assert pixels.size == 5
    assert ev.size == pytest.approx(500, rel=0.3)
    assert hot_pixel_events(50, 50, 1_000_000, 0.0, 100.0, np.random.default_rng(0)).size == 0
