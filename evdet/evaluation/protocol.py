"""A preset applied end to end: box scale, box filter, time pooling, COCO, and RVT's all-zero result without
detections. The one path used by ``DetectionAccumulator`` (training validation) and ``evdet-eval``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from evdet.evaluation.coco import CocoEvaluation, evaluate_recordings
from evdet.evaluation.filters import filter_boxes
from evdet.evaluation.presets import EvalPreset
from evdet.io.dtypes import as_boxes


def prepare_boxes(boxes: np.ndarray, preset: EvalPreset) -> np.ndarray:
    """The boxes a preset scores: ``x, y, w, h`` (sensor pixels) times ``preset.box_scale`` (in float32), then
    :func:`filter_boxes` with the preset's ``skip_ts``, ``min_box_diag``, ``min_box_side``. A new array."""
    boxes = as_boxes(np.asarray(boxes).reshape(-1), source="prepare_boxes")
    if preset.box_scale != 1.0:
        boxes = boxes.copy()
        scale = np.float32(preset.box_scale)
        for f in ("x", "y", "w", "h"):
            boxes[f] *= scale
    return filter_boxes(boxes, preset.skip_ts, preset.min_box_diag, preset.min_box_side)


def evaluate_with_preset(gt_boxes_list: Sequence[np.ndarray], dt_boxes_list: Sequence[np.ndarray],
                         classes: Sequence[str] | Mapping[int, str], preset: EvalPreset,
                         engine: str = "evdet") -> CocoEvaluation:
    """Score recordings under ``preset``: :func:`prepare_boxes` on ground truth and detections alike, images
    pooled with ``preset.time_tol`` at ``preset.height × preset.width``; with
    ``preset.zero_without_detections`` a result without any pooled detection is all zeros (RVT).

    Args:
        gt_boxes_list, dt_boxes_list: per recording, ``BBOX_DTYPE`` in sensor pixels (same order).
        classes: names by ``class_id`` (category ``class_id + 1``). engine: see ``evaluate_detection``.
    Raises:
        ValueError / TypeError: as ``evaluate_recordings``.
    """
    gts = [prepare_boxes(g, preset) for g in gt_boxes_list]
    dts = [prepare_boxes(d, preset) for d in dt_boxes_list]
    result = evaluate_recordings(gts, dts, classes, preset.height, preset.width, preset.time_tol, engine)
    if preset.zero_without_detections and result.num_dt == 0:
        result = replace(result, stats=np.zeros_like(result.stats), precision=np.zeros_like(result.precision),
                         recall=np.zeros_like(result.recall))
    return result
