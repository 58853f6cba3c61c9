"""Network outputs to ``BBOX_DTYPE`` detections at sensor resolution."""

from __future__ import annotations

import numpy as np

from evdet.io.dtypes import BBOX_DTYPE


def _to_numpy(a: object, name: str) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor, without importing torch here
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"boxes_to_bbox_array: {name} is not array-like ({type(a).__name__})") from exc


def boxes_to_bbox_array(xyxy: np.ndarray, class_idx: np.ndarray, t: int | np.ndarray,
                        scores: np.ndarray | None = None,
                        scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Convert detections (or labels) from network xyxy boxes to sensor-pixel ``BBOX_DTYPE`` boxes.

    Args:
        xyxy: ``[n, 4]`` boxes ``(x1, y1, x2, y2)`` in network pixels (numpy or CPU/GPU torch tensor).
        class_idx: ``[n]`` class index (0..C−1), stored as ``class_id``.
        t: timestamp in µs, one for all boxes or ``[n]``.
        scores: ``[n]`` confidences stored as ``class_confidence``; None gives 1.0 (ground truth).
        scale: ``(sy, sx)``: sensor pixels per network pixel, in ``(height, width)`` order (the convention of
            ``evdet.data.VideoInfo.scale``); y and h are multiplied by ``sy``, x and w by ``sx``.

    Returns:
        ``BBOX_DTYPE [n]`` with top-left ``x, y`` and ``w = (x2 − x1)·sx``, ``h = (y2 − y1)·sy``, and
        ``track_id = 0..n−1`` (unique: detections carry no tracks). Not sorted.

    Raises:
        ValueError: wrong shapes, lengths that differ, non-finite coordinates, ``x2 < x1`` or ``y2 < y1``
            (naming the box index and value), non-positive scale, negative class index.
    """
    boxes = _to_numpy(xyxy, "xyxy").astype(np.float64, copy=False)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes_to_bbox_array: xyxy must have shape [n, 4], got {tuple(boxes.shape)}")
    n = boxes.shape[0]
    cls = _to_numpy(class_idx, "class_idx").reshape(-1)
    if cls.shape[0] != n:
        raise ValueError(f"boxes_to_bbox_array: {n} boxes but {cls.shape[0]} class indices")
    if n and np.any(cls < 0):
        bad = int(np.flatnonzero(cls < 0)[0])
        raise ValueError(f"boxes_to_bbox_array: box {bad} has class index {cls[bad]}")
    ts = _to_numpy(t, "t").astype(np.int64).reshape(-1)
    if ts.shape[0] not in (1, n) and not (ts.shape[0] == 1 and n == 0):
        raise ValueError(f"boxes_to_bbox_array: {n} boxes but {ts.shape[0]} timestamps")
    if scores is not None:
        sc = _to_numpy(scores, "scores").reshape(-1)
        if sc.shape[0] != n:
            raise ValueError(f"boxes_to_bbox_array: {n} boxes but {sc.shape[0]} scores")
    sy, sx = float(scale[0]), float(scale[1])
    if not (sx > 0 and sy > 0 and np.isfinite(sx) and np.isfinite(sy)):
        raise ValueError(f"boxes_to_bbox_array: scale = {scale} must be positive and finite")
    bad = np.flatnonzero(~np.all(np.isfinite(boxes), axis=1))
    if bad.size:
        raise ValueError(f"boxes_to_bbox_array: box {bad[0]} has non-finite coordinates {boxes[bad[0]]}")
    bad = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    if bad.size:
        raise ValueError(f"boxes_to_bbox_array: box {bad[0]} has x2 < x1 or y2 < y1: {boxes[bad[0]]}")
    out = np.zeros(n, dtype=BBOX_DTYPE)
    out["t"] = ts
    out["x"] = boxes[:, 0] * sx
    out["y"] = boxes[:, 1] * sy
    out["w"] = (boxes[:, 2] - boxes[:, 0]) * sx
    out["h"] = (boxes[:, 3] - boxes[:, 1]) * sy
    out["class_id"] = cls
    out["track_id"] = np.arange(n, dtype=np.uint32)
    out["class_confidence"] = 1.0 if scores is None else sc
    return out
