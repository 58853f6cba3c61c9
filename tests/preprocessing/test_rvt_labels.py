"""RVT's label filters, label-frame selection and representation end times, on hand-built labels."""

from __future__ import annotations

import numpy as np
import pytest
from rvt_fixtures import (
    GEN1_BOXES,
    GEN1_FRAMES,
    GEN1_KEPT_TRAIN,
    GEN1_LABEL_TIMES,
    LEGACY_LABEL_DTYPE,
    MPX_LABEL_DTYPE,
    expected_frames,
    expected_repr_ts,
    gen1_labels,
)

from evdet.preprocessing.rvt_labels import (
    NoLabelsError,
    rename_legacy_fields,
    rvt_filter_labels,
    rvt_frame_to_repr,
    rvt_label_frames,
    rvt_label_period,
    rvt_repr_timestamps,
)


def _boxes(labels):
    return [(float(b["x"]), float(b["y"]), float(b["w"]), float(b["h"]), int(b["class_id"])) for b in labels]


def test_gen1_filters_crop_then_prophesee_then_huge_boxes_in_train_only():
    one = gen1_labels(times=[200_000])
    assert _boxes(rvt_filter_labels(one, "gen1", train=True)) == GEN1_KEPT_TRAIN
    val = _boxes(rvt_filter_labels(one, "gen1", train=False))
    assert val == [*GEN1_KEPT_TRAIN, (10.0, 5.0, 280.0, 40.0, 0)]
    assert rvt_filter_labels(one, "gen1", True).dtype == MPX_LABEL_DTYPE  # the file's dtype is kept
    assert one["x"][0] == -5.0  # input untouched


def test_gen4_keeps_classes_up_to_2_and_sides_of_5():
    lab = np.zeros(5, MPX_LABEL_DTYPE)
    lab["t"] = 1
    lab["x"], lab["y"] = 1270.0, 700.0
    lab["w"], lab["h"] = [5, 5, 5, 20, 4], [5, 5, 5, 30, 10]
    lab["class_id"] = [0, 2, 3, 1, 1]
    # x2 = clip(1275, 0, 1279) = 1275: w 5 kept; y2 = clip(705) = 705; box 3: x2 1279 -> w 9, y2 719 -> h 19
    out = rvt_filter_labels(lab, "gen4", train=True)
    assert _boxes(out) == [(1270.0, 700.0, 5.0, 5.0, 0), (1270.0, 700.0, 5.0, 5.0, 2),
                           (1270.0, 700.0, 9.0, 19.0, 1)]


def test_legacy_field_names_are_renamed_keeping_everything_else():
    legacy = gen1_labels(LEGACY_LABEL_DTYPE, times=[5])
    renamed = rename_legacy_fields(legacy)
    assert renamed.dtype.names == ("t", "x", "y", "w", "h", "class_id", "class_confidence", "track_id")
    assert renamed.dtype.itemsize == legacy.dtype.itemsize and renamed["t"].dtype == np.uint64
    np.testing.assert_array_equal(renamed["t"], legacy["ts"])
    assert rename_legacy_fields(gen1_labels()) is not None


def test_gen1_label_frames_follow_the_4hz_grid_from_the_last_accepted_frame():
    labels = rvt_filter_labels(gen1_labels(), "gen1", train=True)
    frames = rvt_label_frames(labels, "gen1")
    exp_frames, exp_counts = expected_frames(GEN1_LABEL_TIMES, 250_000)
    assert frames.frame_ts.tolist() == exp_frames == GEN1_FRAMES
    assert frames.reprs_between.tolist() == exp_counts == [2, 2, 4, 4]
    # each frame: its kept boxes, in file order; the index of each frame's first box
    assert frames.label_index.tolist() == [0, 2, 4, 6, 8]
    assert np.all(frames.labels["t"] == np.repeat(exp_frames, 2))
    assert frames.labels.dtype == MPX_LABEL_DTYPE


def test_representation_end_times_and_frame_indices():
    frames = rvt_label_frames(rvt_filter_labels(gen1_labels(), "gen1", True), "gen1")
    ts = rvt_repr_timestamps(frames.frame_ts, frames.reprs_between)
    assert ts.dtype == np.int64
    assert ts.tolist() == expected_repr_ts(GEN1_FRAMES, [2, 2, 4, 4])
    assert ts[:4].tolist() == [70_000, 120_000, 245_500, 371_000]  # 20 000 dropped, then 120 000 -> 371 000
    idx = rvt_frame_to_repr(ts, frames.frame_ts)
    assert np.array_equal(ts[idx], frames.frame_ts)
    # a single frame: the grid before it, then the frame itself
    single = rvt_repr_timestamps(np.array([260_000]), np.zeros(0, np.int64)).tolist()
    assert single == [60_000, 110_000, 160_000, 210_000, 260_000] == expected_repr_ts([260_000], [])


def test_linspace_truncates_toward_zero():
    ts = rvt_repr_timestamps(np.array([100_000, 200_003]), np.array([2]))
    assert ts.tolist() == [100_000, 150_001, 200_003]  # 150 001.5 truncated


def test_gen4_period_from_the_median_label_gap():
    t60 = np.cumsum(np.full(30, 16_667))
    assert rvt_label_period(t60, "gen4") == int(6 * 16_667)
    t30 = np.cumsum(np.full(30, 33_333))
    assert rvt_label_period(t30, "gen4") == int(3 * 33_333)
    with pytest.raises(ValueError, match="20 Hz"):
        rvt_label_period(np.cumsum(np.full(30, 50_000)), "gen4", source="x_bbox.npy")
    with pytest.raises(ValueError, match="single label time"):
        rvt_label_period(np.array([5]), "gen4")
    assert rvt_label_period(np.array([5]), "gen1") == 250_000


def test_rvt_failure_cases_name_the_file():
    early = gen1_labels(times=[10_000, 50_000])
    with pytest.raises(ValueError, match=r"rec_bbox\.npy: no label at or after 100000"):
        rvt_label_frames(rvt_filter_labels(early, "gen1", False), "gen1", "rec_bbox.npy")
    close = gen1_labels(times=[200_000, 201_000])
    with pytest.raises(ValueError, match="within 2000"):
        rvt_label_frames(rvt_filter_labels(close, "gen1", False), "gen1", "rec_bbox.npy")
    with pytest.raises(NoLabelsError):
        rvt_label_frames(rvt_filter_labels(gen1_labels(times=[200_000])[[2]], "gen1", False), "gen1")
    with pytest.raises(ValueError, match="unknown RVT dataset"):
        rvt_filter_labels(gen1_labels(), "gen2", True)


def test_boxes_of_rejected_label_times_are_not_written():
    frames = rvt_label_frames(rvt_filter_labels(gen1_labels(), "gen1", False), "gen1")
    assert set(np.unique(frames.labels["t"]).tolist()) == set(GEN1_FRAMES)
    assert len(GEN1_BOXES) == 6
