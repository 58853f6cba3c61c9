"""The published COCO evaluation protocols for event-camera detection (SPEC 6; RVT's, SPEC 2.8)."""

from evdet.evaluation.accumulator import DetectionAccumulator
from evdet.evaluation.coco import (
    METRIC_NAMES,
    CocoEvaluation,
    PooledImages,
    evaluate_detection,
    evaluate_pooled,
    evaluate_recordings,
    pool_by_time,
)
from evdet.evaluation.detections import boxes_to_bbox_array
from evdet.evaluation.filters import filter_boxes
from evdet.evaluation.presets import AUTO_SKIP_TS, PRESETS, EvalPreset, eval_preset_for, get_preset
from evdet.evaluation.protocol import evaluate_with_preset, prepare_boxes
from evdet.evaluation.report import format_metrics

__all__ = [
    "AUTO_SKIP_TS", "METRIC_NAMES", "PRESETS", "CocoEvaluation", "DetectionAccumulator", "EvalPreset",
    "PooledImages", "boxes_to_bbox_array", "eval_preset_for", "evaluate_detection", "evaluate_pooled",
    "evaluate_recordings", "evaluate_with_preset", "filter_boxes", "format_metrics", "get_preset",
    "pool_by_time", "prepare_boxes",
]
