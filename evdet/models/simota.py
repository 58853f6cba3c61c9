"""SimOTA label assignment of YOLOX, exactly as RVT's YOLOX head runs it (one frame at a time).

For a frame with G ground-truth boxes and A anchors (grid cells of all levels):

1. Centre prior (:func:`center_prior`): an anchor of stride s centred at ``((x + 0.5)·s, (y + 0.5)·s)``
   is *in the centre* of a box when it lies strictly inside the square of half-side ``1.5·s`` around the
   box centre. Only anchors in the centre of at least one box are candidates (A_f of them).
2. Cost (:func:`assignment_cost`) of (box g, candidate a): the binary cross-entropy, summed over the C
   classes, between ``sqrt(σ(cls_a)·σ(obj_a))`` and the one-hot class of g, plus ``3·(−log(IoU + 1e-8))``
   (IoU of g with the decoded prediction of a), plus ``1e6`` when a is not in the centre of g.
3. Dynamic k (:func:`dynamic_k_matching`): box g takes the ``k_g`` candidates of lowest cost, ``k_g =
   max(1, int(sum of its min(10, A_f) largest IoUs))``; an anchor taken by several boxes keeps only the one
   of lowest cost (over all G boxes, first on ties).

Boxes are cx, cy, w, h in network pixels. Everything here is without gradient. Ties in the cost are
broken by ``torch.topk`` (RVT takes ``topk(k_g)`` per box, this module ``topk(max k)`` for all boxes at
once and keeps the first ``k_g``: the same set unless two costs tie exactly at the k-th place).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: half-side of the centre square, in strides
CENTER_RADIUS = 1.5
#: IoUs summed for the dynamic k
CANDIDATE_TOPK = 10
#: weight of −log(IoU) in the cost
IOU_COST_WEIGHT = 3.0
#: cost added outside the centre prior
OUTSIDE_CENTER_COST = 1e6


def pairwise_iou_cxcywh(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """IoU ``Tensor[G, A]`` of ``boxes_a`` ``Tensor[G, 4]`` and ``boxes_b`` ``Tensor[A, 4]``, both cx, cy, w,
    h (YOLOX's ``bboxes_iou(..., xyxy=False)``: no epsilon, 0 where they do not overlap)."""
    tl = torch.max(boxes_a[:, None, :2] - boxes_a[:, None, 2:] / 2, boxes_b[:, :2] - boxes_b[:, 2:] / 2)
    br = torch.min(boxes_a[:, None, :2] + boxes_a[:, None, 2:] / 2, boxes_b[:, :2] + boxes_b[:, 2:] / 2)
    area_a = torch.prod(boxes_a[:, 2:], 1)
    area_b = torch.prod(boxes_b[:, 2:], 1)
    en = (tl < br).to(tl.dtype).prod(dim=2)  # [G, A]
    area_i = torch.prod(br - tl, 2) * en
    return area_i / (area_a[:, None] + area_b - area_i)


def center_prior(gt_boxes: Tensor, grid: Tensor, strides: Tensor) -> tuple[Tensor, Tensor]:
    """The centre prior of step 1.

    Args:
        gt_boxes: ``Tensor[G, 4]`` cx, cy, w, h (pixels).
        grid: ``Tensor[A, 2]`` cell column and row (x, y) of every anchor.
        strides: ``Tensor[A]`` stride of every anchor (pixels).

    Returns:
        ``candidates`` ``Tensor[A]`` bool (in the centre of some box) and ``in_center`` ``Tensor[G, A_f]``
        bool (candidate a in the centre of box g), A_f = ``candidates.sum()``.
    """
    x_centers = ((grid[:, 0] + 0.5) * strides).unsqueeze(0)  # [1, A]
    y_centers = ((grid[:, 1] + 0.5) * strides).unsqueeze(0)
    center_dist = strides.unsqueeze(0) * CENTER_RADIUS  # [1, A]
    c_l = x_centers - (gt_boxes[:, 0:1] - center_dist)  # [G, A]
    c_r = (gt_boxes[:, 0:1] + center_dist) - x_centers
    c_t = y_centers - (gt_boxes[:, 1:2] - center_dist)
    c_b = (gt_boxes[:, 1:2] + center_dist) - y_centers
    is_in_centers = torch.stack([c_l, c_t, c_r, c_b], 2).min(dim=-1).values > 0.0  # [G, A]
    candidates = is_in_centers.sum(dim=0) > 0
    return candidates, is_in_centers[:, candidates]


def assignment_cost(gt_classes: Tensor, num_classes: int, ious: Tensor, cls_logits: Tensor,
                    obj_logits: Tensor, in_center: Tensor) -> Tensor:
    """The cost ``Tensor[G, A_f]`` of step 2.

    Args:
        gt_classes: ``Tensor[G]`` class indices 0..C−1 (any numeric dtype).
        num_classes: C.
        ious: ``Tensor[G, A_f]`` IoU of each box with each candidate's decoded prediction.
        cls_logits: ``Tensor[A_f, C]``; obj_logits: ``Tensor[A_f]`` (logits of the candidates).
        in_center: ``Tensor[G, A_f]`` bool (:func:`center_prior`).
    """
    g, a = ious.shape
    onehot = F.one_hot(gt_classes.to(torch.int64), num_classes).float()  # [G, C]
    iou_cost = -torch.log(ious + 1e-8)
    probs = (cls_logits.float().sigmoid() * obj_logits.float().unsqueeze(1).sigmoid()).sqrt()  # [A_f, C]
    cls_cost = F.binary_cross_entropy(probs.unsqueeze(0).expand(g, a, num_classes),
                                      onehot.unsqueeze(1).expand(g, a, num_classes),
                                      reduction="none").sum(-1)  # [G, A_f]
    return cls_cost + IOU_COST_WEIGHT * iou_cost + OUTSIDE_CENTER_COST * (~in_center)


def dynamic_k_matching(cost: Tensor, ious: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Step 3: which candidates become foreground, and for which box.

    Args:
        cost: ``Tensor[G, A_f]`` (G >= 1, A_f >= 1).
        ious: ``Tensor[G, A_f]``.

    Returns:
        ``fg`` ``Tensor[A_f]`` bool, and for the foreground candidates in order: ``matched_gt``
        ``Tensor[F]`` int64 (the box) and ``matched_iou`` ``Tensor[F]`` (its IoU with that box).
    """
    g, a = cost.shape
    topk_ious = torch.topk(ious, min(CANDIDATE_TOPK, a), dim=1).values  # [G, k]
    dynamic_ks = torch.clamp(topk_ious.sum(1).int(), min=1)  # [G]
    k_max = int(dynamic_ks.max())
    pos_idx = torch.topk(cost, k_max, dim=1, largest=False).indices  # [G, k_max]
    take = torch.arange(k_max, device=cost.device).unsqueeze(0) < dynamic_ks.unsqueeze(1)  # [G, k_max]
    rows = torch.arange(g, device=cost.device).unsqueeze(1).expand(g, k_max)
    matching = torch.zeros(g, a, dtype=torch.bool, device=cost.device)
    matching[rows[take], pos_idx[take]] = True
    multiple = matching.sum(0) > 1  # [A_f]
    if bool(multiple.any()):
        cost_argmin = torch.min(cost[:, multiple], dim=0).indices  # [M]
        matching[:, multiple] = False
        matching[cost_argmin, multiple.nonzero().view(-1)] = True
    fg = matching.any(0)
    matched_gt = matching[:, fg].to(torch.uint8).argmax(0)  # [F]
    matched_iou = ious[:, fg].gather(0, matched_gt.unsqueeze(0)).squeeze(0)
    return fg, matched_gt, matched_iou


@torch.no_grad()
def simota_assign(gt_boxes: Tensor, gt_classes: Tensor, pred_boxes: Tensor, cls_logits: Tensor,
                  obj_logits: Tensor, grid: Tensor, strides: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """SimOTA for one frame (steps 1-3 of the module docstring).

    Args:
        gt_boxes: ``Tensor[G, 4]`` cx, cy, w, h pixels (G >= 1); gt_classes: ``Tensor[G]`` in 0..C−1.
        pred_boxes: ``Tensor[A, 4]`` decoded predictions cx, cy, w, h pixels.
        cls_logits: ``Tensor[A, C]``; obj_logits: ``Tensor[A]``.
        grid: ``Tensor[A, 2]`` cell (x, y) of every anchor; strides: ``Tensor[A]``.

    Returns:
        ``fg_mask`` ``Tensor[A]`` bool, ``matched_gt`` ``Tensor[F]`` int64 (the box of each foreground
        anchor, anchors in order) and ``matched_iou`` ``Tensor[F]``.
    """
    candidates, in_center = center_prior(gt_boxes, grid, strides)
    fg_mask = torch.zeros_like(candidates)
    if not bool(candidates.any()):
        empty = torch.zeros(0, dtype=torch.int64, device=gt_boxes.device)
        return fg_mask, empty, pred_boxes.new_zeros(0)
    ious = pairwise_iou_cxcywh(gt_boxes, pred_boxes[candidates])  # [G, A_f]
    cost = assignment_cost(gt_classes, cls_logits.shape[1], ious, cls_logits[candidates],
                           obj_logits[candidates], in_center)
    fg, matched_gt, matched_iou = dynamic_k_matching(cost, ious)
    fg_mask[candidates.nonzero().view(-1)[fg]] = True
    return fg_mask, matched_gt, matched_iou
