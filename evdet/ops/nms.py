"""Greedy non-maximum suppression with torchvision's semantics, vectorised (pure torch, TorchScript-able).

Semantics (identical to ``torchvision.ops.nms`` / ``batched_nms``): boxes are visited by decreasing
score; a box is kept unless a previously *kept* box of the same group overlaps it with
IoU > ``iou_threshold`` (strictly greater: IoU exactly at the threshold does not suppress). The result
is int64 indices into the input, sorted by decreasing score (ties: lower input index first).

Algorithm: boxes sorted by (group, score) are processed in blocks of 256 boxes. A block is
first compared, in one matrix operation, with the kept boxes of the same groups from earlier blocks;
the greedy order inside the block is then resolved exactly by a fixed-point iteration
``keep[i] = candidate[i] and not any(keep[j] and iou[j, i] > thr for j < i)`` which converges to the
greedy result in at most (longest suppression chain + 1) small matrix-vector steps. Memory is
O(block × kept) instead of O(N²); there is no Python loop over boxes.
"""

import torch
from torch import Tensor

from evdet.ops.boxes import box_iou


def _check_inputs(boxes: Tensor, scores: Tensor) -> None:
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"nms: boxes must be a Tensor[N, 4], got shape {list(boxes.shape)}")
    if scores.dim() != 1 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"nms: scores must be a Tensor[N] with N = {boxes.shape[0]}, got shape "
                         f"{list(scores.shape)}")


def _pairwise_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU ``[P, K]`` of xyxy ``a [P, 4]``, ``b [K, 4]``: same floats as box_iou, fewer temporaries."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    w = (torch.min(a[:, None, 2], b[None, :, 2]) - torch.max(a[:, None, 0], b[None, :, 0])).clamp_(min=0)
    h = (torch.min(a[:, None, 3], b[None, :, 3]) - torch.max(a[:, None, 1], b[None, :, 1])).clamp_(min=0)
    inter = w * h  # [P, K]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _resolve_block(suppress: Tensor, candidate: Tensor) -> Tensor:
    """Exact greedy keep mask inside one block.

    Args:
        suppress: ``Tensor[K, K]`` bool, ``suppress[j, i]`` True when box j (earlier) would remove box i
            (only ``j < i`` may be True).
        candidate: ``Tensor[K]`` bool, boxes not already removed by earlier blocks.
    """
    keep = candidate
    sup_t = suppress.t().to(torch.float32)  # [K, K]: row i lists the earlier boxes that remove box i
    changed = True
    while changed:
        hit = torch.mv(sup_t, keep.to(torch.float32)) > 0  # [K]: some kept earlier box suppresses it
        new_keep = candidate & ~hit
        changed = not bool(torch.equal(new_keep, keep))
        keep = new_keep
    return keep


def _grouped_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float,
                 block: int = 256) -> Tensor:
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    # Order by decreasing score (stable), then stably by group: boxes of a group are contiguous and
    # in greedy order, and every earlier box of the same group precedes a box.
    order = torch.sort(scores, descending=True, stable=True)[1]
    order = order[torch.sort(groups[order], stable=True)[1]]
    b = boxes[order].to(torch.float32)
    g = groups[order]
    keep_sorted = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    kept_idx = torch.empty(0, dtype=torch.int64, device=boxes.device)  # positions in sorted order
    for start in range(0, n, block):
        stop = min(start + block, n)
        bb = b[start:stop]  # [K, 4]
        gb = g[start:stop]  # [K]
        candidate = torch.ones(stop - start, dtype=torch.bool, device=boxes.device)
        if kept_idx.numel() > 0:
            # kept boxes are sorted by group: those of groups >= this block's first group form a suffix
            first = int(torch.searchsorted(g[kept_idx], gb[:1]).item())
            prev = kept_idx[first:]
            if prev.numel() > 0:
                iou_prev = _pairwise_iou(b[prev], bb)  # [P, K]
                same = g[prev][:, None] == gb[None, :]
                candidate = ~((iou_prev > iou_threshold) & same).any(0)
        iou_in = _pairwise_iou(bb, bb)  # [K, K]
        k = stop - start
        earlier = torch.ones(k, k, dtype=torch.bool, device=boxes.device).triu(1)
        suppress = (iou_in > iou_threshold) & earlier & (gb[:, None] == gb[None, :])
        keep_block = _resolve_block(suppress, candidate)
        keep_sorted[start:stop] = keep_block
        kept_idx = torch.cat((kept_idx, keep_block.nonzero().view(-1) + start))
    kept = order[keep_sorted]
    # Output in decreasing score order (ties: lower input index first), as torchvision.
    kept = torch.sort(kept)[0]
    return kept[torch.sort(scores[kept], descending=True, stable=True)[1]]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS over all boxes (torchvision semantics, see the module docstring).

    Args:
        boxes: ``Tensor[N, 4]`` xyxy, any units.
        scores: ``Tensor[N]``.
        iou_threshold: a box is removed when its IoU with a kept, higher-scored box is > this value.

    Returns:
        ``Tensor[K]`` int64 indices of kept boxes, by decreasing score.

    Raises:
        ValueError: wrong shapes.
    """
    _check_inputs(boxes, scores)
    groups = torch.zeros(boxes.shape[0], dtype=torch.int64, device=boxes.device)
    return _grouped_nms(boxes, scores, groups, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Class-wise (group-wise) greedy NMS: boxes with different ``idxs`` never suppress each other.

    Equivalent to torchvision's ``batched_nms`` (which offsets coordinates per class) without the
    floating-point loss of large offsets.

    Args:
        boxes: ``Tensor[N, 4]`` xyxy.
        scores: ``Tensor[N]``.
        idxs: ``Tensor[N]`` integer group of each box (class, or frame·C + class).
        iou_threshold: suppression when IoU > this value.

    Returns:
        ``Tensor[K]`` int64 indices of kept boxes, by decreasing score.

    Raises:
        ValueError: wrong shapes.
    """
    _check_inputs(boxes, scores)
    if idxs.dim() != 1 or idxs.shape[0] != boxes.shape[0]:
        raise ValueError(f"batched_nms: idxs must be a Tensor[N] with N = {boxes.shape[0]}, got shape "
                         f"{list(idxs.shape)}")
    return _grouped_nms(boxes, scores, idxs.to(torch.int64), iou_threshold)


def nms_reference(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Plain one-box-at-a-time greedy NMS (slow; the reference for tests and benchmarks).

    Same arguments and result as :func:`nms`.
    """
    order = torch.sort(scores, descending=True, stable=True)[1]
    removed = torch.zeros(boxes.shape[0], dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if bool(removed[i]):
            continue
        keep.append(i)
        iou = box_iou(boxes[i : i + 1], boxes)[0]
        removed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)
