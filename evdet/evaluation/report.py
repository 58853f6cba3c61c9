"""Plain-text table of COCO metrics."""

from __future__ import annotations

from collections.abc import Mapping

from evdet.evaluation.coco import METRIC_NAMES

_DESCRIPTIONS = {
    "AP": "AP    @[IoU=0.50:0.95 | area=all    | maxDets=100]",
    "AP50": "AP    @[IoU=0.50      | area=all    | maxDets=100]",
    "AP75": "AP    @[IoU=0.75      | area=all    | maxDets=100]",
    "AP_S": "AP    @[IoU=0.50:0.95 | area=small  | maxDets=100]",
    "AP_M": "AP    @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "AP_L": "AP    @[IoU=0.50:0.95 | area=large  | maxDets=100]",
    "AR_1": "AR    @[IoU=0.50:0.95 | area=all    | maxDets=  1]",
    "AR_10": "AR    @[IoU=0.50:0.95 | area=all    | maxDets= 10]",
    "AR_100": "AR    @[IoU=0.50:0.95 | area=all    | maxDets=100]",
    "AR_S": "AR    @[IoU=0.50:0.95 | area=small  | maxDets=100]",
    "AR_M": "AR    @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "AR_L": "AR    @[IoU=0.50:0.95 | area=large  | maxDets=100]",
}


def format_metrics(metrics: Mapping[str, float], title: str | None = None) -> str:
    """Format the dict of ``evaluate_detection`` as an aligned text table.

    The 12 COCO numbers come first (with their COCO description), then per-class AP (keys ``AP_<class>``);
    other keys are listed last. Undefined values (−1) are shown as ``n/a``.
    """
    def fmt(v: float) -> str:
        return "   n/a" if v < 0 else f"{v:6.4f}"

    lines = [title] if title else []
    lines.append(f"{'metric':<8} {'value':>6}  description")
    for name in METRIC_NAMES:
        if name in metrics:
            lines.append(f"{name:<8} {fmt(metrics[name])}  {_DESCRIPTIONS[name]}")
    per_class = [k for k in metrics if k.startswith("AP_") and k not in METRIC_NAMES]
    if per_class:
        lines.append("per-class AP @[IoU=0.50:0.95 | area=all | maxDets=100]")
        width = max(len(k) - 3 for k in per_class)
        for k in per_class:
            lines.append(f"  {k[3:]:<{width}} {fmt(metrics[k])}")
    rest = [k for k in metrics if k not in METRIC_NAMES and k not in per_class]
    for k in rest:
        lines.append(f"{k:<8} {metrics[k]}")
    return "\n".join(lines)
