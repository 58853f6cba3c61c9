"""Tests of evdet/simulation/recording.py: well-formed output, determinism, sensor-like statistics and
labels that agree with the events."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from evdet.io.dtypes import BBOX_DTYPE, EVENT_DTYPE
from evdet.simulation.config import PRESETS, SensorConfig, SimulationConfig
from evdet.simulation.recording import label_scene, simulate_events, simulate_recording

TINY = PRESETS["tiny"].simulation
TWO_S = TINY.replace(duration_us=2_000_000)


def _quiet(config: SimulationConfig, **scene) -> SimulationConfig:
    """No noise, no ego-motion (plus other scene changes)."""
    return dataclasses.replace(config, scene=dataclasses.replace(config.scene, ego_motion_prob=0.0, **scene),
                               sensor=dataclasses.replace(config.sensor, noise_rate_hz=0.0))


@pytest.fixture(scope="module")
def recording():
    return simulate_recording(TWO_S, 3)


def test_events_and_boxes_are_well_formed(recording):
    ev, bx = recording
    assert ev.dtype == EVENT_DTYPE and bx.dtype == BBOX_DTYPE
    assert ev.size > 10_000 and bx.size > 40
    assert np.all(np.diff(ev["t"]) >= 0) and ev["t"].min() >= 0 and ev["t"].max() < 2_000_000
    assert ev["x"].max() < 128 and ev["y"].max() < 96 and set(np.unique(ev["p"]).tolist()) == {0, 1}
    assert np.all(np.diff(bx["t"]) >= 0)
    assert np.all(bx["t"] % 50_000 == 0) and bx["t"].min() >= 50_000 and bx["t"].max() < 2_000_000
    assert np.all(bx["x"] >= 0) and np.all(bx["y"] >= 0)
    assert np.all(bx["x"] + bx["w"] <= 128 + 1e-4) and np.all(bx["y"] + bx["h"] <= 96 + 1e-4)
    assert np.all(bx["w"] >= 3) and np.all(bx["h"] >= 3) and np.all(bx["class_confidence"] == 1)
    for tid in np.unique(bx["track_id"]):  # a track keeps its class and appears at most once per instant
        sel = bx[bx["track_id"] == tid]
        assert np.unique(sel["class_id"]).size == 1
        assert np.unique(sel["t"]).size == sel.size


def test_deterministic_for_a_seed(recording):
    ev, bx = simulate_recording(TWO_S, 3)
    np.testing.assert_array_equal(ev, recording[0])
    np.testing.assert_array_equal(bx, recording[1])
    ev2, _ = simulate_recording(TWO_S, 4)
    assert ev2.size != ev.size or not np.array_equal(ev2, ev)


def test_bad_arguments_raise():
    with pytest.raises(TypeError, match="SimulationConfig"):
        simulate_recording({"duration_us": 10}, 0)
    with pytest.raises(ValueError, match="seed = -1"):
        simulate_recording(TWO_S, -1)


def test_textured_motion_has_balanced_polarity():
    for seed in (0, 1, 2):
        ev, _ = simulate_recording(_quiet(TWO_S), seed)
        assert ev.size > 5000
        assert 0.4 < ev["p"].mean() < 0.6, seed


def test_static_scene_produces_only_noise():
    static = dataclasses.replace(TWO_S, scene=dataclasses.replace(TWO_S.scene, mean_objects=0.0,
                                                                  ego_motion_prob=0.0))
    ev, bx = simulate_recording(static, 0)
    assert bx.size == 0
    expected = static.sensor.noise_rate_hz * 96 * 128 * 2.0
    assert abs(ev.size - expected) < 5 * np.sqrt(expected)
    counts = np.histogram2d(ev["y"], ev["x"], bins=(2, 2), range=((0, 96), (0, 128)))[0]
    assert counts.min() > 0.7 * counts.mean()  # spread over the whole frame
    silent = dataclasses.replace(static, sensor=dataclasses.replace(static.sensor, noise_rate_hz=0.0))
    assert simulate_recording(silent, 0)[0].size == 0


def test_event_rate_grows_with_speed_and_contrast():
    slow = simulate_recording(_quiet(TWO_S, speed_scale=0.5), 1)[0].size
    fast = simulate_recording(_quiet(TWO_S, speed_scale=2.0), 1)[0].size
    assert fast > 2 * slow
    ego = dict(mean_objects=0.0, ego_motion_prob=1.0, ego_pan_px=4.0)
    low = dataclasses.replace(TWO_S, scene=dataclasses.replace(TWO_S.scene, background_contrast=0.15, **ego),
                              sensor=SensorConfig(noise_rate_hz=0.0))
    high = dataclasses.replace(low, scene=dataclasses.replace(low.scene, background_contrast=0.8))
    n_low, n_high = simulate_recording(low, 2)[0].size, simulate_recording(high, 2)[0].size
    assert n_high > 2 * n_low > 0


def test_most_events_fall_inside_the_boxes():
    for seed in (0, 1):
        ev, bx = simulate_recording(_quiet(TWO_S), seed)
        instants = np.unique(bx["t"])
        which = np.searchsorted(instants, ev["t"])  # the label instant that ends each event's 50 ms bin
        inside = np.zeros(ev.size, bool)
        for i, t in enumerate(instants):
            sel = np.flatnonzero(which == i)
            e = ev[sel]
            for b in bx[bx["t"] == t]:
                inside[sel] |= ((e["x"] >= b["x"] - 2) & (e["x"] < b["x"] + b["w"] + 2)
                                & (e["y"] >= b["y"] - 2) & (e["y"] < b["y"] + b["h"] + 2))
        counted = which < instants.size
        assert inside[counted].mean() > 0.85, seed


def test_stopped_object_is_labelled_but_silent(make_scene):
    scene = make_scene(48, 64, 500_000, [dict(x=20.0, y=20.0, w=16.0, h=10.0, base=0.1),
                                         dict(x=45.0, y=30.0, w=10.0, h=12.0, vx=20.0, base=0.9, cls=1)])
    ev = simulate_events(scene, SensorConfig(noise_rate_hz=0.0), 500_000, np.random.default_rng(0))
    assert ev.size > 0
    assert ev["x"].min() >= 39  # every event comes from the moving object (x from 40 to 50 + 10 px)
    boxes = label_scene(scene, np.arange(50_000, 500_000, 50_000), 0.25, 3.0)
    stopped = boxes[boxes["track_id"] == 1]
    assert stopped.size == 9  # labelled at every instant although it fires no event
    np.testing.assert_allclose(stopped[["x", "y", "w", "h"]].tolist(), [(12.0, 15.0, 16.0, 10.0)] * 9)


def test_occluded_and_out_of_view_objects_are_not_labelled(make_scene):
    scene = make_scene(48, 64, 100_000, [  # listed far to near
        dict(x=30.0, y=20.0, w=10.0, h=10.0, cls=1),  # hidden behind the third one
        dict(x=40.0, y=20.0, w=10.0, h=10.0, cls=1),  # half hidden behind the third one: labelled
        dict(x=30.0, y=20.0, w=20.0, h=14.0, cls=0),
        dict(x=-30.0, y=20.0, w=20.0, h=10.0, cls=2),  # outside the frame
        dict(x=-9.0, y=40.0, w=20.0, h=10.0, cls=2),  # 1 px inside: too thin
        dict(x=62.0, y=40.0, w=20.0, h=10.0, cls=2)])  # partly inside: clipped box
    boxes = label_scene(scene, np.array([50_000]), 0.25, 3.0)
    np.testing.assert_array_equal(boxes["track_id"], [2, 3, 6])
    b = boxes[boxes["track_id"] == 6][0]
    assert (b["x"], b["y"], b["w"], b["h"]) == (52.0, 35.0, 12.0, 10.0)
    strict = label_scene(scene, np.array([50_000]), 0.7, 3.0)
    np.testing.assert_array_equal(strict["track_id"], [3, 6])


def test_event_count_does_not_depend_on_the_render_step(make_scene):
    """Features are antialiased: a fine and a coarse step give the same events up to a few %, also with
    the refractory period (hard-edged features would fire bursts that the refractory period cuts)."""
    objs = [dict(x=20.0, y=20.0, w=24.0, h=14.0, vx=20.0, base=0.1, accent=0.8, shape=0, radius=0.3),
            dict(x=45.0, y=24.0, w=16.0, h=16.0, vx=-15.0, base=0.9, accent=0.1, shape=2, radius=0.4)]
    scene = make_scene(48, 64, 1_000_000, objs)
    counts = []
    for step in (250, 10_000):
        sensor = SensorConfig(noise_rate_hz=0.0, refractory_us=200, min_step_us=step, max_step_us=step)
        counts.append(simulate_events(scene, sensor, 1_000_000, np.random.default_rng(0)).size)
    assert counts[0] > 10_000
    assert abs(counts[1] - counts[0]) < 0.06 * counts[0]
