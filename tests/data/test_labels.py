"""Labels per bin (SPEC 4.1): assignment on (start, end], latest wins, interpolation, fallback, filters."""

from __future__ import annotations

import numpy as np
import pytest

from evdet.data.labels import (
    assign_boxes_to_bins,
    detect_label_period,
    filter_boxes_to_targets,
    has_real_track_ids,
    resolve_classes,
)
from evdet.io.dtypes import BBOX_DTYPE


def make_boxes(rows):
    """rows: (t, x, y, w, h, class_id, track_id)."""
    out = np.zeros(len(rows), dtype=BBOX_DTYPE)
    for i, r in enumerate(rows):
        out[i] = (*r, 1.0)
    return out[np.argsort(out["t"], kind="stable")]


def test_box_at_chunk_boundary_delivered_once_in_last_bin():
    dt, t_bins = 10_000, 4
    boxes = make_boxes([(40_000, 1, 1, 5, 5, 0, 0), (40_001, 2, 2, 5, 5, 0, 1), (5_000, 3, 3, 5, 5, 0, 2)])
    seen = []
    for chunk in range(3):
        start = chunk * t_bins * dt
        per_bin, labeled = assign_boxes_to_bins(boxes, start, dt, t_bins, include_start=chunk == 0)
        for k, b in enumerate(per_bin):
            seen += [(chunk, k, int(tr)) for tr in b["track_id"]]
            assert labeled[k] == (b.size > 0)
    assert sorted(seen) == [(0, 0, 2), (0, 3, 0), (1, 0, 1)]


def test_box_at_video_start_goes_to_first_bin_only_with_include_start():
    boxes = make_boxes([(0, 1, 1, 5, 5, 0, 0)])
    per_bin, labeled = assign_boxes_to_bins(boxes, 0, 1000, 2, include_start=True)
    assert per_bin[0].size == 1 and labeled.tolist() == [True, False]
    per_bin, labeled = assign_boxes_to_bins(boxes, 0, 1000, 2, include_start=False)
    assert not labeled.any()


def test_latest_instant_wins_per_track():
    boxes = make_boxes([(100, 1, 0, 5, 5, 0, 7), (600, 2, 0, 5, 5, 0, 7), (300, 9, 0, 5, 5, 1, 8),
                        (200, 4, 0, 5, 5, 0, 9), (5_000, 4, 0, 5, 5, 0, 9)])
    per_bin, labeled = assign_boxes_to_bins(boxes, 0, 1000, 2, real_track_ids=True)
    got = {int(b["track_id"]): float(b["x"]) for b in per_bin[0]}
    assert got == {7: 2.0, 8: 9.0, 9: 4.0}
    assert labeled.tolist() == [True, False]


def test_interpolation_reproduces_linear_motion_at_bin_ends():
    period, dt = 50_000, 10_000
    # two tracks moving linearly, annotated every 50 ms (exact positions).
    def pos(t, tr):
        return 10 + 0.0004 * t + 30 * tr, 20 - 0.0001 * t, 30 + 0.0002 * t, 15.0
    rows = [(t, *pos(t, tr), tr, tr) for t in range(0, 400_001, period) for tr in (0, 1)]
    boxes = make_boxes(rows)
    assert detect_label_period(boxes) == period and has_real_track_ids(boxes)
    t_bins = 7
    for start in (0, 70_000, 140_000, 210_000):
        per_bin, labeled = assign_boxes_to_bins(boxes, start, dt, t_bins, interpolate=True,
                                                max_interp_gap=2 * period, include_start=start == 0)
        assert labeled.all()
        for k, b in enumerate(per_bin):
            end = start + (k + 1) * dt
            assert sorted(b["track_id"].tolist()) == [0, 1]
            for row in b:
                exp = pos(end, int(row["track_id"]))
                np.testing.assert_allclose([row["x"], row["y"], row["w"], row["h"]], exp, rtol=1e-5)


def test_interpolation_respects_max_gap_and_track_end():
    boxes = make_boxes([(0, 0, 0, 10, 10, 0, 1), (100_000, 100, 0, 10, 10, 0, 1)])
    per_bin, labeled = assign_boxes_to_bins(boxes, 0, 10_000, 10, interpolate=True, max_interp_gap=50_000)
    assert labeled.tolist() == [False] * 9 + [True]  # only the annotation at 100 ms itself
    per_bin, labeled = assign_boxes_to_bins(boxes, 0, 10_000, 10, interpolate=True, max_interp_gap=100_000)
    assert labeled.all()
    assert per_bin[4]["x"][0] == pytest.approx(50.0)
    # the track ends at 100 ms: the next chunk has nothing to interpolate to.
    per_bin, labeled = assign_boxes_to_bins(boxes, 100_000, 10_000, 3, interpolate=True,
                                            max_interp_gap=100_000)
    assert not labeled.any()


def test_fallback_without_real_track_ids_takes_latest_instant():
    boxes = make_boxes([(100, 1, 0, 5, 5, 0, 0), (100, 2, 0, 5, 5, 0, 1), (700, 3, 0, 5, 5, 0, 2),
                        (50_000, 4, 0, 5, 5, 0, 3)])
    assert not has_real_track_ids(boxes)
    per_bin, labeled = assign_boxes_to_bins(boxes, 0, 1000, 60, interpolate=True, max_interp_gap=100_000,
                                            real_track_ids=False)
    assert per_bin[0]["x"].tolist() == [3.0]
    assert labeled.sum() == 2 and labeled[0] and labeled[49]


def test_empty_class_box_labels_the_frame_without_objects():
    label_map = {0: "car", 1: "empty"}
    names, lookup = resolve_classes(label_map, None)
    assert names == ("car",)
    boxes = make_boxes([(500, 1, 1, 5, 5, 1, 0)])
    per_bin, labeled = assign_boxes_to_bins(boxes, 0, 1000, 1)
    assert labeled[0]
    out = filter_boxes_to_targets(per_bin[0], sensor_size=(10, 10), class_lookup=lookup,
                                  network_size=(10, 10))
    assert out.shape == (0, 5)


def test_filters_clip_side_remap_rescale_diag():
    label_map = {0: "pedestrian", 1: "car", 2: "bus"}
    names, lookup = resolve_classes(label_map, ("car", "pedestrian"))
    assert names == ("car", "pedestrian") and lookup == {1: 0, 0: 1}
    boxes = make_boxes([(1, -10, 5, 30, 20, 1, 0),   # clipped to x 0..20 -> kept, car
                        (1, 50, 50, 2, 40, 0, 1),    # side 2 <= 2 -> dropped
                        (1, 10, 10, 20, 20, 2, 2),   # bus not selected -> dropped
                        (1, 90, 90, 20, 20, 0, 3),   # clipped to 90..100 -> kept, pedestrian
                        (1, 0, 0, 4, 90, 1, 4)])     # thin: dropped by the diagonal rule only
    kw = dict(sensor_size=(100, 100), class_lookup=lookup, network_size=(50, 200))
    out = filter_boxes_to_targets(boxes, **kw)
    np.testing.assert_allclose(out[:2], [[0, 2.5, 40, 12.5, 0], [180, 45, 200, 50, 1]])
    assert out.shape == (3, 5) and out.dtype == np.float32
    out = filter_boxes_to_targets(boxes, **kw, min_box_diag_network=30)
    assert out.shape == (1, 5) and out[0, 4] == 0
    assert filter_boxes_to_targets(boxes, **kw, min_box_side=5).shape == (2, 5)


def test_unknown_class_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"'truck'.*valid names: \['car', 'pedestrian'\]"):
        resolve_classes({0: "car", 1: "pedestrian"}, ("car", "truck"), "x/label_map_dictionary.json")


def test_interpolation_matches_simulator_boxes_at_bin_ends():
    """Simulator (no stops, no ego-motion: objects move linearly) labelled every 10 ms; keep the 50 ms
    instants, interpolate to 10 ms bin ends, compare with the simulator's own boxes there."""
    from evdet.simulation.config import SceneConfig, SimulationConfig
    from evdet.simulation.recording import simulate_recording

    cfg = SimulationConfig(scene=SceneConfig(stop_rate_hz=0.0, ego_motion_prob=0.0, height=120, width=152),
                           duration_us=1_000_000, label_period_us=10_000, label_start_us=10_000)
    _, boxes = simulate_recording(cfg, 3)
    sparse = boxes[boxes["t"] % 50_000 == 0]
    assert has_real_track_ids(sparse) and detect_label_period(sparse) == 50_000
    per_bin, labeled = assign_boxes_to_bins(sparse, 0, 10_000, 100, interpolate=True, max_interp_gap=100_000)
    errors = []
    for k, got in enumerate(per_bin):
        exact = boxes[boxes["t"] == (k + 1) * 10_000]
        for row in got:
            match = exact[exact["track_id"] == row["track_id"]]
            if match.size:
                errors.append(max(abs(float(row[f]) - float(match[0][f])) for f in "xywh"))
    last = int(sparse["t"].max()) // 10_000  # bins between the first and last 50 ms instants: labelled
    assert labeled[4:last].all()
    assert len(errors) > 100
    assert np.median(errors) < 1e-3 and max(errors) < 0.25  # exact up to frame-edge clipping
