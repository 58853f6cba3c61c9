import numpy as np
import pytest

from evdet.evaluation import evaluate_recordings
from evdet.evaluation.pr_curve import pr_curves
from evdet.io import BBOX_DTYPE


def _result():
    gt = np.zeros(2, BBOX_DTYPE)
    gt["x"], gt["w"], gt["h"], gt["class_id"] = [0, 100], 40, 40, [0, 0]
    dt = gt.copy()
    dt["class_confidence"] = [0.9, 0.8]
    return evaluate_recordings([gt], [dt], ["car", "pedestrian"], 240, 304)


def test_curves_skip_classes_without_ground_truth():
    res = _result()
    curves = pr_curves(res)
    assert list(curves) == ["car"] and curves["car"].shape == (101,)
    assert np.allclose(curves["car"], 1.0)
    with pytest.raises(ValueError, match="COCO thresholds"):
        pr_curves(res, iou=0.42)
