"""Tests of evdet.io.dtypes: layouts of SPEC 2.1/2.4 and conversion by field name."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from evdet.io.dtypes import BBOX_DTYPE, EVENT_DTYPE, as_boxes, as_events, concatenate_events, empty_events


def test_event_dtype_layout():
    assert EVENT_DTYPE.itemsize == 16
    assert EVENT_DTYPE.names == ("x", "y", "p", "t")
    assert [EVENT_DTYPE.fields[n][1] for n in EVENT_DTYPE.names] == [0, 2, 4, 8]
    formats = [np.dtype(f) for f in ("<u2", "<u2", "<i2", "<i8")]
    assert [EVENT_DTYPE.fields[n][0] for n in EVENT_DTYPE.names] == formats


def test_bbox_dtype_layout():
    assert BBOX_DTYPE.itemsize == 40
    assert BBOX_DTYPE.names == ("t", "x", "y", "w", "h", "class_id", "track_id", "class_confidence")
    assert [BBOX_DTYPE.fields[n][1] for n in BBOX_DTYPE.names] == [0, 8, 12, 16, 20, 24, 28, 32]


def test_as_events_converts_other_layout():
    other = np.array([(5, 1, 2, True), (7, 3, 4, False)],
                     dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "?")])
    out = as_events(other)
    assert out.dtype == EVENT_DTYPE
    assert out["t"].tolist() == [5, 7] and out["x"].tolist() == [1, 3] and out["p"].tolist() == [1, 0]
    same = np.zeros(3, dtype=EVENT_DTYPE)
    assert as_events(same) is same


def test_as_events_errors():
    with pytest.raises(TypeError, match="src: expected a structured array"):
        as_events(np.zeros(3), source="src")
    with pytest.raises(ValueError, match=r"src: events lack field\(s\) \['p'\]"):
        as_events(np.zeros(2, dtype=[("x", "u2"), ("y", "u2"), ("t", "i8")]), source="src")


def test_as_boxes_legacy_names_and_defaults():
    legacy = np.array([(10, 1.0, 2.0, 3.0, 4.0, 1, 0.5)], dtype=[
        ("ts", "<u8"), ("x", "<f8"), ("y", "<f8"), ("w", "<f8"), ("h", "<f8"), ("class_id", "<u1"),
        ("confidence", "<f8")])
    out = as_boxes(legacy)
    assert out.dtype == BBOX_DTYPE
    assert out["t"][0] == 10 and out["class_confidence"][0] == pytest.approx(0.5)
    assert out["track_id"].tolist() == [0]
    minimal = np.zeros(3, dtype=[("t", "i8"), ("x", "f4"), ("y", "f4"), ("w", "f4"), ("h", "f4"),
                                 ("class_id", "u4")])
    out = as_boxes(minimal)
    assert out["track_id"].tolist() == [0, 1, 2] and out["class_confidence"].tolist() == [1.0, 1.0, 1.0]


def test_as_boxes_missing_field():
    with pytest.raises(ValueError, match="lbl: box field 'class_id' is missing"):
        as_boxes(np.zeros(1, dtype=[("t", "i8"), ("x", "f4"), ("y", "f4"), ("w", "f4"), ("h", "f4")]), "lbl")
    with pytest.raises(TypeError):
        as_boxes(np.zeros(2), "lbl")


def test_concatenate_events_keeps_layout():
    a = np.zeros(3, dtype=EVENT_DTYPE)
    a["t"] = [1, 2, 3]
    b = np.zeros(2, dtype=EVENT_DTYPE)
    b["x"] = [7, 8]
    out = concatenate_events([a, b, a[:0]])
    assert out.dtype == EVENT_DTYPE and out.size == 5
    assert out["t"].tolist() == [1, 2, 3, 0, 0] and out["x"].tolist() == [0, 0, 0, 7, 8]
    assert concatenate_events([a]) is a


@pytest.mark.parametrize("spent", [False, True])  # before / after the anonymous maps' budget
@pytest.mark.parametrize("n", [0, 5, (1 << 24) // 16 + 3])  # numpy's allocator / an anonymous memory map
def test_empty_events_is_a_writable_event_array_of_any_size(monkeypatch, n, spent):
    from evdet.io import dtypes

    monkeypatch.setattr(dtypes, "_mapped_bytes", dtypes.MAPPED_BUDGET_BYTES if spent else 0)
    out = empty_events(n)
    assert out.flags.owndata == (spent or n * 16 < dtypes.MAPPED_MIN_BYTES)
    assert out.dtype == EVENT_DTYPE and out.shape == (n,) and out.flags.writeable and out.flags.c_contiguous
    out["t"] = np.arange(n)
    out["x"] = 7
    assert int(out["t"].sum()) == n * (n - 1) // 2 and (out["x"] == 7).all()
    view = out[1:]
    del out
    view["p"] = 1  # a view keeps the memory alive
    assert (view["p"] == 1).all() and view.shape == (max(n - 1, 0),)
    restored = pickle.loads(pickle.dumps(view))
    np.testing.assert_array_equal(restored, view)
