"""Detections of a streamed batch → label-file rows: the one conversion used by validation, ``evdet-detect``
and the demo.

Bin ``k`` of column ``b`` is stamped with ``batch.video_infos[b].bin_end(k)`` (µs) and its boxes are scaled
from network to sensor pixels by ``video_infos[b].scale`` ``(sy, sx)``; padding columns and the zero-padded
tail of a video are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from evdet.evaluation.detections import boxes_to_bbox_array
from evdet.io.dtypes import BBOX_DTYPE, as_boxes

__all__ = ["VideoRows", "batch_label_rows"]


@dataclass(frozen=True)
class VideoRows:
    """The rows of one recording in one batch.

    Attributes:
        path: the recording (``VideoInfo.path``).
        detections: ``BBOX_DTYPE [n]`` in sensor pixels, ``class_confidence`` = score.
        ground_truth: ``BBOX_DTYPE [m]`` of the same bins (labelled bins only), or None.
        bins: number of bins these rows cover.
    """

    path: str
    detections: np.ndarray
    ground_truth: np.ndarray | None
    bins: int


def _rows(boxes: Tensor, t_end: int, scale: tuple[float, float], class_ids: np.ndarray | None,
          with_scores: bool) -> np.ndarray:
    b = boxes.detach().float().cpu()
    cls = b[:, 5 if with_scores else 4].numpy().astype(np.int64)
    if class_ids is not None and cls.size:
        cls = class_ids[cls]
    return boxes_to_bbox_array(b[:, :4].numpy(), cls, t_end, scores=b[:, 4].numpy() if with_scores else None,
                               scale=scale)


def batch_label_rows(batch, detections: Sequence[Sequence[Tensor]], *, labeled_only: bool,
                     class_ids: np.ndarray | None = None) -> list[VideoRows]:
    """Detections (and, for labelled bins, ground truth) of a batch as ``BBOX_DTYPE`` rows per recording.

    Args:
        batch: a ``SequenceBatch`` (labels T × B ``Tensor[n, 5]`` xyxy network pixels + class_idx).
        detections: T × B ``Tensor[m, 6]`` ``(x1, y1, x2, y2, score, class_idx)`` in network pixels (the
            detector's ``get_boxes``).
        labeled_only: True: only bins with ``frame_is_labeled``, with their ground truth (validation);
            False: every bin holding data, no ground truth (detection files, demo).
        class_ids: ``[C]`` id written for each class index (e.g. the label-map id); None: the index.

    Returns:
        one :class:`VideoRows` per non-padding column that has at least one selected bin, in column order.

    Raises:
        ValueError: ``detections`` is not T × B.
    """
    t, b = int(batch.inputs.shape[0]), int(batch.inputs.shape[1])
    if len(detections) != t or any(len(row) != b for row in detections):
        raise ValueError(f"batch_label_rows: detections must be T × B = {t} × {b} lists, got "
                         f"{len(detections)} × {[len(r) for r in detections]}")
    labeled = batch.frame_is_labeled.detach().cpu().numpy().astype(bool)  # [T, B]
    padding = batch.padding.detach().cpu().numpy().astype(bool)  # [B]
    out = []
    for col in range(b):
        vi = batch.video_infos[col]
        if padding[col] or not vi.path:
            continue
        valid = min(t, int(vi.num_valid_bins) if vi.num_valid_bins else t)
        bins = np.flatnonzero(labeled[:valid, col]) if labeled_only else np.arange(valid)
        if bins.size == 0:
            continue
        scale = (float(vi.scale[0]), float(vi.scale[1]))
        dts = [_rows(detections[k][col], vi.bin_end(int(k)), scale, class_ids, True) for k in bins]
        gts = None
        if labeled_only:
            gts = as_boxes(np.concatenate([_rows(batch.labels[k][col], vi.bin_end(int(k)), scale, class_ids,
                                                 False) for k in bins]))
        # as_boxes: np.concatenate packs structured dtypes (numpy 2); restore the BBOX_DTYPE layout
        out.append(VideoRows(str(vi.path), as_boxes(np.concatenate(dts)) if dts else np.zeros(0, BBOX_DTYPE),
                             gts, int(bins.size)))
    return out
