"""RT-DETR's training losses (Zhao et al. 2024): varifocal classification plus L1 and GIoU box losses on
every decoder layer, on the selected encoder proposals and on the denoising queries.

- ``loss_vfl`` (:func:`varifocal_loss`, IoU-aware classification): the target of a matched query's class
  is the IoU of its box with the ground truth (detached), 0 elsewhere; BCE with logits weighted by the
  target score on positives and ``α·p^γ`` on negatives (``p`` the detached sigmoid), averaged over
  queries, summed over images, times Q, divided by ``num_boxes``;
- ``loss_bbox``, ``loss_giou``: :func:`evdet.models.set_criterion.box_losses` of the matched pairs.

Matching: the Hungarian matcher with the focal class cost (``HungarianMatcher(focal=True)``), solved
separately for the final layer (keys without suffix), every earlier layer ``i`` (suffix ``_i``) and the
proposals (``_enc``). The denoising queries of layer ``i`` (``_dn_i``) are matched by construction (the
positives of :class:`evdet.models.denoising.DenoisingGroups`), with ``num_boxes × groups`` as normaliser.
``num_boxes = max(1, targets in the batch)``, averaged over DDP ranks. The numbers equal those of RT-DETR's
``SetCriterion(losses=['vfl', 'boxes'])`` on the same inputs; the losses returned are unweighted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evdet.models.checks import check_sizes
from evdet.models.denoising import DenoisingGroups
from evdet.models.matcher import HungarianMatcher
from evdet.models.set_criterion import box_losses, matched_pairs, num_target_boxes, src_permutation
from evdet.ops import box_cxcywh_to_xyxy, box_iou


def varifocal_loss(logits: Tensor, target_classes: Tensor, target_iou: Tensor, num_boxes: float,
                   alpha: float = 0.75, gamma: float = 2.0) -> Tensor:
    """The varifocal loss of RT-DETR (module docstring).

    Args:
        logits: ``Tensor[B, Q, C]`` class logits.
        target_classes: ``Tensor[B, Q]`` int64, the matched class or C (no object).
        target_iou: ``Tensor[B, Q]`` IoU of each matched query with its ground truth (0 elsewhere).
        num_boxes: the normaliser.
        alpha, gamma: weight and exponent of the negatives.

    Returns:
        a scalar tensor.
    """
    num_classes = logits.shape[-1]
    target = F.one_hot(target_classes, num_classes + 1)[..., :num_classes].to(logits.dtype)  # [B, Q, C]
    target_score = target_iou.to(logits.dtype).unsqueeze(-1) * target
    pred = logits.sigmoid().detach()
    weight = alpha * pred.pow(gamma) * (1 - target) + target_score
    loss = F.binary_cross_entropy_with_logits(logits, target_score, weight=weight, reduction="none")
    return loss.mean(1).sum() * logits.shape[1] / num_boxes


class RTDETRCriterion(nn.Module):
    """Unweighted RT-DETR losses of all prediction sets (module docstring).

    Args:
        num_classes: C.
        matcher: the Hungarian matcher (None: RT-DETR's, costs class 2, L1 5, GIoU 2, focal α 0.25, γ 2).
        alpha, gamma: the varifocal loss's parameters.

    Raises:
        ValueError: ``num_classes`` < 1, or a matcher without the focal cost.
    """

    def __init__(self, num_classes: int, matcher: HungarianMatcher | None = None, alpha: float = 0.75,
                 gamma: float = 2.0):
        super().__init__()
        check_sizes("RTDETRCriterion", {"num_classes": num_classes})
        self.num_classes = num_classes
        self.matcher = matcher if matcher is not None else HungarianMatcher(2.0, 5.0, 2.0, focal=True)
        if not self.matcher.focal:
            raise ValueError("RTDETRCriterion: the matcher must use the focal class cost (focal=True): the "
                             "logits have no no-object class")
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def set_losses(self, logits: Tensor, boxes: Tensor, targets: list[dict[str, Tensor]],
                   indices: list[tuple[Tensor, Tensor]], num_boxes: float) -> dict[str, Tensor]:
        """``loss_vfl``, ``loss_bbox``, ``loss_giou`` of one prediction set (``Tensor[B, Q, C]``,
        ``Tensor[B, Q, 4]``) under a matching."""
        idx = src_permutation(indices, logits.device)
        src, tgt = matched_pairs(boxes, targets, indices)
        ious = box_iou(box_cxcywh_to_xyxy(src)[:, None], box_cxcywh_to_xyxy(tgt)[:, None]).view(-1).detach()
        classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        classes[idx] = torch.cat([t["labels"].to(logits.device)[j]
                                  for t, (_, j) in zip(targets, indices, strict=True)]).to(torch.int64)
        target_iou = torch.zeros(logits.shape[:2], dtype=logits.dtype, device=logits.device)
        target_iou[idx] = ious.to(logits.dtype)
        out = {"loss_vfl": varifocal_loss(logits, classes, target_iou, num_boxes, self.alpha, self.gamma)}
        out.update(box_losses(boxes, targets, indices, num_boxes))
        return out

    @torch.jit.ignore  # training only: never part of a scripted detector
    def forward(self, logits: Tensor, boxes: Tensor, enc_logits: Tensor, enc_boxes: Tensor,
                targets: list[dict[str, Tensor]], dn: DenoisingGroups | None = None,
                dn_logits: Tensor | None = None, dn_boxes: Tensor | None = None,
                aux_loss: bool = True) -> tuple[dict[str, Tensor], list[tuple[Tensor, Tensor]]]:
        """Unweighted losses of every prediction set, and the final layer's matching.

        Args:
            logits, boxes: matching queries of every decoder layer, ``Tensor[L, B, K, C]`` and
                ``Tensor[L, B, K, 4]`` (normalised cxcywh), the final layer last.
            enc_logits, enc_boxes: the selected proposals, ``Tensor[B, K, C]``, ``Tensor[B, K, 4]``.
            targets: B dicts, ``labels Tensor[n_i]`` int64 and ``boxes Tensor[n_i, 4]`` normalised cxcywh.
            dn, dn_logits, dn_boxes: the denoising groups and their predictions ``Tensor[L, B, Ndn, C]``,
                ``Tensor[L, B, Ndn, 4]``, or None.
            aux_loss: also the earlier layers and the proposals (else the final layer and denoising only).

        Returns:
            the losses (keys in the module docstring) and the final layer's matching.
        """
        num_boxes = num_target_boxes(targets, logits.device)
        final = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        indices = self.matcher(final, targets)
        losses = self.set_losses(logits[-1], boxes[-1], targets, indices, num_boxes)
        sets: list[tuple[str, Tensor, Tensor]] = []
        if aux_loss:
            sets = [(f"_{i}", logits[i], boxes[i]) for i in range(logits.shape[0] - 1)]
            sets.append(("_enc", enc_logits, enc_boxes))
        for suffix, lg, bx in sets:
            aux_indices = self.matcher({"pred_logits": lg, "pred_boxes": bx}, targets)
            for k, v in self.set_losses(lg, bx, targets, aux_indices, num_boxes).items():
                losses[k + suffix] = v
        if dn is not None and dn_logits is not None and dn_boxes is not None:
            dn_indices = dn.matched_indices()
            for i in range(dn_logits.shape[0]):
                parts = self.set_losses(dn_logits[i], dn_boxes[i], targets, dn_indices,
                                        num_boxes * dn.num_groups)
                for k, v in parts.items():
                    losses[f"{k}_dn_{i}"] = v
        return losses, indices
