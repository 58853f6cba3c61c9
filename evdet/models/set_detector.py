"""Recurrent set-prediction detector: ConvRNN backbone → DETR-style :class:`SetHead` (SPEC 5, ``--head set``).

Same interface as :class:`evdet.models.SingleStageDetector` (``compute_loss``, ``get_boxes``, ``detect``,
``reset``, ``reset_all``, ``detach``, ``map_cls_weights``), so training, evaluation, detection, demo and
TorchScript export work unchanged. TorchScript-able: ``torch.jit.script(detector)`` exposes ``forward``,
``detect``, ``reset``, ``reset_all`` and ``detach``.
"""

import torch
from torch import Tensor, nn

from evdet.models.decoding import nms_per_frame, top_candidates
from evdet.models.detector import RecurrentDetector
from evdet.models.matcher import HungarianMatcher
from evdet.models.set_criterion import SetCriterion, slot_metrics
from evdet.models.set_head import SetHead
from evdet.ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, clip_boxes_to_image


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
    n_frames, q = logits.shape[0], logits.shape[1]
    num_classes = logits.shape[2] - 1
    scores = torch.softmax(logits.float(), dim=2)[:, :, :num_classes].reshape(n_frames, q * num_classes)
    frame_idx, query_idx, class_idx, sc = top_candidates(scores, num_classes, top_k, score_thresh)  # [K]
    scale = torch.tensor([image_width, image_height, image_width, image_height], dtype=torch.float32,
                         device=logits.device)
    xyxy = box_cxcywh_to_xyxy(boxes[frame_idx, query_idx].float() * scale)  # [K, 4]
    xyxy = clip_boxes_to_image(xyxy, image_height, image_width)
    return nms_per_frame(xyxy, sc, frame_idx, class_idx, n_frames, num_classes, nms_thresh, max_detections)


class SetDetector(RecurrentDetector):
    """Recurrent detector with a DETR-style set-prediction head.

    Args:
        feature_extractor: a backbone (see :class:`evdet.models.SingleStageDetector`); None builds
            ``backbone`` from ``BACKBONES`` with ``feature_base`` and ``feature_channels_out``.
        in_channels: input channels C.
        num_classes: foreground classes (the head predicts C+1 logits, no-object last).
        feature_base, feature_channels_out, backbone: the built backbone.
        num_queries, dec_layers, hidden_dim, nheads, dim_feedforward, dropout: :class:`SetHead` sizes.
        cls_loss: ``"ce"`` (DETR cross-entropy) or ``"focal"`` (evdet's softmax focal loss).
        cost_class, cost_bbox, cost_giou: matching cost weights.
        loss_ce, loss_bbox, loss_giou: loss weights (also applied to the auxiliary layers).
        eos_coef: no-object class weight in the cross-entropy.
        aux_loss: add the losses of every earlier decoder layer.
        top_k: candidates (query, class) kept per frame before NMS at decoding.
        grad_clip: gradient-norm clipping recommended for this head (read by the trainer).
        head_lr_mult: learning rate of the head relative to the backbone's (parameter groups).

    Raises:
        ValueError: unknown backbone, bad sizes or loss names.
    """

    def __init__(self, feature_extractor: nn.Module | None = None, in_channels: int = 2, num_classes: int = 2,
                 feature_base: int = 16, feature_channels_out: int = 256, backbone: str = "Vanilla",
                 num_queries: int = 100, dec_layers: int = 6, hidden_dim: int = 256, nheads: int = 8,
                 dim_feedforward: int = 1024, dropout: float = 0.1, cls_loss: str = "ce",
                 cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 loss_ce: float = 1.0, loss_bbox: float = 5.0, loss_giou: float = 2.0, eos_coef: float = 0.1,
                 aux_loss: bool = True, top_k: int = 100, grad_clip: float = 0.1, head_lr_mult: float = 1.0):
        super().__init__(feature_extractor, in_channels, num_classes, backbone, feature_base,
                         feature_channels_out)
        self.head = SetHead(list(self.feature_extractor.channels), num_classes, num_queries, dec_layers,
                            hidden_dim, nheads, dim_feedforward, dropout)
        matcher = HungarianMatcher(cost_class, cost_bbox, cost_giou)
        self.criterion = SetCriterion(num_classes, matcher, eos_coef, cls_loss=cls_loss)
        self.weight_dict = {"loss_ce": float(loss_ce), "loss_bbox": float(loss_bbox),
                            "loss_giou": float(loss_giou)}
        self.aux_loss = aux_loss
        self.top_k = top_k
        self.grad_clip = float(grad_clip)
        self.head_lr_mult = float(head_lr_mult)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Run the backbone (updating its state) and the head on every bin.

        Args:
            x: ``Tensor[T, B, C, H, W]``.

        Returns:
            final-layer ``logits Tensor[T·B, Q, C+1]`` (last = no-object) and ``boxes Tensor[T·B, Q, 4]``
            (normalised cxcywh), frames t-major.
        """
        self._check_input(x)
        feats = [f.flatten(0, 1) for f in self.feature_extractor(x)]  # each [T*B, C_l, H_l, W_l]
        logits, boxes = self.head(feats)  # [L, T*B, Q, C+1], [L, T*B, Q, 4]
        return logits[-1], boxes[-1]

    @torch.jit.export
    def detect(self, x: Tensor, score_thresh: float = 0.1, nms_thresh: float = 0.5,
               max_detections: int = 100) -> list[Tensor]:
        """Detections of every bin: T·B tensors ``[n, 6]`` in t-major order (frame index t·B + b).

        Rows ``(x1, y1, x2, y2, score, class_idx)``: xyxy network pixels clipped to the image, class_idx in
        0..C−1 (as a float), scores descending, at most ``max_detections`` rows; ``nms_thresh >= 1``
        disables NMS.
        """
        logits, boxes = self.forward(x)
        return decode_set_predictions(logits, boxes, x.shape[3], x.shape[4], score_thresh, nms_thresh,
                                      max_detections, self.top_k)

    @torch.jit.ignore
    def set_targets(self, targets: list[Tensor], height: int, width: int) -> list[dict[str, Tensor]]:
        """``Tensor[n, 5]`` rows (x1, y1, x2, y2, class_idx) in network pixels -> DETR targets
        (``labels`` int64, ``boxes`` normalised cxcywh)."""
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        out = []
        for tg in targets:
            s = scale.to(tg.device)
            out.append({"labels": tg[:, 4].round().to(torch.int64),
                        "boxes": box_xyxy_to_cxcywh(tg[:, :4].float() / s)})
        return out

    @torch.jit.ignore
    def compute_loss(self, x: Tensor, targets: list[list[Tensor]],
                     frame_is_labeled: Tensor) -> dict[str, Tensor]:
        """Losses of a chunk: the backbone runs on every bin, head and losses only on labelled bins.

        Args:
            x: ``Tensor[T, B, C, H, W]``.
            targets: T × B lists of ``Tensor[n, 5]`` rows ``(x1, y1, x2, y2, class_idx)``, xyxy network
                pixels, class_idx in 0..C−1 (``n`` may be 0).
            frame_is_labeled: ``Tensor[T, B]`` bool.

        Returns:
            ``loss`` (weighted sum: CE ×``loss_ce``, L1 ×``loss_bbox``, GIoU ×``loss_giou``, same weights for
            auxiliary layers), the unweighted parts ``loss_ce``, ``loss_bbox``, ``loss_giou``,
            ``cardinality_error`` (and ``_i`` for auxiliary layer i), and the slot diagnostics
            ``slot_recall``, ``slot_precision``, ``slot_tnr``, ``slot_class_acc`` (see
            :func:`evdet.models.set_criterion.slot_metrics`). With no labelled bin: zeros still connected
            to every parameter.

        Raises:
            ValueError: shapes of ``targets`` / ``frame_is_labeled`` disagree with x, or a bad box row
                (its t, b and row index are given).
        """
        height, width = x.shape[3], x.shape[4]
        feats, idx, frame_targets = self._labeled_frames(x, targets, frame_is_labeled)
        if idx.numel() == 0:
            return self._zero_losses(("loss", "loss_ce", "loss_bbox", "loss_giou"))
        set_targets = self.set_targets(frame_targets, height, width)
        logits, boxes = self.head([f[idx] for f in feats])  # [L, N, Q, C+1], [L, N, Q, 4]
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
    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter groups: backbone at ``lr``, head at ``lr · head_lr_mult``; each split into
        weights (decay) and 1-D parameters (no decay, flagged ``"no_decay": True``)."""
        groups = []
        for module, group_lr in ((self.feature_extractor, lr), (self.head, lr * self.head_lr_mult)):
            params = [p for p in module.parameters() if p.requires_grad]
            groups.append({"params": [p for p in params if p.ndim >= 2], "lr": group_lr, "no_decay": False})
            groups.append({"params": [p for p in params if p.ndim < 2], "lr": group_lr, "no_decay": True})
        return [g for g in groups if g["params"]]

    @torch.jit.ignore
    def map_cls_weights(self, src_state_dict: dict[str, Tensor], old_classes: list[str],
                        new_classes: list[str]) -> None:
        """Load ``src_state_dict`` (a set detector with classes ``old_classes``) into this detector (classes
        ``new_classes``), remapping the class logits by name.

        No-object and the classes present in both lists get the source weights; classes only in
        ``new_classes`` keep their current weights. Every other tensor is copied as is.

        Raises:
            ValueError: ``new_classes`` does not have ``num_classes`` names, ``old_classes`` does not match
                the source logits, or a non-class tensor has a different shape (key given).
        """
        if len(new_classes) != self.num_classes:
            raise ValueError(f"map_cls_weights: new_classes has {len(new_classes)} names, the model has "
                             f"{self.num_classes} classes")
        own = self.state_dict()
        cls_keys = ("head.class_embed.weight", "head.class_embed.bias")
        with torch.no_grad():
            for key, value in src_state_dict.items():
                if key not in own:
                    continue
                if key in cls_keys:
                    if value.shape[0] != len(old_classes) + 1:
                        raise ValueError(f"map_cls_weights: {key} has {value.shape[0]} rows, expected "
                                         f"{len(old_classes)} old classes + 1")
                    dst = own[key]
                    dst[-1] = value[-1]
                    for j, name in enumerate(new_classes):
                        if name in old_classes:
                            dst[j] = value[old_classes.index(name)]
                elif own[key].shape != value.shape:
                    raise ValueError(f"map_cls_weights: {key} has shape {list(value.shape)} in the source, "
                                     f"{list(own[key].shape)} here")
                else:
                    own[key].copy_(value)
