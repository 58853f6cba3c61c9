"""The figure of ``evdet-eval --pr-plot``: precision–recall curves at IoU 0.5 | per-class AP bars."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from evdet.evaluation.coco import CocoEvaluation
from evdet.evaluation.engine import REC_THRS
from evdet.evaluation.pr_curve import pr_curves
from evdet.viz.draw import cv2_text
from evdet.viz.plots import bar_chart, save_png

__all__ = ["draw_pr_curves", "evaluation_figure", "per_class_ap", "save_evaluation_figure"]

_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # RGB


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
        label = cv2_text(f"{name} (AP {float(np.mean(prec)):.3f})")
        cv2.putText(img, label, (left + pw - 120, ly + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def per_class_ap(result: CocoEvaluation) -> dict[str, tuple[float, float]]:
    """``{class name: (AP, AP50)}``; −1 where a class has no ground truth (COCO's "undefined")."""
    metrics = result.metrics()
    curves = pr_curves(result, 0.5)
    return {name: (float(metrics.get(f"AP_{name}", -1.0)),
                   float(np.mean(curves[name])) if name in curves else -1.0) for name in result.class_names}


def evaluation_figure(result: CocoEvaluation, height: int = 480) -> np.ndarray:
    """Per-class precision–recall curves at IoU 0.5 (left) and per-class AP @[.5:.95] and AP50 bars
    (right), as one BGR ``uint8`` image."""
    pr = draw_pr_curves(pr_curves(result, 0.5), (height, 640), title="precision-recall @ IoU 0.50")
    ap = per_class_ap(result)
    names = list(ap)
    series = {"AP @[.5:.95]": [v[0] for v in ap.values()], "AP50": [v[1] for v in ap.values()]}
    bars = bar_chart(names, series,
                     title="per-class AP", ylabel="AP", size=(height, max(420, 110 * len(names) + 120)),
                     y_range=(0.0, 1.0))
    return np.concatenate([pr, bars], axis=1)


def save_evaluation_figure(result: CocoEvaluation, path: str | os.PathLike) -> Path:
    """Write :func:`evaluation_figure` to ``path`` (PNG, atomically)."""
    return save_png(evaluation_figure(result), path)
