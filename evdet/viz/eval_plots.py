"""The figure of ``evdet-eval --pr-plot``: precision–recall curves at IoU 0.5 | per-class AP bars."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from evdet.evaluation.coco import CocoEvaluation
from evdet.evaluation.pr_curve import draw_pr_curves, pr_curves
from evdet.viz.plots import bar_chart, save_png

__all__ = ["evaluation_figure", "per_class_ap", "save_evaluation_figure"]


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
