"""Precision–recall curves of a COCO evaluation (numbers; :mod:`evdet.viz.eval_plots` draws them)."""

from __future__ import annotations

import numpy as np

from evdet.evaluation.coco import CocoEvaluation
from evdet.evaluation.engine import IOU_THRS


def pr_curves(result: CocoEvaluation, iou: float = 0.5) -> dict[str, np.ndarray]:
    """Interpolated precision ``[R=101]`` at recall 0:0.01:1 per class (area all, 100 detections).

    Classes without ground truth are left out. Raises ValueError if ``iou`` is not a COCO threshold.
    """
    t = np.flatnonzero(np.isclose(IOU_THRS, iou))
    if t.size == 0:
        raise ValueError(f"iou = {iou} is not one of the COCO thresholds {IOU_THRS.round(2).tolist()}")
    out = {}
    for k, name in enumerate(result.class_names):
        p = result.precision[t[0], :, k, 0, -1]
        if np.all(p > -1):
            out[name] = p.copy()
    return out
