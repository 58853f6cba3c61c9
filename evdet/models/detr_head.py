"""DETR set-prediction head (SPEC 5, ``--head set``): :class:`SetTransformer` + Hungarian matching + the
DETR set criterion, with DETR's exact numerics.

The :class:`evdet.models.head.DetectionHead` contract: ``forward`` gives the final decoder layer's
``[logits, boxes]`` (C+1 logits with no-object last; normalised cxcywh boxes), ``detect`` decodes them
(top-k over (query, class), optional NMS), ``loss`` matches every decoder layer to the targets and sums
the weighted DETR losses. TorchScript-able.
"""

import torch
from torch import Tensor

from evdet.models.decoding import decode_query_boxes
from evdet.models.head import ClassLogitLayer, DetectionHead
from evdet.models.matcher import HungarianMatcher
from evdet.models.set_criterion import SetCriterion, normalised_targets, slot_metrics
from evdet.models.set_head import SetTransformer


def decode_set_predictions(logits: Tensor, boxes: Tensor, image_height: int, image_width: int,
                           score_thresh: float = 0.1, nms_thresh: float = 0.5, max_detections: int = 100,
                           top_k: int = 100) -> list[Tensor]:
    """Per-frame detections from set predictions, all frames in one vectorised pass.

    Per frame: softmax over C+1 classes, the ``top_k`` best (query, foreground class) pairs, score >
    ``score_thresh``, class-wise NMS (IoU > ``nms_thresh`` suppresses; ``nms_thresh >= 1`` disables it),
    at most ``max_detections`` kept.

    Args:
        logits: ``Tensor[N, Q, C+1]`` (last = no-object).
        boxes: ``Tensor[N, Q, 4]`` normalised cx, cy, w, h.
        image_height, image_width: network size (pixels).

    Returns:
        N tensors ``[n, 6]`` rows ``(x1, y1, x2, y2, score, class_idx)``: xyxy network pixels clipped to the
        image, class_idx in 0..C−1 (float), scores descending.
    """
    num_classes = logits.shape[2] - 1
    scores = torch.softmax(logits.float(), dim=2)[:, :, :num_classes]  # [N, Q, C]
    return decode_query_boxes(scores, boxes, image_height, image_width, score_thresh, nms_thresh,
                              max_detections, top_k)


class DetrHead(DetectionHead):
    """DETR-style set-prediction head.

    Args:
        channels: channels of each feature level (the backbone's ``channels``).
        strides: the backbone's ``strides`` (unused: the positional encoding is per level).
        num_classes: foreground classes (the head predicts C+1 logits, no-object last).
        num_queries, dec_layers, hidden_dim, nheads, dim_feedforward, dropout: :class:`SetTransformer`
            sizes.
        cls_loss: ``"ce"`` (DETR cross-entropy) or ``"focal"`` (evdet's softmax focal loss).
        cost_class, cost_bbox, cost_giou: matching cost weights.
        loss_ce, loss_bbox, loss_giou: loss weights (also applied to the auxiliary layers).
        eos_coef: no-object class weight in the cross-entropy.
        aux_loss: add the losses of every earlier decoder layer.
        top_k: candidates (query, class) kept per frame before NMS at decoding.
        grad_clip: gradient-norm clipping this head needs (read by the trainer).
        lr_mult: learning rate of the head relative to the backbone's (parameter groups).

    Raises:
        ValueError: bad sizes or loss names.
    """

    loss_names = ("loss", "loss_ce", "loss_bbox", "loss_giou")

    def __init__(self, channels: list[int], strides: list[int], num_classes: int, num_queries: int = 100,
                 dec_layers: int = 6, hidden_dim: int = 256, nheads: int = 8, dim_feedforward: int = 1024,
                 dropout: float = 0.1, cls_loss: str = "ce", cost_class: float = 1.0, cost_bbox: float = 5.0,
                 cost_giou: float = 2.0, loss_ce: float = 1.0, loss_bbox: float = 5.0, loss_giou: float = 2.0,
                 eos_coef: float = 0.1, aux_loss: bool = True, top_k: int = 100, grad_clip: float = 0.1,
                 lr_mult: float = 1.0):
        super().__init__(num_classes)
        if not lr_mult > 0 or grad_clip < 0:
            raise ValueError(f"DetrHead: lr_mult must be > 0 and grad_clip >= 0, got {lr_mult}, {grad_clip}")
        self.transformer = SetTransformer(list(channels), num_classes, num_queries, dec_layers, hidden_dim,
                                          nheads, dim_feedforward, dropout)
        matcher = HungarianMatcher(cost_class, cost_bbox, cost_giou)
        self.criterion = SetCriterion(num_classes, matcher, eos_coef, cls_loss=cls_loss)
        self.weight_dict = {"loss_ce": float(loss_ce), "loss_bbox": float(loss_bbox),
                            "loss_giou": float(loss_giou)}
        self.aux_loss = aux_loss
        self.top_k = top_k
        self.grad_clip = float(grad_clip)
        self.lr_mult = float(lr_mult)

    def forward(self, features: list[Tensor], image_height: int, image_width: int) -> list[Tensor]:
        """Final decoder layer: ``[logits Tensor[N, Q, C+1] (no-object last), boxes Tensor[N, Q, 4]]``
        (normalised cx, cy, w, h)."""
        logits, boxes = self.transformer(features)  # [L, N, Q, C+1], [L, N, Q, 4]
        return [logits[-1], boxes[-1]]

    def detect(self, features: list[Tensor], image_height: int, image_width: int, score_thresh: float,
               nms_thresh: float, max_detections: int) -> list[Tensor]:
        """Per-frame detections (see :func:`decode_set_predictions`)."""
        logits, boxes = self.transformer(features)
        return decode_set_predictions(logits[-1], boxes[-1], image_height, image_width, score_thresh,
                                      nms_thresh, max_detections, self.top_k)

    @torch.jit.ignore
    def set_targets(self, targets: list[Tensor], height: int, width: int) -> list[dict[str, Tensor]]:
        """DETR targets of network-pixel rows (:func:`evdet.models.set_criterion.normalised_targets`)."""
        return normalised_targets(targets, height, width)

    @torch.jit.ignore
    def loss(self, features: list[Tensor], targets: list[Tensor], image_height: int,
             image_width: int) -> dict[str, Tensor]:
        """``loss`` (weighted sum: CE ×``loss_ce``, L1 ×``loss_bbox``, GIoU ×``loss_giou``, same weights for
        auxiliary layers), the unweighted parts ``loss_ce``, ``loss_bbox``, ``loss_giou``,
        ``cardinality_error`` (and ``_i`` for auxiliary layer i), and the slot diagnostics
        ``slot_recall``, ``slot_precision``, ``slot_tnr``, ``slot_class_acc`` (see
        :func:`evdet.models.set_criterion.slot_metrics`)."""
        set_targets = self.set_targets(targets, image_height, image_width)
        logits, boxes = self.transformer(features)  # [L, N, Q, C+1], [L, N, Q, 4]
        outputs: dict = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        if self.aux_loss:
            outputs["aux_outputs"] = [{"pred_logits": logits[i], "pred_boxes": boxes[i]}
                                      for i in range(logits.shape[0] - 1)]
        indices = self.criterion.matcher(outputs, set_targets)
        losses = self.criterion(outputs, set_targets, indices)
        total = boxes.sum() * 0.0  # keeps the box branch in the graph when no frame has a box
        for name, value in losses.items():
            base = name.rsplit("_", 1)[0] if name[-1].isdigit() else name
            if base in self.weight_dict:
                total = total + self.weight_dict[base] * value
        out = {"loss": total}
        out.update({k: v.detach() for k, v in losses.items()})
        out.update(slot_metrics(outputs, set_targets, indices))
        return out

    @torch.jit.ignore
    def output_descriptions(self) -> list[tuple[str, str]]:
        return [("logits", "Tensor[T*B, Q, C+1] class logits of the final decoder layer, no-object last; "
                           "scores = softmax over the last dim"),
                ("boxes", "Tensor[T*B, Q, 4] normalised (cx, cy, w, h) in [0, 1]; multiply by (W, H, W, H)")]

    @torch.jit.ignore
    def decoding_constants(self, features: list[Tensor], image_height: int, image_width: int) -> dict:
        return {"top_k": int(self.top_k), "score": "softmax over C+1 (no-object last); top-k over queries x "
                                                    "classes, optional class-wise NMS"}

    @torch.jit.ignore
    def class_logit_layers(self) -> list[ClassLogitLayer]:
        """The class predictor: C + 1 rows, no-object last."""
        return [ClassLogitLayer(("transformer.class_embed.weight", "transformer.class_embed.bias"),
                                background=True)]
