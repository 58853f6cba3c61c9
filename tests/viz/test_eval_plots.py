import cv2
import numpy as np
import pytest

from evdet.evaluation import evaluate_recordings
from evdet.io.dtypes import BBOX_DTYPE
from evdet.viz.eval_plots import draw_pr_curves, evaluation_figure, per_class_ap, save_evaluation_figure


def _boxes(n, cls, t0=600_000):
    b = np.zeros(n, BBOX_DTYPE)
    b["t"] = t0 + 100_000 * np.arange(n)
    b["x"], b["y"], b["w"], b["h"] = 20.0, 30.0, 40.0, 40.0
    b["class_id"] = cls
    b["class_confidence"] = 0.9
    return b


def test_per_class_ap_perfect_class_and_missed_class():
    gt = np.concatenate([_boxes(5, 0), _boxes(5, 1)])
    gt = gt[np.argsort(gt["t"], kind="stable")]
    dt = _boxes(5, 0)  # class 1 never detected
    result = evaluate_recordings([gt], [dt], ["car", "pedestrian", "bus"], 240, 304, 50_000, "evdet")
    ap = per_class_ap(result)
    assert ap["car"] == pytest.approx((1.0, 1.0), abs=1e-6)
    assert ap["pedestrian"] == pytest.approx((0.0, 0.0), abs=1e-6)
    assert ap["bus"] == (-1.0, -1.0)  # no ground truth: undefined, drawn as n/a
    img = evaluation_figure(result)
    assert img.shape[0] == 480 and img.shape[1] > 640 + 400 and img.dtype == np.uint8


def test_draw_puts_curve_pixels_in_plot_area():
    img = draw_pr_curves({"a": np.linspace(1, 0, 101)}, size=(300, 400))
    assert img.shape == (300, 400, 3) and img.dtype == np.uint8
    # the curve colour (BGR of the first palette entry) appears
    assert np.any(np.all(img == (180, 119, 31), axis=-1))
    with pytest.raises(ValueError, match="too small"):
        draw_pr_curves({"a": np.ones(101)}, size=(60, 60))


def test_evaluation_figure_png_is_written(tmp_path):
    gt = _boxes(3, 0)
    result = evaluate_recordings([gt], [gt], ["car"], 240, 304, 50_000, "evdet")
    path = save_evaluation_figure(result, tmp_path / "pr.png")
    img = cv2.imread(str(path))
    assert img.shape[0] == 480 and (img != 255).any()
