"""YOLOX box decoding and RVT's post-processing (pure functions, TorchScript-able).

Anchor order (every output of the YOLOX head): level by level, finest first (stride 8 → 16 → 32 with the
default levels), inside a level row-major (``index = row · W_l + column``). An anchor at cell (x, y) of a
level of stride s decodes its raw outputs ``(dx, dy, dw, dh)`` to the box centre
``((dx + x)·s, (dy + y)·s)`` and size ``(exp(dw)·s, exp(dh)·s)`` in network pixels.

Post-processing (:func:`yolox_postprocess`) is RVT's ``postprocess``: per anchor the best class
(``max`` over the independent class probabilities), score = objectness × that probability, kept when
score >= the threshold, class-aware NMS ranked by that score; then, as evdet's contract asks, the boxes are
clipped to the image (after NMS, so the NMS sees RVT's boxes).
"""

from __future__ import annotations

import torch
from torch import Tensor

from evdet.models.decoding import split_per_frame
from evdet.ops import batched_nms, clip_boxes_to_image


def anchor_grid(sizes: list[list[int]], strides: list[int], device: torch.device,
                dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Cells and strides of every anchor.

    Args:
        sizes: ``[H_l, W_l]`` of each level, finest first.
        strides: the nominal stride of each level (pixels).

    Returns:
        ``grid`` ``Tensor[A, 2]`` (column x, row y of each anchor) and ``anchor_strides`` ``Tensor[A]``,
        A = Σ H_l·W_l, in the order of the module docstring.
    """
    grids: list[Tensor] = []
    per_anchor: list[Tensor] = []
    for i in range(len(sizes)):
        h, w, s = sizes[i][0], sizes[i][1], strides[i]
        yv, xv = torch.meshgrid([torch.arange(h, device=device, dtype=dtype),
                                 torch.arange(w, device=device, dtype=dtype)], indexing="ij")
        grids.append(torch.stack((xv, yv), 2).view(-1, 2))  # [H_l*W_l, 2]
        per_anchor.append(torch.full((h * w,), float(s), device=device, dtype=dtype))
    return torch.cat(grids, 0), torch.cat(per_anchor, 0)


def decode_boxes(raw_reg: Tensor, grid: Tensor, anchor_strides: Tensor) -> Tensor:
    """``raw_reg`` ``Tensor[N, A, 4]`` -> boxes ``Tensor[N, A, 4]`` cx, cy, w, h network pixels
    (module docstring)."""
    s = anchor_strides.unsqueeze(1)  # [A, 1]
    return torch.cat(((raw_reg[..., 0:2] + grid) * s, torch.exp(raw_reg[..., 2:4]) * s), dim=-1)


def yolox_postprocess(pred: Tensor, image_height: int, image_width: int, score_thresh: float,
                      nms_thresh: float, max_detections: int, class_score_only: bool = False) -> list[Tensor]:
    """Per-frame detections from the head's outputs (module docstring), all frames in one pass.

    Args:
        pred: ``Tensor[N, A, 5 + C]``: cx, cy, w, h (network pixels), objectness probability, C class
            probabilities.
        image_height, image_width: the network input size; boxes are clipped to it after NMS.
        score_thresh: kept when objectness × best class probability >= this value (RVT's
            ``confidence_threshold``).
        nms_thresh: same-frame, same-class boxes with IoU > this value are suppressed, ranked by
            objectness × class probability; ``>= 1`` disables NMS.
        max_detections: rows kept per frame.
        class_score_only: write the best class probability as the score (what RVT stores as
            ``class_confidence`` and its evaluation ranks by) instead of objectness × class probability;
            the rows are then sorted by it and ``max_detections`` keeps the best of it.

    Returns:
        N tensors ``[n, 6]`` rows ``(x1, y1, x2, y2, score, class_idx)``: xyxy network pixels clipped to the
        image, class_idx in 0..C−1 (float), scores descending.
    """
    n_frames = pred.shape[0]
    num_classes = pred.shape[2] - 5
    pred = pred.float()
    cx, cy, w, h = pred[..., 0], pred[..., 1], pred[..., 2], pred[..., 3]
    xyxy = torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)  # [N, A, 4]
    class_conf, class_pred = torch.max(pred[..., 5:], dim=2)  # [N, A]
    product = pred[..., 4] * class_conf  # [N, A]
    frame_idx, anchor_idx = (product >= score_thresh).nonzero().unbind(1)  # [K]
    boxes = xyxy[frame_idx, anchor_idx]  # [K, 4]
    score = product[frame_idx, anchor_idx]
    cls_conf = class_conf[frame_idx, anchor_idx]
    cls_idx = class_pred[frame_idx, anchor_idx]
    if nms_thresh < 1.0:
        keep = batched_nms(boxes, score, frame_idx * num_classes + cls_idx, nms_thresh)  # by score, desc
    else:
        keep = torch.sort(score, descending=True, stable=True)[1]
    if class_score_only:
        keep = keep[torch.sort(cls_conf[keep], descending=True, stable=True)[1]]
        out_score = cls_conf[keep]
    else:
        out_score = score[keep]
    clipped = clip_boxes_to_image(boxes[keep], (image_height, image_width))
    dets = torch.cat((clipped, out_score.unsqueeze(1), cls_idx[keep].unsqueeze(1).float()), 1)  # [K', 6]
    return split_per_frame(dets, frame_idx[keep], n_frames, max_detections)
