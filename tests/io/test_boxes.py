"""Tests of evdet.io.boxes: label files, validation and naming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evdet.io.boxes import label_path_for, load_boxes, recording_stem, save_boxes
from evdet.io.dtypes import BBOX_DTYPE


def _boxes(n=5):
    b = np.zeros(n, dtype=BBOX_DTYPE)
    b["t"] = np.arange(n) * 1000
    b["x"], b["y"], b["w"], b["h"] = 1.0, 2.0, 10.0, 20.0
    b["class_id"] = np.arange(n) % 2
    b["track_id"] = np.arange(n)
    b["class_confidence"] = 1.0
    return b


@pytest.mark.parametrize("name, stem", [("a/foo_td.dat", "foo"), ("foo.dat", "foo"), ("foo.raw", "foo"),
                                        ("foo.h5", "foo"), ("foo.hdf5", "foo"), ("foo.txt", "foo")])
def test_recording_stem_and_label_path(name, stem):
    assert recording_stem(name) == stem
    assert label_path_for(name) == Path(name).with_name(stem + "_bbox.npy")


def test_save_load_roundtrip(tmp_path):
    boxes = _boxes()
    path = tmp_path / "rec_bbox.npy"
    save_boxes(path, boxes)
    assert [p.name for p in tmp_path.iterdir()] == ["rec_bbox.npy"]  # no temporary left
    out = load_boxes(path)
    assert out.dtype == BBOX_DTYPE
    np.testing.assert_array_equal(out, boxes)


def test_load_legacy_fields(tmp_path):
    legacy = np.zeros(3, dtype=[("ts", "<u8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"),
                                ("class_id", "<u1"), ("confidence", "<f4"), ("track_id", "<u4")])
    legacy["ts"] = [5, 6, 7]
    legacy["w"] = legacy["h"] = 3
    legacy["confidence"] = 0.25
    np.save(tmp_path / "l_bbox.npy", legacy)
    out = load_boxes(tmp_path / "l_bbox.npy")
    assert out["t"].tolist() == [5, 6, 7]
    assert np.allclose(out["class_confidence"], 0.25)


def test_unsorted_boxes_are_sorted_with_warning(tmp_path):
    boxes = _boxes()[::-1]
    np.save(tmp_path / "u_bbox.npy", boxes)
    with pytest.warns(UserWarning, match="not sorted"):
        out = load_boxes(tmp_path / "u_bbox.npy")
    assert out["t"].tolist() == sorted(boxes["t"].tolist())


@pytest.mark.parametrize("field, value, pattern", [("w", np.nan, "box 2 has w = nan"),
                                                    ("h", -3.0, "box 2 has h = -3.0"),
                                                    ("x", np.inf, "box 2 has x = inf")])
def test_bad_sizes_raise(tmp_path, field, value, pattern):
    boxes = _boxes()
    boxes[field][2] = value
    np.save(tmp_path / "b_bbox.npy", boxes)
    with pytest.raises(ValueError, match=f"b_bbox.npy: {pattern}"):
        load_boxes(tmp_path / "b_bbox.npy")


@pytest.mark.parametrize("dtype, field, value, pattern", [
    ("f8", "t", np.nan, "box 2 has t = nan, which a int64 field cannot hold"),
    ("f8", "t", 1500.5, "box 2 has t = 1500.5, which a int64 field cannot hold"),
    ("i4", "class_id", -1, "box 2 has class_id = -1, which a uint32 field cannot hold"),
    ("i8", "track_id", 2**40, "box 2 has track_id = 1099511627776, which a uint32 field cannot hold"),
])
def test_values_their_field_cannot_hold_are_errors_naming_the_box(tmp_path, dtype, field, value, pattern):
    # a cast would turn them silently into -2^63, 1500, 4294967295, 0
    fields = [(name, dtype if name == field else BBOX_DTYPE[name]) for name in BBOX_DTYPE.names]
    boxes = _boxes().astype(fields)
    boxes[field][2] = value
    np.save(tmp_path / "b_bbox.npy", boxes)
    with pytest.raises(ValueError, match=f"labels in .*b_bbox.npy: {pattern}"):
        load_boxes(tmp_path / "b_bbox.npy")


def test_nan_confidence_is_an_error(tmp_path):
    boxes = _boxes()
    boxes["class_confidence"][3] = np.nan
    np.save(tmp_path / "b_bbox.npy", boxes)
    with pytest.raises(ValueError, match="b_bbox.npy: box 3 has class_confidence = nan"):
        load_boxes(tmp_path / "b_bbox.npy")


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="none_bbox.npy"):
        load_boxes(tmp_path / "none_bbox.npy")
    np.save(tmp_path / "p_bbox.npy", np.zeros(3))
    with pytest.raises(ValueError, match="expected a structured array"):
        load_boxes(tmp_path / "p_bbox.npy")
    np.save(tmp_path / "m_bbox.npy", np.zeros(2, dtype=[("t", "i8"), ("x", "f4")]))
    with pytest.raises(ValueError, match="m_bbox.npy: box field 'y' is missing"):
        load_boxes(tmp_path / "m_bbox.npy")
    (tmp_path / "t_bbox.npy").write_text("not numpy")
    with pytest.raises(ValueError, match="not a numpy"):
        load_boxes(tmp_path / "t_bbox.npy")
    (tmp_path / "z_bbox.npy").write_bytes(b"")
    with pytest.raises(ValueError, match="labels in .*z_bbox.npy: an empty file"):
        load_boxes(tmp_path / "z_bbox.npy")
    (tmp_path / "d_bbox.npy").mkdir()
    with pytest.raises(ValueError, match="label file .*d_bbox.npy is a folder, not a regular file"):
        load_boxes(tmp_path / "d_bbox.npy")


def test_empty_boxes(tmp_path):
    save_boxes(tmp_path / "e_bbox.npy", np.zeros(0, dtype=BBOX_DTYPE))
    out = load_boxes(tmp_path / "e_bbox.npy")
    assert out.size == 0 and out.dtype == BBOX_DTYPE
