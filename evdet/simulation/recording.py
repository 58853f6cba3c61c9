"""One synthetic recording: render the scene step by step, run the sensor, add noise, label the boxes."""

from __future__ import annotations

import numpy as np

from evdet.io.dtypes import BBOX_DTYPE, EVENT_DTYPE
from evdet.simulation.config import SensorConfig, SimulationConfig
from evdet.simulation.scene import (
    CX,
    CY,
    H,
    Scene,
    SceneRenderer,
    W,
    build_scene,
    object_coverage,
    step_times,
)
from evdet.simulation.sensor import EventSensor, hot_pixel_events, noise_events


def label_scene(scene: Scene, label_times: np.ndarray, min_visible_fraction: float,
                min_box_side: float) -> np.ndarray:
    """Ground-truth boxes of the visible objects at each label instant.

    A box is the object's full extent clipped to the frame. An object is labelled when it exists, its
    clipped box has both sides >= ``min_box_side`` pixels, and at least ``min_visible_fraction`` of its
    in-frame silhouette is not hidden by nearer objects.

    Args:
        label_times: int64 ndarray[K], µs.

    Returns:
        ``BBOX_DTYPE`` ndarray sorted by ``t`` (x, y top-left, w, h in pixels; ``class_confidence`` 1).
    """
    rows = []
    for t in label_times:
        params, counts = object_coverage(scene, float(t))
        x1 = np.clip(params[:, CX] - 0.5 * params[:, W], 0, scene.width)
        x2 = np.clip(params[:, CX] + 0.5 * params[:, W], 0, scene.width)
        y1 = np.clip(params[:, CY] - 0.5 * params[:, H], 0, scene.height)
        y2 = np.clip(params[:, CY] + 0.5 * params[:, H], 0, scene.height)
        visible = counts[:, 1] >= np.maximum(min_visible_fraction * counts[:, 0], 1)
        keep = np.flatnonzero(visible & (x2 - x1 >= min_box_side) & (y2 - y1 >= min_box_side))
        box = np.zeros(keep.size, BBOX_DTYPE)
        box["t"] = t
        box["x"], box["y"] = x1[keep], y1[keep]
        box["w"], box["h"] = x2[keep] - x1[keep], y2[keep] - y1[keep]
        box["class_id"] = scene.class_ids[keep]
        box["track_id"] = scene.track_ids[keep]
        box["class_confidence"] = 1.0
        rows.append(box)
    out = np.zeros(sum(r.size for r in rows), BBOX_DTYPE)
    if rows:
        out[:] = np.concatenate(rows)
    return out


def simulate_events(scene: Scene, sensor: SensorConfig, duration_us: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Events of an event camera watching ``scene`` over ``[0, duration_us)``.

    Renders the scene at adaptive steps (``sensor.max_flow_px`` per step), runs the sensor model on
    them, and adds background-activity noise and hot pixels.

    Returns:
        ``EVENT_DTYPE`` ndarray[N] sorted by ``t`` (µs).
    """
    hgt, wid = scene.height, scene.width
    camera = EventSensor(sensor, hgt, wid, rng)
    renderer = SceneRenderer(scene)
    times = step_times(scene, duration_us, sensor.max_flow_px, sensor.min_step_us, sensor.max_step_us)
    frame = np.empty((hgt, wid))
    camera.reset(renderer.render(0.0, frame), 0)
    for t in times[1:]:
        camera.step(renderer.render(float(t), frame), int(t))
    parts = [camera.events(sort=False),
             noise_events(hgt, wid, duration_us, sensor.noise_rate_hz, rng),
             hot_pixel_events(hgt, wid, duration_us, sensor.hot_pixel_fraction, sensor.hot_pixel_rate_hz,
                              rng)]
    events = np.concatenate(parts).astype(EVENT_DTYPE, copy=False)
    order = np.argsort(events["t"], kind="stable")  # signal events come in step order: long sorted runs
    order = order[events["t"][order] < duration_us]
    return events[order]


def simulate_recording(config: SimulationConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Simulate one labelled event recording; deterministic for a given ``(config, seed)``.

    Returns:
        events: ``EVENT_DTYPE`` ndarray[N] sorted by ``t`` (µs, ``0 <= t < config.duration_us``),
            ``0 <= x < width``, ``0 <= y < height``, ``p`` in {0, 1}.
        boxes: ``BBOX_DTYPE`` ndarray[M] sorted by ``t``, at ``label_start_us + k * label_period_us``,
            top-left x, y and w, h in pixels clipped to the frame, real ``track_id`` per object.

    Raises:
        TypeError: ``config`` is not a ``SimulationConfig``.
        ValueError: ``seed`` is negative.
    """
    if not isinstance(config, SimulationConfig):
        raise TypeError(f"simulate_recording: config must be a SimulationConfig, got {type(config).__name__}")
    if int(seed) < 0:
        raise ValueError(f"simulate_recording: seed = {seed} must be >= 0")
    rng = np.random.default_rng(int(seed))
    scene = build_scene(config.scene, config.duration_us, rng)
    events = simulate_events(scene, config.sensor, config.duration_us, rng)
    label_times = np.arange(config.label_start_us, config.duration_us, config.label_period_us, dtype=np.int64)
    boxes = label_scene(scene, label_times, config.min_visible_fraction, config.min_box_side)
    return events, boxes
