"""Precision–recall curves of a COCO evaluation, drawn with OpenCV to a PNG."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from evdet.evaluation.coco import CocoEvaluation
from evdet.evaluation.engine import IOU_THRS, REC_THRS

_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # RGB


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


def draw_pr_curves(curves: dict[str, np.ndarray], size: tuple[int, int] = (480, 640),
                   title: str = "precision-recall") -> np.ndarray:
    """Render curves (name -> precision ``[R]`` at ``REC_THRS``) as a BGR uint8 image ``[H, W, 3]``.

    ``size`` is ``(height, width)`` in pixels.
    """
    height, width = size
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 60, 20, 40, 50
    pw, ph = width - left - right, height - top - bottom
    if pw < 50 or ph < 50:
        raise ValueError(f"plot size {size} (height, width) is too small")

    def to_px(r: np.ndarray, p: np.ndarray) -> np.ndarray:
        return np.stack([left + r * pw, top + (1 - p) * ph], axis=1).round().astype(np.int32)

    font = cv2.FONT_HERSHEY_SIMPLEX
    for v in np.linspace(0, 1, 6):
        x, y = int(round(left + v * pw)), int(round(top + (1 - v) * ph))
        cv2.line(img, (x, top), (x, top + ph), (225, 225, 225), 1)
        cv2.line(img, (left, y), (left + pw, y), (225, 225, 225), 1)
        cv2.putText(img, f"{v:.1f}", (x - 10, top + ph + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{v:.1f}", (left - 30, y + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (left + pw, top + ph), (0, 0, 0), 1)
    cv2.putText(img, "recall", (left + pw // 2 - 20, height - 12), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "precision", (5, top - 10), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, title, (left + 80, top - 14), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (name, prec) in enumerate(curves.items()):
        r, g, b = _COLORS[i % len(_COLORS)]
        pts = to_px(REC_THRS, np.clip(prec, 0, 1))
        cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, (b, g, r), 2, cv2.LINE_AA)
        ly = top + 15 + 18 * i
        cv2.line(img, (left + pw - 150, ly), (left + pw - 125, ly), (b, g, r), 2)
        cv2.putText(img, f"{name} (AP {float(np.mean(prec)):.3f})", (left + pw - 120, ly + 4), font, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return img


def save_pr_plot(result: CocoEvaluation, path: str | os.PathLike, iou: float = 0.5,
                 size: tuple[int, int] = (480, 640)) -> Path:
    """Draw the per-class precision–recall curves at IoU ``iou`` and write them to ``path`` (PNG).

    Raises:
        ValueError: ``iou`` is not a COCO threshold; OSError: the file cannot be written.
    """
    path = Path(path)
    img = draw_pr_curves(pr_curves(result, iou), size, title=f"precision-recall @ IoU {iou:.2f}")
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write the precision-recall plot to {path}")
    return path
