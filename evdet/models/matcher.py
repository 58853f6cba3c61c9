"""Hungarian matching of set predictions to ground truth (DETR, Carion et al. 2020; SPEC 5).

Costs, for prediction q and target j of the same image:

- class: ``−p_q(label_j)`` (softmax probability of the target class, no-object logit included); with
  ``focal=True`` (RT-DETR, sigmoid logits without a no-object class) the focal-loss difference
  ``α(1−p)^γ·(−log(p + 1e-8)) − (1−α)p^γ·(−log(1 − p + 1e-8))`` of the sigmoid probability ``p``;
- box: L1 distance of the normalised ``(cx, cy, w, h)`` boxes;
- giou: ``−GIoU`` of the boxes in xyxy.

``C = cost_bbox · L1 + cost_class · class + cost_giou · giou``. The cost matrix of the whole batch is
computed at once on the predictions' device; the assignment is solved per image on CPU with
``scipy.optimize.linear_sum_assignment``. The numbers equal those of the published DETR matcher.
"""

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from evdet.ops import box_cxcywh_to_xyxy, generalized_box_iou


def check_set_inputs(outputs: dict[str, Tensor], targets: list[dict[str, Tensor]], who: str) -> None:
    """Validate DETR-style ``outputs`` / ``targets`` (see :class:`HungarianMatcher`).

    Raises:
        ValueError: missing keys, wrong shapes, or a target entry with mismatched ``labels`` / ``boxes``
            (its image index and shapes are given).
        TypeError: ``targets`` is not a list of dicts.
    """
    for key in ("pred_logits", "pred_boxes"):
        if key not in outputs:
            raise ValueError(f"{who}: outputs has no {key!r} (keys: {sorted(outputs)})")
    logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
    if logits.dim() != 3 or boxes.dim() != 3 or boxes.shape[-1] != 4 or logits.shape[:2] != boxes.shape[:2]:
        raise ValueError(f"{who}: expected pred_logits [B, Q, C+1] and pred_boxes [B, Q, 4], got "
                         f"{list(logits.shape)} and {list(boxes.shape)}")
    if not isinstance(targets, (list, tuple)):
        raise TypeError(f"{who}: targets must be a list of dicts, got {type(targets).__name__}")
    if len(targets) != logits.shape[0]:
        raise ValueError(f"{who}: {len(targets)} targets for a batch of {logits.shape[0]} images")
    for i, t in enumerate(targets):
        if not isinstance(t, dict) or "labels" not in t or "boxes" not in t:
            raise TypeError(f"{who}: targets[{i}] must be a dict with 'labels' and 'boxes'")
        lab, box = t["labels"], t["boxes"]
        if lab.dim() != 1 or box.dim() != 2 or box.shape[1] != 4 or lab.shape[0] != box.shape[0]:
            raise ValueError(f"{who}: targets[{i}] must hold labels [n] and boxes [n, 4], got "
                             f"{list(lab.shape)} and {list(box.shape)}")


class HungarianMatcher(nn.Module):
    """One-to-one assignment of predictions to targets minimising the DETR matching cost.

    Args:
        cost_class: weight of the class cost (−probability of the target class, or the focal cost).
        cost_bbox: weight of the L1 cost of normalised cxcywh boxes.
        cost_giou: weight of the −GIoU cost.
        focal: the logits are C independent sigmoids (no no-object logit) and the class cost is the focal
            one (module docstring), as RT-DETR's matcher.
        alpha, gamma: the focal cost's parameters.

    Raises:
        ValueError: all weights are 0, or a weight is negative.
    """

    def __init__(self, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 focal: bool = False, alpha: float = 0.25, gamma: float = 2.0):
        super().__init__()
        self.focal = bool(focal)
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        for name, v in (("cost_class", cost_class), ("cost_bbox", cost_bbox), ("cost_giou", cost_giou)):
            if v < 0:
                raise ValueError(f"HungarianMatcher: {name} must be >= 0, got {v}")
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("HungarianMatcher: all costs are 0")
        self.cost_class = float(cost_class)
        self.cost_bbox = float(cost_bbox)
        self.cost_giou = float(cost_giou)

    @torch.no_grad()
    def cost_matrix(self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]]) -> Tensor:
        """The cost of every prediction against every target of the batch.

        Args:
            outputs: ``pred_logits Tensor[B, Q, C+1]`` (last = no-object; ``Tensor[B, Q, C]`` with
                ``focal``) and ``pred_boxes Tensor[B, Q, 4]`` (normalised cx, cy, w, h).
            targets: B dicts with ``labels Tensor[n_i]`` int64 in ``0..C−1`` and ``boxes Tensor[n_i, 4]``
                (normalised cx, cy, w, h).

        Returns:
            ``Tensor[B, Q, sum_i n_i]`` (on the predictions' device); image i's block is the columns of
            its own targets.
        """
        check_set_inputs(outputs, targets, "HungarianMatcher")
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        b, q = logits.shape[:2]
        num_classes = logits.shape[-1] if self.focal else logits.shape[-1] - 1
        out_bbox = boxes.flatten(0, 1).float()  # [B*Q, 4]
        tgt_ids = torch.cat([t["labels"] for t in targets]).to(device=logits.device, dtype=torch.int64)
        tgt_bbox = torch.cat([t["boxes"] for t in targets]).to(device=logits.device, dtype=torch.float32)
        if tgt_ids.numel() > 0 and (tgt_ids.min() < 0 or tgt_ids.max() >= num_classes):
            bad = int(((tgt_ids < 0) | (tgt_ids >= num_classes)).nonzero()[0, 0])
            raise ValueError(f"HungarianMatcher: target label {int(tgt_ids[bad])} (box {bad} of the batch) "
                             f"outside 0..{num_classes - 1}")
        if self.focal:
            p = logits.flatten(0, 1).float().sigmoid()[:, tgt_ids]  # [B*Q, M]
            neg = (1 - self.alpha) * p.pow(self.gamma) * (-(1 - p + 1e-8).log())
            pos = self.alpha * (1 - p).pow(self.gamma) * (-(p + 1e-8).log())
            cost_class = pos - neg
        else:
            cost_class = -logits.flatten(0, 1).float().softmax(-1)[:, tgt_ids]  # [B*Q, M]
        cost_bbox = torch.cdist(out_bbox, tgt_bbox, p=1)  # [B*Q, M]
        cost_giou = -generalized_box_iou(box_cxcywh_to_xyxy(out_bbox), box_cxcywh_to_xyxy(tgt_bbox))
        cost = self.cost_bbox * cost_bbox + self.cost_class * cost_class + self.cost_giou * cost_giou
        return cost.view(b, q, -1)  # [B, Q, M]

    @torch.jit.ignore  # scipy on CPU: never part of a scripted detector
    @torch.no_grad()
    def forward(self, outputs: dict[str, Tensor],
                targets: list[dict[str, Tensor]]) -> list[tuple[Tensor, Tensor]]:
        """Match each image's predictions to its targets.

        Args:
            outputs, targets: see :meth:`cost_matrix` (other keys of ``outputs``, e.g. ``aux_outputs``, are
                ignored).

        Returns:
            per image ``(pred_idx Tensor[k], target_idx Tensor[k])`` int64 on CPU,
            ``k = min(Q, n_i)``, sorted by ``pred_idx``; empty for an image without targets.

        Raises:
            ValueError: bad shapes or labels (see :func:`check_set_inputs`), or a non-finite cost
                (image index given).
        """
        cost = self.cost_matrix(outputs, targets).cpu()  # [B, Q, M]
        sizes = [int(t["boxes"].shape[0]) for t in targets]
        indices: list[tuple[Tensor, Tensor]] = []
        for i, block in enumerate(cost.split(sizes, -1)):
            c = block[i]  # [Q, n_i]
            if c.numel() > 0 and not bool(torch.isfinite(c).all()):
                raise ValueError(f"HungarianMatcher: non-finite matching cost in image {i} "
                                 "(NaN/inf predictions)")
            rows, cols = linear_sum_assignment(c.numpy())
            indices.append((torch.as_tensor(rows, dtype=torch.int64),
                            torch.as_tensor(cols, dtype=torch.int64)))
        return indices
