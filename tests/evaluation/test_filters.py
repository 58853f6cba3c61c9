import numpy as np
import pytest

from evdet.evaluation import filter_boxes
from evdet.io import BBOX_DTYPE


def _boxes(rows):
    b = np.zeros(len(rows), BBOX_DTYPE)
    for i, (t, w, h) in enumerate(rows):
        b[i]["t"], b[i]["w"], b[i]["h"] = t, w, h
    return b


def test_skip_is_strict_and_sizes_inclusive():
    b = _boxes([(500_000, 50, 50), (500_001, 50, 50), (600_000, 18, 24), (600_000, 17.9, 24),
                (600_000, 10, 40), (600_000, 9.99, 40), (600_000, 40, 10), (600_000, 40, 9.99)])
    out = filter_boxes(b, skip_ts=500_000, min_box_diag=30, min_box_side=10)
    # dropped: t == skip_ts, diag 29.9 < 30, w 9.99, h 9.99; kept: diag exactly 30, sides exactly 10
    assert out["t"].tolist() == [500_001, 600_000, 600_000, 600_000]
    assert out["w"].tolist() == [50, 18, 10, 40]


def test_does_not_modify_input_and_keeps_order(rng):
    ts, ws = rng.integers(0, 10**6, 50), rng.uniform(1, 80, 50)
    b = _boxes([(int(t), w, w) for t, w in zip(ts, ws, strict=True)])
    before = b.copy()
    out = filter_boxes(b, 100_000, 30, 10)
    assert np.array_equal(b, before)
    expected = b[(b["t"] > 100_000) & (b["w"] ** 2 + b["h"] ** 2 >= 900) & (b["w"] >= 10)]
    assert np.array_equal(out, expected)


def test_empty_and_legacy_fields():
    assert filter_boxes(np.zeros(0, BBOX_DTYPE), 0, 0, 0).size == 0
    legacy = np.zeros(2, dtype=[("ts", "<u8"), ("x", "<f8"), ("y", "<f8"), ("w", "<f8"), ("h", "<f8"),
                                ("class_id", "<u1"), ("confidence", "<f8"), ("track_id", "<u4")])
    legacy["ts"] = [10, 20]
    legacy["w"] = legacy["h"] = [5, 50]
    out = filter_boxes(legacy, 0, 30, 10)
    assert out.dtype == BBOX_DTYPE and out["t"].tolist() == [20]


def test_bad_thresholds():
    with pytest.raises(ValueError, match="min_box_diag"):
        filter_boxes(np.zeros(0, BBOX_DTYPE), 0, -1, 0)
    with pytest.raises(ValueError, match="skip_ts"):
        filter_boxes(np.zeros(0, BBOX_DTYPE), float("nan"), 0, 0)
