"""The YOLOX training loss as RVT computes it, over the labelled frames of a batch.

Anchors are assigned per frame by SimOTA (:mod:`evdet.models.simota`); with F the number of foreground
anchors of all frames together and ``n_fg = max(F, 1)``:

- ``loss_iou = 5 · Σ_fg (1 − IoU(pred, gt)²) / n_fg`` (decoded cx, cy, w, h boxes; IoU with a 1e-16
  guard in the denominator);
- ``loss_obj = Σ_all anchors BCE(obj_logit, 1 if foreground else 0) / n_fg``;
- ``loss_cls = Σ_fg Σ_c BCE(cls_logit_c, IoU · onehot_c) / n_fg``: the class target of a foreground
  anchor is the IoU of its prediction with its box at assignment time (no gradient);
- ``loss_l1`` (only when enabled; YOLOX switches it on for its last epochs, RVT never):
  ``Σ_fg |raw_reg − (cx/s − x, cy/s − y, log(w/s + 1e-8), log(h/s + 1e-8))| / n_fg``;
- ``loss = loss_iou + loss_obj + loss_cls (+ loss_l1)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from evdet.models.simota import simota_assign

#: weight of the IoU loss
IOU_LOSS_WEIGHT = 5.0


def iou_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``1 − IoU²`` per row (YOLOX's ``IOUloss(loss_type="iou")``): ``pred``, ``target`` ``Tensor[F, 4]``
    cx, cy, w, h -> ``Tensor[F]``."""
    tl = torch.max(pred[:, :2] - pred[:, 2:] / 2, target[:, :2] - target[:, 2:] / 2)
    br = torch.min(pred[:, :2] + pred[:, 2:] / 2, target[:, :2] + target[:, 2:] / 2)
    area_p = torch.prod(pred[:, 2:], 1)
    area_g = torch.prod(target[:, 2:], 1)
    en = (tl < br).to(tl.dtype).prod(dim=1)
    area_i = torch.prod(br - tl, 1) * en
    iou = area_i / (area_p + area_g - area_i + 1e-16)
    return 1 - iou**2


def targets_to_cxcywh(target: Tensor) -> tuple[Tensor, Tensor]:
    """evdet rows ``Tensor[n, 5]`` (x1, y1, x2, y2, class_idx) -> boxes ``Tensor[n, 4]`` cx, cy, w, h
    (``cx = x1 + w/2`` as RVT's ``x + 0.5·w``) and classes ``Tensor[n]``."""
    boxes = target[:, :4].float()
    wh = boxes[:, 2:] - boxes[:, :2]
    return torch.cat((boxes[:, :2] + 0.5 * wh, wh), 1), target[:, 4]


def yolox_loss(boxes: Tensor, obj_logits: Tensor, cls_logits: Tensor, raw_reg: Tensor, grid: Tensor,
               strides: Tensor, targets: list[Tensor], use_l1: bool = False) -> dict[str, Tensor]:
    """The losses of the module docstring.

    Args:
        boxes: ``Tensor[N, A, 4]`` decoded predictions cx, cy, w, h (network pixels).
        obj_logits: ``Tensor[N, A]``; cls_logits: ``Tensor[N, A, C]``.
        raw_reg: ``Tensor[N, A, 4]`` undecoded box outputs (for the L1 term).
        grid: ``Tensor[A, 2]`` cell (x, y) of every anchor; strides: ``Tensor[A]`` (pixels).
        targets: N tensors ``[n, 5]`` (x1, y1, x2, y2, class_idx) network pixels (n may be 0).
        use_l1: add the L1 term.

    Returns:
        ``loss`` (the total), ``loss_iou`` (already ×5), ``loss_obj``, ``loss_cls``, ``loss_l1`` when
        enabled, and ``fg_per_gt`` (``n_fg`` / max(1, boxes); detached diagnostic).
    """
    n_frames, n_anchors = obj_logits.shape
    num_classes = cls_logits.shape[2]
    fg_masks, reg_targets, cls_targets, l1_targets = [], [], [], []
    num_fg, num_gts = 0, 0
    for i in range(n_frames):
        if targets[i].shape[0] == 0:
            fg_masks.append(torch.zeros(n_anchors, dtype=torch.bool, device=boxes.device))
            continue
        gt_boxes, gt_classes = targets_to_cxcywh(targets[i])
        num_gts += gt_boxes.shape[0]
        fg, matched_gt, matched_iou = simota_assign(gt_boxes, gt_classes, boxes[i].detach(),
                                                    cls_logits[i].detach(), obj_logits[i].detach(), grid,
                                                    strides)
        num_fg += int(fg.sum())
        fg_masks.append(fg)
        reg_targets.append(gt_boxes[matched_gt])
        onehot = F.one_hot(gt_classes[matched_gt].to(torch.int64), num_classes)
        cls_targets.append(onehot * matched_iou.unsqueeze(-1))
        if use_l1:
            matched = gt_boxes[matched_gt]
            s = strides[fg].unsqueeze(1)  # [F, 1]
            l1_targets.append(torch.cat((matched[:, :2] / s - grid[fg],
                                         torch.log(matched[:, 2:] / s + 1e-8)), 1))
    fg_mask = torch.stack(fg_masks)  # [N, A]
    n_fg = float(max(num_fg, 1))
    dtype = boxes.dtype
    reg_t = torch.cat(reg_targets).to(dtype) if reg_targets else boxes.new_zeros(0, 4)
    cls_t = torch.cat(cls_targets).to(dtype) if cls_targets else boxes.new_zeros(0, num_classes)
    loss_iou = IOU_LOSS_WEIGHT * (iou_loss(boxes[fg_mask], reg_t).sum() / n_fg)
    loss_obj = F.binary_cross_entropy_with_logits(obj_logits.reshape(-1), fg_mask.reshape(-1).to(dtype),
                                                  reduction="sum") / n_fg
    loss_cls = F.binary_cross_entropy_with_logits(cls_logits[fg_mask], cls_t, reduction="sum") / n_fg
    total = loss_iou + loss_obj + loss_cls
    out = {"loss": total, "loss_iou": loss_iou, "loss_obj": loss_obj, "loss_cls": loss_cls}
    if use_l1:
        l1_t = torch.cat(l1_targets).to(dtype) if l1_targets else boxes.new_zeros(0, 4)
        loss_l1 = (raw_reg[fg_mask] - l1_t).abs().sum() / n_fg
        out["loss"] = total + loss_l1
        out["loss_l1"] = loss_l1
    out["fg_per_gt"] = torch.tensor(n_fg / max(num_gts, 1))
    return out

