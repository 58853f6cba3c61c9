"""Set criterion of DETR-style detectors (Carion et al. 2020; SPEC 5) and slot-level diagnostics.

Given the Hungarian matching of predictions to targets (:class:`evdet.models.matcher.HungarianMatcher`):

- ``loss_ce``: cross-entropy over every query, unmatched queries having the no-object class C (the last
  logit) as target, weighted mean with the no-object class weighted by ``eos_coef``; or, with
  ``cls_loss="focal"``, evdet's softmax focal loss summed over queries and divided by ``num_boxes``;
- ``loss_bbox``: L1 of matched normalised cxcywh boxes, summed, divided by ``num_boxes``;
- ``loss_giou``: ``1 − GIoU`` of matched pairs, summed, divided by ``num_boxes``;
- ``cardinality_error``: mean over images of ``|#queries whose argmax is not no-object − #targets|``
  (logged, no gradient);

``num_boxes = max(1, targets in the batch)`` (averaged over DDP ranks when distributed). Auxiliary decoder
layers get the same losses with suffix ``_i``. The losses are unweighted: the caller applies the weights.
With cross-entropy the numbers equal those of the published DETR criterion on the same inputs.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evdet.models.checks import check_sizes
from evdet.models.focal_loss import softmax_focal_loss
from evdet.models.matcher import HungarianMatcher, check_set_inputs
from evdet.ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, generalized_box_iou

LOSSES = ("labels", "boxes", "cardinality")
CLS_LOSSES = ("ce", "focal")


def normalised_targets(targets: list[Tensor], height: int, width: int) -> list[dict[str, Tensor]]:
    """Set-criterion targets from evdet's ``Tensor[n, 5]`` rows ``(x1, y1, x2, y2, class_idx)`` in network
    pixels: per frame ``labels Tensor[n]`` int64 and ``boxes Tensor[n, 4]`` normalised cxcywh."""
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    out = []
    for tg in targets:
        s = scale.to(tg.device)
        out.append({"labels": tg[:, 4].round().to(torch.int64),
                    "boxes": box_xyxy_to_cxcywh(tg[:, :4].float() / s)})
    return out


def src_permutation(indices: list[tuple[Tensor, Tensor]], device: torch.device) -> tuple[Tensor, Tensor]:
    """(image index, query index) of every matched prediction, images in order."""
    batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
    src_idx = torch.cat([src for src, _ in indices])
    return batch_idx.to(device), src_idx.to(device)


def matched_pairs(pred_boxes: Tensor, targets: list[dict[str, Tensor]],
                  indices: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """The matched predicted and target boxes, ``Tensor[K, 4]`` each (images in order, the targets in the
    predictions' dtype)."""
    src = pred_boxes[src_permutation(indices, pred_boxes.device)]  # [K, 4]
    tgt = torch.cat([t["boxes"].to(pred_boxes.device)[j] for t, (_, j) in zip(targets, indices, strict=True)])
    return src, tgt.to(src.dtype)


def box_losses(pred_boxes: Tensor, targets: list[dict[str, Tensor]], indices: list[tuple[Tensor, Tensor]],
               num_boxes: float) -> dict[str, Tensor]:
    """``loss_bbox`` (summed L1 of matched normalised cxcywh boxes / ``num_boxes``) and ``loss_giou``
    (summed ``1 − GIoU`` / ``num_boxes``) of ``pred_boxes Tensor[B, Q, 4]`` matched by ``indices``."""
    src, tgt = matched_pairs(pred_boxes, targets, indices)
    loss_bbox = F.l1_loss(src, tgt, reduction="none").sum() / num_boxes
    # pairs only: [K, 1, 4] x [K, 1, 4] -> [K, 1, 1] (the diagonal of the full K x K matrix)
    giou = generalized_box_iou(box_cxcywh_to_xyxy(src)[:, None], box_cxcywh_to_xyxy(tgt)[:, None])
    loss_giou = (1.0 - giou.view(-1)).sum() / num_boxes
    return {"loss_bbox": loss_bbox, "loss_giou": loss_giou}


def num_target_boxes(targets: list[dict[str, Tensor]], device: torch.device) -> float:
    """``max(1, targets in the batch)``, averaged over the DDP ranks when distributed: the loss normaliser."""
    n = torch.as_tensor([float(sum(int(t["labels"].shape[0]) for t in targets))], device=device)
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(n)
        n = n / dist.get_world_size()
    return max(float(n.item()), 1.0)


class SetCriterion(nn.Module):
    """Losses of a set-prediction detector from its DETR-style outputs.

    Args:
        num_classes: C, foreground classes (logits have C+1 entries, the last is no-object).
        matcher: assigns predictions to targets (None: ``HungarianMatcher(1, 5, 2)``).
        eos_coef: weight of the no-object class in the cross-entropy.
        losses: subset of ``("labels", "boxes", "cardinality")``.
        cls_loss: ``"ce"`` (DETR) or ``"focal"`` (softmax focal loss, normalised by ``num_boxes``).
        focal_gamma, focal_alpha: focal loss parameters (alpha weighs object targets, 1 − alpha no-object).

    Raises:
        ValueError: num_classes < 1, eos_coef outside (0, 1], unknown loss or cls_loss name.
    """

    def __init__(self, num_classes: int, matcher: HungarianMatcher | None = None, eos_coef: float = 0.1,
                 losses: tuple[str, ...] | list[str] = LOSSES, cls_loss: str = "ce", focal_gamma: float = 2.0,
                 focal_alpha: float | None = None):
        super().__init__()
        check_sizes("SetCriterion", {"num_classes": num_classes})
        if not 0.0 < eos_coef <= 1.0:
            raise ValueError(f"SetCriterion: eos_coef must be in (0, 1], got {eos_coef}")
        unknown = [name for name in losses if name not in LOSSES]
        if unknown:
            raise ValueError(f"SetCriterion: unknown losses {unknown}; valid are {list(LOSSES)}")
        if cls_loss not in CLS_LOSSES:
            raise ValueError(f"SetCriterion: cls_loss must be one of {list(CLS_LOSSES)}, got {cls_loss!r}")
        self.num_classes = num_classes
        self.matcher = matcher if matcher is not None else HungarianMatcher()
        self.eos_coef = float(eos_coef)
        self.losses = list(losses)
        self.cls_loss = cls_loss
        self.focal_gamma = float(focal_gamma)
        self.focal_alpha = focal_alpha
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = eos_coef
        self.register_buffer("empty_weight", empty_weight, persistent=False)

    def _target_classes(self, logits: Tensor, targets: list[dict[str, Tensor]],
                        indices: list[tuple[Tensor, Tensor]]) -> Tensor:
        """``Tensor[B, Q]`` int64: matched queries get their target's label, others no-object (C)."""
        idx = src_permutation(indices, logits.device)
        pairs = zip(targets, indices, strict=True)
        classes_o = torch.cat([t["labels"].to(logits.device)[j] for t, (_, j) in pairs])
        target = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        target[idx] = classes_o.to(torch.int64)
        return target

    def loss_labels(self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]],
                    indices: list[tuple[Tensor, Tensor]], num_boxes: float) -> dict[str, Tensor]:
        """``loss_ce`` (see the module docstring)."""
        logits = outputs["pred_logits"]  # [B, Q, C+1]
        target = self._target_classes(logits, targets, indices)  # [B, Q]
        if self.cls_loss == "ce":
            # float32 whatever the autocast dtype (the weight must match the logits' dtype)
            loss = F.cross_entropy(logits.transpose(1, 2).float(), target, self.empty_weight.float())
        else:
            # no-object is the last class, as the focal loss's background
            loss = softmax_focal_loss(logits.flatten(0, 1), target.flatten(), self.focal_gamma,
                                      self.focal_alpha)  # logits [B*Q, C+1]
            loss = loss / num_boxes
        return {"loss_ce": loss}

    @torch.no_grad()
    def loss_cardinality(self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]],
                         indices: list[tuple[Tensor, Tensor]], num_boxes: float) -> dict[str, Tensor]:
        """``cardinality_error`` (no gradient)."""
        logits = outputs["pred_logits"]
        lengths = torch.as_tensor([float(t["labels"].shape[0]) for t in targets], device=logits.device)
        card = (logits.argmax(-1) != logits.shape[-1] - 1).sum(1).float()  # [B]
        return {"cardinality_error": F.l1_loss(card, lengths)}

    def loss_boxes(self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]],
                   indices: list[tuple[Tensor, Tensor]], num_boxes: float) -> dict[str, Tensor]:
        """``loss_bbox`` and ``loss_giou`` of the matched pairs (see the module docstring)."""
        return box_losses(outputs["pred_boxes"], targets, indices, num_boxes)

    def _layer_losses(self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]],
                      indices: list[tuple[Tensor, Tensor]], num_boxes: float) -> dict[str, Tensor]:
        losses: dict[str, Tensor] = {}
        fns = {"labels": self.loss_labels, "boxes": self.loss_boxes, "cardinality": self.loss_cardinality}
        for name in self.losses:
            losses.update(fns[name](outputs, targets, indices, num_boxes))
        return losses

    @torch.jit.ignore  # training only: never part of a scripted detector
    def forward(self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]],
                indices: list[tuple[Tensor, Tensor]] | None = None) -> dict[str, Tensor]:
        """Unweighted losses of the last layer and of every auxiliary layer.

        Args:
            outputs: ``pred_logits Tensor[B, Q, C+1]``, ``pred_boxes Tensor[B, Q, 4]`` (normalised cxcywh) and
                optionally ``aux_outputs``: a list of such dicts (earlier decoder layers).
            targets: B dicts with ``labels Tensor[n_i]`` int64 and ``boxes Tensor[n_i, 4]`` normalised cxcywh.
            indices: the last layer's matching when already computed (``self.matcher(outputs, targets)``).

        Returns:
            ``loss_ce``, ``loss_bbox``, ``loss_giou``, ``cardinality_error`` (those of ``losses``), and the
            same with suffix ``_i`` for ``aux_outputs[i]``.

        Raises:
            ValueError / TypeError: malformed outputs or targets (see :func:`check_set_inputs`).
        """
        check_set_inputs(outputs, targets, "SetCriterion")
        if indices is None:
            indices = self.matcher(outputs, targets)
        num_boxes = num_target_boxes(targets, outputs["pred_logits"].device)
        losses = self._layer_losses(outputs, targets, indices, num_boxes)
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            aux_indices = self.matcher(aux, targets)
            for k, v in self._layer_losses(aux, targets, aux_indices, num_boxes).items():
                losses[f"{k}_{i}"] = v
        return losses


@torch.no_grad()
def slot_metrics(outputs: dict[str, Tensor], targets: list[dict[str, Tensor]],
                 indices: list[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """Slot-level training diagnostics from a matching (no gradient).

    Args:
        outputs: ``pred_logits Tensor[B, Q, C+1]`` (last = no-object).
        targets: B dicts with ``labels Tensor[n_i]``.
        indices: per image ``(pred_idx, target_idx)`` from the matcher.

    Returns:
        scalar tensors:
        ``slot_recall`` (fraction of targets whose matched query predicts an object, i.e. its argmax is not
        no-object), ``slot_precision`` (fraction of object-predicting queries that are matched),
        ``slot_tnr`` (fraction of unmatched queries predicting no-object) and ``slot_class_acc`` (fraction
        of matched queries whose argmax is the target class). A ratio with an empty denominator is 0.
    """
    logits = outputs["pred_logits"]
    num_classes = logits.shape[-1] - 1
    pred = logits.argmax(-1)  # [B, Q]
    is_obj = pred != num_classes  # [B, Q]
    matched = torch.zeros_like(is_obj)
    idx = src_permutation(indices, logits.device)
    matched[idx] = True
    labels = torch.cat([t["labels"].to(logits.device)[j] for t, (_, j) in zip(targets, indices, strict=True)])
    n_tgt = float(sum(int(t["labels"].shape[0]) for t in targets))

    def ratio(num: Tensor, den: float | Tensor) -> Tensor:
        den = float(den)
        return num.float() / den if den > 0 else torch.zeros((), device=logits.device)

    return {
        "slot_recall": ratio((matched & is_obj).sum(), n_tgt),
        "slot_precision": ratio((matched & is_obj).sum(), is_obj.sum()),
        "slot_tnr": ratio((~matched & ~is_obj).sum(), (~matched).sum()),
        "slot_class_acc": ratio((pred[idx] == labels).sum(), labels.numel()),
    }
