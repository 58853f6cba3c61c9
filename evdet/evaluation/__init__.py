"""The published COCO evaluation protocols for event-camera detection (SPEC 6; RVT's, SPEC 2.8)."""

from evdet._lazy import lazy_exports

# public name -> submodule defining it; imported on first use (evdet._lazy), so that light
# submodules and `--help` of the commands load no heavy dependency
_EXPORTS = {
    "DetectionAccumulator": "accumulator",
    "CocoEvaluation": "coco",
    "METRIC_NAMES": "coco",
    "PooledImages": "coco",
    "evaluate_detection": "coco",
    "evaluate_pooled": "coco",
    "evaluate_recordings": "coco",
    "pool_by_time": "coco",
    "boxes_to_bbox_array": "detections",
    "filter_boxes": "filters",
    "AUTO_SKIP_TS": "presets",
    "EvalPreset": "presets",
    "PRESETS": "presets",
    "eval_preset_for": "presets",
    "get_preset": "presets",
    "evaluate_with_preset": "protocol",
    "prepare_boxes": "protocol",
    "format_metrics": "report",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
