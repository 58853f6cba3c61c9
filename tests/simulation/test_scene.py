"""Tests of evdet/simulation/scene.py: background sampler vs numpy reference, object rasterisation,
coverage/occlusion, scene drawing and the adaptive step rule."""

from __future__ import annotations

import numpy as np
import pytest

from evdet.simulation.config import SceneConfig
from evdet.simulation.scene import (
    CLASS_TEMPLATES,
    GRID_US,
    H,
    W,
    _render_background_kernel,
    build_scene,
    make_background,
    object_coverage,
    render_background_reference,
    render_frame,
    step_times,
)


@pytest.mark.parametrize("ox, oy, zoom", [(0.0, 0.0, 1.0), (2.3, -1.7, 1.03), (-3.9, 3.2, 0.97)])
def test_background_kernel_matches_numpy_reference(rng, ox, oy, zoom):
    bg = rng.random((40 + 16, 50 + 16)).astype(np.float32)
    out = np.empty((40, 50))
    _render_background_kernel(bg, 8.0, ox, oy, zoom, out)
    np.testing.assert_allclose(out, render_background_reference(bg, 8, ox, oy, zoom, 40, 50), atol=1e-6)
    if (ox, oy, zoom) == (0.0, 0.0, 1.0):  # camera at rest: exactly the centre crop
        np.testing.assert_allclose(out, bg[8:48, 8:58], atol=1e-6)


def test_rectangle_is_rasterised_exactly_and_covered(make_scene):
    scene = make_scene(48, 64, 100_000, [dict(x=30.0, y=20.0, w=20.0, h=10.0, base=0.1, accent=0.1)])
    img = render_frame(scene, 0.0)
    assert img.shape == (48, 64)
    inside = np.zeros((48, 64), bool)
    inside[15:25, 20:40] = True
    assert np.all(img[~inside] == pytest.approx(0.5))
    assert np.all(img[inside] < 0.11)  # body 0.1, wheels darker
    _, counts = object_coverage(scene, 0.0)
    np.testing.assert_array_equal(counts, [[200, 200]])


def test_subpixel_motion_is_antialiased(make_scene):
    scene = make_scene(48, 64, 100_000, [dict(x=30.0, y=20.0, w=20.0, h=10.0, vx=2.5, base=0.1, accent=0.1)])
    img0, img1 = render_frame(scene, 0.0), render_frame(scene, 100_000.0)  # moved by 0.25 px
    assert img1[20, 40] == pytest.approx(0.5 + 0.25 * (0.1 - 0.5))  # right edge pixel a quarter covered
    assert img1[20, 20] == pytest.approx(0.1 + 0.25 * (0.5 - 0.1))  # left edge pixel a quarter uncovered
    assert img1.sum() == pytest.approx(img0.sum(), rel=1e-3)  # the area is unchanged


def test_occlusion_and_out_of_frame_coverage(make_scene):
    objs = [dict(x=30.0, y=20.0, w=20.0, h=10.0),  # far (drawn first)
            dict(x=35.0, y=20.0, w=20.0, h=10.0),  # near: hides the right 3/4 of the first
            dict(x=-40.0, y=20.0, w=20.0, h=10.0),  # outside the frame
            dict(x=60.0, y=20.0, w=20.0, h=10.0)]  # half outside
    _, counts = object_coverage(make_scene(48, 64, 100_000, objs), 0.0)
    np.testing.assert_array_equal(counts, [[200, 50], [200, 200], [0, 0], [140, 140]])


def test_dead_objects_are_not_drawn(make_scene):
    g = 100_000 // GRID_US + 2
    scene = make_scene(48, 64, 100_000, [dict(x=30.0, y=20.0, w=20.0, h=10.0, alive=np.zeros(g, bool))])
    assert np.all(render_frame(scene, 0.0) == pytest.approx(0.5))
    assert object_coverage(scene, 0.0)[1].sum() == 0


def test_background_range():
    bg = make_background(60, 80, 0.4, np.random.default_rng(0))
    assert bg.shape == (60, 80) and bg.dtype == np.float32
    assert bg.min() >= 0.3 - 1e-6 and bg.max() <= 0.7 + 1e-6
    assert bg.std() > 0.03  # textured


def test_build_scene_is_deterministic_and_follows_templates():
    cfg = SceneConfig(height=96, width=128, classes=(0, 1), mean_objects=3.0, ego_motion_prob=1.0)
    a = build_scene(cfg, 3_000_000, np.random.default_rng(7))
    b = build_scene(cfg, 3_000_000, np.random.default_rng(7))
    np.testing.assert_array_equal(a.centers, b.centers)
    np.testing.assert_array_equal(a.background, b.background)
    assert a.num_objects >= 1
    assert set(a.class_ids.tolist()) <= {0, 1}
    assert np.unique(a.track_ids).size == a.num_objects
    for k, c in enumerate(a.class_ids):
        tpl = CLASS_TEMPLATES[int(c)]
        assert tpl.height_frac[0] * 96 - 1e-9 <= a.static[k, H] <= tpl.height_frac[1] * 96 + 1e-9
        assert tpl.aspect[0] - 1e-9 <= a.static[k, W] / a.static[k, H] <= tpl.aspect[1] + 1e-9
    assert np.ptp(a.camera[:, 2]) > 0  # ego-motion drawn: zoom varies
    c = build_scene(cfg, 3_000_000, np.random.default_rng(8))
    assert not np.array_equal(a.background, c.background)


def test_step_times_follow_the_flow_rule(make_scene):
    scene = make_scene(48, 64, 1_000_000, [dict(x=30.0, y=20.0, w=20.0, h=10.0, vx=400.0)])
    t = step_times(scene, 1_000_000, 0.5, 100, 5000)
    assert t[0] == 0 and t[-1] == 1_000_000 and np.all(np.diff(t) > 0)
    assert np.all(np.diff(t) <= 1250)  # 0.5 px / 400 px/s = 1.25 ms
    assert np.diff(t)[:-1].min() >= 1249
    slow = step_times(make_scene(48, 64, 1_000_000, [dict(x=30.0, y=20.0, w=20.0, h=10.0)]),
                      1_000_000, 0.5, 100, 5000)
    assert np.diff(slow)[:-1].min() == 5000  # nothing moves: the longest step
