import cv2
import numpy as np
import pytest

from evdet.viz.plots import (
    PALETTE_BGR,
    bar_chart,
    histogram_chart,
    line_chart,
    save_png,
    training_curves_image,
)


def _has(img, color):
    return (img == np.asarray(color, np.uint8)).all(axis=2)


def test_line_chart_draws_each_series_in_its_colour():
    img = line_chart({"a": ([0, 1, 2], [0.1, 0.5, 0.3]), "b": ([0, 2], [0.9, 0.8])}, title="t",
                     size=(300, 400))
    assert img.shape == (300, 400, 3) and img.dtype == np.uint8
    assert _has(img, PALETTE_BGR[0]).sum() > 50 and _has(img, PALETTE_BGR[1]).sum() > 50
    with pytest.raises(ValueError, match="too small"):
        line_chart({"a": ([0], [1])}, size=(50, 50))


def test_bar_heights_follow_values():
    img = bar_chart(["car", "ped"], {"AP": [0.8, 0.2]}, y_range=(0.0, 1.0), size=(300, 400))
    bars = _has(img, PALETTE_BGR[0])
    cols = np.flatnonzero(bars.any(axis=0))
    left, right = cols[cols < 200], cols[cols >= 200]
    h_left = bars[:, left].any(axis=1).sum()
    h_right = bars[:, right].any(axis=1).sum()
    assert h_left == pytest.approx(4 * h_right, rel=0.1)


def test_histogram_and_training_curves_and_atomic_png(tmp_path):
    rng = np.random.default_rng(0)
    hist = histogram_chart({"w": rng.uniform(4, 60, 100)}, np.geomspace(2, 128, 13), log_x=True,
                           vlines={"anchor 16": 16.0})
    assert hist.shape == (360, 560, 3) and _has(hist, PALETTE_BGR[0]).any()
    img = training_curves_image(([0.5, 1.0, 1.5, 2.0], [3.0, 2.0, 1.5, 1.2]), ([1, 2], [2.5, 1.35]),
                                {"AP": ([1, 2], [0.1, 0.2]), "AP50": ([1, 2], [0.3, 0.5])})
    assert img.shape == (360, 1120, 3)
    path = save_png(img, tmp_path / "c.png")
    np.testing.assert_array_equal(cv2.imread(str(path)), img)
    assert [p.name for p in tmp_path.iterdir()] == ["c.png"]
