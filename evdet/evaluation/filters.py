"""Box filter of the published event-camera detection protocol (SPEC 6)."""

from __future__ import annotations

import numpy as np

from evdet.io.dtypes import as_boxes


def filter_boxes(boxes: np.ndarray, skip_ts: int = 500_000, min_box_diag: float = 60.0,
                 min_box_side: float = 20.0) -> np.ndarray:
    """Keep the boxes that the protocol scores (applied to ground truth and detections alike).

    A box is kept when ``t > skip_ts`` (µs, strictly after) and ``w² + h² ≥ min_box_diag²`` and
    ``w ≥ min_box_side`` and ``h ≥ min_box_side`` (pixels). Sizes are squared and summed in float32, as
    the published evaluator does on the float32 label fields.

    Args:
        boxes: 1-D ``BBOX_DTYPE`` array (other box dtypes are converted by field name).
        skip_ts: boxes at ``t ≤ skip_ts`` µs are dropped (the start of every recording).
        min_box_diag: minimum diagonal in pixels.
        min_box_side: minimum width and height in pixels.

    Returns:
        A new ``BBOX_DTYPE`` array with the kept boxes, in input order. The input is not modified.

    Raises:
        TypeError: ``boxes`` is not a structured array.
        ValueError: a threshold is negative or not finite.
    """
    for name, value in (("skip_ts", skip_ts), ("min_box_diag", min_box_diag), ("min_box_side", min_box_side)):
        if not np.isfinite(value):
            raise ValueError(f"filter_boxes: {name} = {value} is not finite")
    for name, value in (("min_box_diag", min_box_diag), ("min_box_side", min_box_side)):
        if value < 0:
            raise ValueError(f"filter_boxes: {name} = {value} must be >= 0")
    boxes = as_boxes(np.asarray(boxes).reshape(-1), source="filter_boxes")
    w = boxes["w"].astype(np.float32, copy=False)
    h = boxes["h"].astype(np.float32, copy=False)
    diag_sq = w * w + h * h  # float32, as in the published evaluator
    keep = ((boxes["t"] > skip_ts) & (diag_sq >= np.float64(min_box_diag) ** 2)
            & (w >= min_box_side) & (h >= min_box_side))
    return boxes[keep].copy()
