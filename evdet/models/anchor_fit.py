"""How well anchor boxes fit a dataset's boxes (used by ``evdet-info``): the anchors of a configuration,
the best IoU of each box with the anchors placed as the detector places them, and the ``anchor_size``
under which most boxes find an anchor.

Anchors of level ``l`` (base size ``anchor_size · 2^l``, the ``(ratio, scale)`` pairs of the anchor list)
sit at the centres ``(i + 0.5) · stride_l`` of that level's grid (SPEC 5). A box is scored against the
anchors of the grid cell holding its centre on every level (the cell whose anchors overlap it most), so
the numbers are those the matcher sees, including the loss from small boxes on a coarse grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evdet.models.anchors import base_anchors, resolve_anchor_list

__all__ = ["DEFAULT_CANDIDATES", "anchor_shapes", "best_anchor_iou", "fit_anchor_size"]

DEFAULT_CANDIDATES = (4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0)
"""``anchor_size`` values tried by :func:`fit_anchor_size` (network pixels)."""


def anchor_shapes(anchor_size: float, anchor_list: str | Sequence[tuple[float, float]], level: int
                  ) -> np.ndarray:
    """``ndarray[A, 2]`` anchor ``(w, h)`` (network pixels) of one level (base ``anchor_size · 2^level``)."""
    pairs = resolve_anchor_list(anchor_list if isinstance(anchor_list, str) else list(anchor_list))
    xyxy = base_anchors(float(anchor_size) * 2 ** int(level), pairs).numpy().astype(np.float64)  # [A, 4]
    return np.stack([xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]], axis=1)


def best_anchor_iou(boxes_xywh: np.ndarray, anchor_size: float,
                    anchor_list: str | Sequence[tuple[float, float]], strides: Sequence[int]) -> np.ndarray:
    """``ndarray[n]``: for each box (top-left ``x, y, w, h``, network pixels) its best IoU with the anchors
    of the grid cell holding its centre, over every level (``strides``: one per level)."""
    b = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
    best = np.zeros(b.shape[0])
    if b.shape[0] == 0:
        return best
    cx, cy = b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
    for level, stride in enumerate(strides):
        wh = anchor_shapes(anchor_size, anchor_list, level)  # [A, 2]
        ax = (np.floor(cx / stride) + 0.5) * stride  # [n] centre of the box's cell
        ay = (np.floor(cy / stride) + 0.5) * stride
        ix = (np.minimum(b[:, None, 0] + b[:, None, 2], ax[:, None] + wh[None, :, 0] / 2)
              - np.maximum(b[:, None, 0], ax[:, None] - wh[None, :, 0] / 2))  # [n, A]
        iy = (np.minimum(b[:, None, 1] + b[:, None, 3], ay[:, None] + wh[None, :, 1] / 2)
              - np.maximum(b[:, None, 1], ay[:, None] - wh[None, :, 1] / 2))
        inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
        union = b[:, None, 2] * b[:, None, 3] + wh[None, :, 0] * wh[None, :, 1] - inter
        best = np.maximum(best, (inter / np.maximum(union, 1e-12)).max(axis=1))
    return best


def fit_anchor_size(boxes_xywh: np.ndarray, anchor_list: str | Sequence[tuple[float, float]],
                    strides: Sequence[int], iou_threshold: float = 0.5,
                    candidates: Sequence[float] = DEFAULT_CANDIDATES
                    ) -> tuple[float, dict[float, tuple[float, float]]]:
    """The ``anchor_size`` among ``candidates`` under which most boxes have an anchor with IoU ≥
    ``iou_threshold`` (ties: the higher mean best IoU).

    Args:
        boxes_xywh: ``[n, 4]`` boxes (top-left x, y, w, h) in network pixels.
        strides: stride of each feature level (the backbone's ``strides``).

    Returns:
        ``(best, {candidate: (fraction of boxes covered, mean best IoU)})``.

    Raises:
        ValueError: no boxes.
    """
    if np.asarray(boxes_xywh).size == 0:
        raise ValueError("fit_anchor_size: no boxes")
    table = {}
    for size in candidates:
        iou = best_anchor_iou(boxes_xywh, size, anchor_list, strides)
        table[float(size)] = (float(np.mean(iou >= iou_threshold)), float(np.mean(iou)))
    best = max(table, key=lambda s: table[s])
    return best, table
