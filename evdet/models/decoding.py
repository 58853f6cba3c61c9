"""Shared tail of detection decoding: top-k candidate selection, per-frame NMS and regrouping.

Used by :func:`evdet.models.anchors.batched_decode` (anchor head),
:func:`evdet.models.detr_head.decode_set_predictions` (set head), the RT-DETR head (through
:func:`decode_query_boxes`) and :func:`evdet.models.yolox_decoding.yolox_postprocess` (YOLOX head); pure
functions, TorchScript-able.
"""

import torch
from torch import Tensor

from evdet.ops import batched_nms, box_cxcywh_to_xyxy, clip_boxes_to_image


def top_candidates(scores: Tensor, num_classes: int, top_k: int,
                   score_thresh: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The ``top_k`` best (item, class) pairs of every frame whose score is > ``score_thresh``.

    Args:
        scores: ``Tensor[N, P·C]`` foreground class probabilities, item-major (pair ``p·C + c``).
        num_classes: C.
        top_k: candidates per frame before thresholding (clamped to P·C).
        score_thresh: kept when score > this value.

    Returns:
        ``frame_idx``, ``item_idx``, ``class_idx`` (int64) and ``score`` (float), each ``Tensor[K]``,
        frames in order, scores descending inside a frame.
    """
    n_frames = scores.shape[0]
    k = min(top_k, scores.shape[1])
    top_scores, top_idx = scores.topk(k, dim=1)  # [N, k]
    item_idx = torch.div(top_idx, num_classes, rounding_mode="floor")  # [N, k]
    class_idx = top_idx - item_idx * num_classes  # [N, k]
    frame_idx = torch.arange(n_frames, device=scores.device).view(-1, 1).expand(n_frames, k)  # [N, k]
    sel = top_scores > score_thresh  # [N, k]
    return frame_idx[sel], item_idx[sel], class_idx[sel], top_scores[sel]


def nms_per_frame(boxes: Tensor, scores: Tensor, frame_idx: Tensor, class_idx: Tensor, n_frames: int,
                  num_classes: int, nms_thresh: float, max_detections: int) -> list[Tensor]:
    """Class-wise NMS inside each frame, then the detections regrouped per frame.

    Args:
        boxes: ``Tensor[K, 4]`` xyxy pixels.
        scores: ``Tensor[K]``.
        frame_idx: ``Tensor[K]`` int64 in 0..N−1.
        class_idx: ``Tensor[K]`` int64 in 0..C−1.
        n_frames: N.
        num_classes: C.
        nms_thresh: IoU > this value suppresses (same frame and class); ``>= 1`` skips NMS (IoU never
            exceeds 1, so the result is the same, only cheaper).
        max_detections: at most this many rows per frame (the best scores).

    Returns:
        N tensors ``[n, 6]`` rows ``(x1, y1, x2, y2, score, class_idx)`` (class_idx as a float), scores
        descending (ties: lower input index first).
    """
    if nms_thresh < 1.0:
        keep = batched_nms(boxes, scores, frame_idx * num_classes + class_idx, nms_thresh)  # by score, desc
    else:
        keep = torch.sort(scores, descending=True, stable=True)[1]
    # [K, 6]
    dets = torch.cat((boxes[keep], scores[keep].unsqueeze(1), class_idx[keep].unsqueeze(1).float()), 1)
    return split_per_frame(dets, frame_idx[keep], n_frames, max_detections)


def split_per_frame(dets: Tensor, frame_idx: Tensor, n_frames: int, max_detections: int) -> list[Tensor]:
    """Detection rows ``Tensor[K, 6]`` regrouped per frame, each frame keeping the rows' order and at most
    its first ``max_detections`` rows.

    Args:
        dets: ``Tensor[K, 6]`` rows ``(x1, y1, x2, y2, score, class_idx)``, in the order wanted inside a
            frame (scores descending).
        frame_idx: ``Tensor[K]`` int64 in 0..N−1, the frame of each row.
        n_frames: N.
        max_detections: rows kept per frame.

    Returns:
        N tensors ``[n, 6]``.
    """
    order = torch.sort(frame_idx, stable=True)[1]  # by frame, keeping the order inside each frame
    dets = dets[order]
    counts: list[int] = torch.bincount(frame_idx, minlength=n_frames).tolist()
    out: list[Tensor] = []
    start = 0
    for i in range(n_frames):
        c = counts[i]
        out.append(dets[start : start + min(c, max_detections)])
        start += c
    return out


def decode_query_boxes(scores: Tensor, boxes: Tensor, image_height: int, image_width: int,
                       score_thresh: float, nms_thresh: float, max_detections: int,
                       top_k: int) -> list[Tensor]:
    """Per-frame detections of a set-prediction head, all frames in one vectorised pass: the ``top_k`` best
    (query, class) pairs of every frame, score > ``score_thresh``, boxes scaled to pixels and clipped,
    class-wise NMS (``nms_thresh >= 1``: none), at most ``max_detections`` per frame.

    Args:
        scores: ``Tensor[N, Q, C]`` class scores (probabilities).
        boxes: ``Tensor[N, Q, 4]`` normalised cx, cy, w, h.
        image_height, image_width: network size (pixels).

    Returns:
        N tensors ``[n, 6]`` rows ``(x1, y1, x2, y2, score, class_idx)`` (see :func:`nms_per_frame`).
    """
    n_frames, q, num_classes = scores.shape[0], scores.shape[1], scores.shape[2]
    flat = scores.reshape(n_frames, q * num_classes)
    frame_idx, query_idx, class_idx, sc = top_candidates(flat, num_classes, top_k, score_thresh)  # [K]
    scale = torch.tensor([image_width, image_height, image_width, image_height], dtype=torch.float32,
                         device=scores.device)
    xyxy = box_cxcywh_to_xyxy(boxes[frame_idx, query_idx].float() * scale)  # [K, 4]
    xyxy = clip_boxes_to_image(xyxy, (image_height, image_width))
    return nms_per_frame(xyxy, sc, frame_idx, class_idx, n_frames, num_classes, nms_thresh, max_detections)
