import cv2
import numpy as np
import pytest

from evdet.evaluation import evaluate_recordings
from evdet.evaluation.pr_curve import draw_pr_curves, pr_curves, save_pr_plot
from evdet.io import BBOX_DTYPE


def _result():
    gt = np.zeros(2, BBOX_DTYPE)
    gt["x"], gt["w"], gt["h"], gt["class_id"] = [0, 100], 40, 40, [0, 0]
    dt = gt.copy()
    dt["class_confidence"] = [0.9, 0.8]
    return evaluate_recordings([gt], [dt], ["car", "pedestrian"], 240, 304)


def test_curves_skip_classes_without_ground_truth_and_png_is_written(tmp_path):
    res = _result()
    curves = pr_curves(res)
    assert list(curves) == ["car"] and curves["car"].shape == (101,)
    assert np.allclose(curves["car"], 1.0)
    path = save_pr_plot(res, tmp_path / "pr.png")
    img = cv2.imread(str(path))
    assert img.shape == (480, 640, 3) and (img != 255).any()
    with pytest.raises(ValueError, match="COCO thresholds"):
        pr_curves(res, iou=0.42)


def test_draw_puts_curve_pixels_in_plot_area():
    img = draw_pr_curves({"a": np.linspace(1, 0, 101)}, size=(300, 400))
    assert img.shape == (300, 400, 3) and img.dtype == np.uint8
    # the curve colour (BGR of the first palette entry) appears
    assert np.any(np.all(img == (180, 119, 31), axis=-1))
