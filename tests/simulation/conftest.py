"""Hand-made scenes for the simulation tests."""

from __future__ import annotations

import numpy as np
import pytest

from evdet.simulation.scene import (
    ACCENT,
    ALIVE,
    BASE,
    GRID_US,
    NUM_PARAMS,
    RADIUS,
    SHAPE,
    TEX_AMP,
    TEXTURE_SIZE,
    H,
    Scene,
    W,
)


def build_test_scene(height: int, width: int, duration_us: int, objects: list[dict],
                     background: float | np.ndarray = 0.5) -> Scene:
    """A static-camera scene. Each object: ``cls``, ``shape``, ``x``, ``y`` (centre at t = 0), ``w``, ``h``,
    optional ``vx``, ``vy`` (pixels/s), ``base`` (intensity), ``alive`` (bool ndarray[G] or None)."""
    g = duration_us // GRID_US + 2
    t_s = np.arange(g) * GRID_US * 1e-6
    n = len(objects)
    static = np.zeros((n, NUM_PARAMS))
    centers = np.zeros((n, g, 2))
    alive = np.ones((n, g), bool)
    flow = np.zeros(g)
    for k, o in enumerate(objects):
        static[k, [W, H, SHAPE, BASE, ACCENT, TEX_AMP, RADIUS]] = (
            o["w"], o["h"], o.get("shape", 0), o.get("base", 0.1), o.get("accent", 0.1), 0.0,
            o.get("radius", 0.0))
        centers[k, :, 0] = o["x"] + o.get("vx", 0.0) * t_s
        centers[k, :, 1] = o["y"] + o.get("vy", 0.0) * t_s
        if o.get("alive") is not None:
            alive[k] = o["alive"]
        flow = np.maximum(flow, np.hypot(o.get("vx", 0.0), o.get("vy", 0.0)))
    bg = np.broadcast_to(np.asarray(background, np.float32), (height + 8, width + 8)).copy()
    camera = np.zeros((g, 3))
    camera[:, 2] = 1.0
    static[:, ALIVE] = 1.0
    return Scene(height=height, width=width, background=bg, margin=4, camera=camera, static=static,
                 centers=centers, phase=np.zeros((n, g)), alive=alive,
                 textures=np.zeros((n, TEXTURE_SIZE, TEXTURE_SIZE), np.float32),
                 class_ids=np.array([o.get("cls", 0) for o in objects], np.uint32),
                 track_ids=np.arange(1, n + 1, dtype=np.uint32), flow=flow)


@pytest.fixture
def make_scene():
    return build_test_scene
