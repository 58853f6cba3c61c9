"""RT-DETR set-prediction head (``--head rtdetr``; Zhao et al. 2024, as EvRT-DETR puts it on recurrent
event features): hybrid encoder, IoU-aware query selection, deformable decoder with box refinement,
denoising training and varifocal + L1 + GIoU losses. TorchScript-able.

The head is stateless per bin (the memory lives in the backbone). Parts:
:class:`evdet.models.hybrid_encoder.HybridEncoder` over three backbone levels (strides s, 2s, 4s),
:class:`evdet.models.rtdetr_decoder.RTDETRDecoder`, :mod:`evdet.models.denoising` and
:class:`evdet.models.rtdetr_criterion.RTDETRCriterion`. Contract (:class:`evdet.models.head.DetectionHead`):
``forward`` gives the final layer's ``[logits Tensor[N, K, C], boxes Tensor[N, K, 4]]`` (sigmoid class
logits, no background; normalised cxcywh), ``detect`` the top-``top_k`` (query, class) pairs by sigmoid
score (no NMS unless ``nms``), ``loss`` the weighted sum over every prediction set.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from evdet.models.decoding import decode_query_boxes
from evdet.models.denoising import denoising_groups
from evdet.models.head import ClassLogitLayer, DetectionHead
from evdet.models.hybrid_encoder import HybridEncoder
from evdet.models.matcher import HungarianMatcher
from evdet.models.rtdetr_criterion import RTDETRCriterion
from evdet.models.rtdetr_decoder import RTDETRDecoder
from evdet.models.set_criterion import matched_pairs, normalised_targets
from evdet.models.yolox_head import select_levels
from evdet.ops import box_cxcywh_to_xyxy, box_iou


def loss_kind(key: str) -> str:
    """The loss a key of :class:`RTDETRCriterion`'s output is an instance of: ``loss_vfl_dn_2`` ->
    ``loss_vfl``."""
    return "_".join(key.split("_")[:2])


class RTDETRHead(DetectionHead):
    """RT-DETR head over three backbone levels.

    Args:
        channels, strides: the backbone's levels.
        num_classes: C (independent sigmoids).
        in_strides: the strides of the three levels used (default: the first three of stride >= 8).
        hidden_dim: D, width of encoder and decoder (a multiple of 4 and of ``nheads``).
        nheads: attention heads.
        enc_layers: AIFI transformer layers on the coarsest level.
        enc_ffn: their feed-forward width.
        depth_mult: RepVGG blocks per CCFM fusion block, ``round(3 · depth_mult)``.
        expansion: CCFM hidden width relative to D.
        act: CCFM activation.
        num_queries: matching queries K (at most the number of tokens of the three levels).
        dec_layers: decoder layers.
        dec_ffn: decoder feed-forward width.
        dropout: encoder and decoder dropout (RT-DETR: 0).
        num_points: deformable sampling points per head and level.
        num_denoising: denoising queries per batch (0: no denoising).
        label_noise_ratio, box_noise_scale: denoising noise.
        cost_class, cost_bbox, cost_giou: Hungarian matching costs (focal class cost).
        matcher_alpha, matcher_gamma: the focal cost's parameters.
        vfl_alpha, vfl_gamma: the varifocal loss's parameters.
        loss_vfl, loss_bbox, loss_giou: loss weights (every prediction set).
        aux_loss: losses of the earlier layers and of the proposals too.
        top_k: (query, class) pairs kept per frame when decoding.
        nms: apply class-wise NMS when decoding (set prediction needs none).
        grad_clip: gradient-norm clip this head needs (read by the trainer).
        lr_mult: learning rate of the head relative to the backbone's.

    Raises:
        ValueError: levels that do not fit, bad sizes or weights.
    """

    loss_names = ("loss", "loss_vfl", "loss_bbox", "loss_giou")

    def __init__(self, channels: list[int], strides: list[int], num_classes: int,
                 in_strides: list[int] | None = None, hidden_dim: int = 256, nheads: int = 8,
                 enc_layers: int = 1, enc_ffn: int = 1024, depth_mult: float = 1.0, expansion: float = 1.0,
                 act: str = "silu", num_queries: int = 300, dec_layers: int = 6, dec_ffn: int = 1024,
                 dropout: float = 0.0, num_points: int = 4, num_denoising: int = 100,
                 label_noise_ratio: float = 0.5, box_noise_scale: float = 1.0, cost_class: float = 2.0,
                 cost_bbox: float = 5.0, cost_giou: float = 2.0, matcher_alpha: float = 0.25,
                 matcher_gamma: float = 2.0, vfl_alpha: float = 0.75, vfl_gamma: float = 2.0,
                 loss_vfl: float = 1.0, loss_bbox: float = 5.0, loss_giou: float = 2.0, aux_loss: bool = True,
                 top_k: int = 300, nms: bool = False, grad_clip: float = 0.1, lr_mult: float = 1.0):
        super().__init__(num_classes)
        if len(channels) != len(strides):
            raise ValueError(f"RTDETRHead: {len(channels)} levels but {len(strides)} strides")
        if num_denoising < 0 or not 0.0 <= label_noise_ratio <= 1.0 or box_noise_scale < 0:
            raise ValueError(f"RTDETRHead: need num_denoising >= 0, label_noise_ratio in [0, 1], "
                             f"box_noise_scale >= 0, got {num_denoising}, {label_noise_ratio}, "
                             f"{box_noise_scale}")
        if not lr_mult > 0 or grad_clip < 0 or top_k < 1:
            raise ValueError(f"RTDETRHead: need lr_mult > 0, grad_clip >= 0, top_k >= 1, got {lr_mult}, "
                             f"{grad_clip}, {top_k}")
        weights = {"loss_vfl": float(loss_vfl), "loss_bbox": float(loss_bbox), "loss_giou": float(loss_giou)}
        if any(w < 0 for w in weights.values()):
            raise ValueError(f"RTDETRHead: loss weights must be >= 0, got {weights}")
        wanted = None if in_strides is None else list(in_strides)
        self.levels: list[int] = select_levels(list(strides), wanted, "RTDETRHead")
        in_channels = [int(channels[i]) for i in self.levels]
        self.encoder = HybridEncoder(in_channels, hidden_dim, nheads, enc_ffn, dropout, enc_layers,
                                     depth_mult, expansion, act)
        self.decoder = RTDETRDecoder([hidden_dim] * 3, num_classes, hidden_dim, num_queries, dec_layers,
                                     nheads, dec_ffn, dropout, num_points)
        matcher = HungarianMatcher(cost_class, cost_bbox, cost_giou, focal=True, alpha=matcher_alpha,
                                   gamma=matcher_gamma)
        self.criterion = RTDETRCriterion(num_classes, matcher, vfl_alpha, vfl_gamma)
        self.weight_dict = weights
        self.num_denoising = int(num_denoising)
        self.label_noise_ratio = float(label_noise_ratio)
        self.box_noise_scale = float(box_noise_scale)
        self.aux_loss = bool(aux_loss)
        self.top_k = int(top_k)
        self.nms = bool(nms)
        self.grad_clip = float(grad_clip)
        self.lr_mult = float(lr_mult)

    def _encode(self, features: list[Tensor]) -> list[Tensor]:
        return self.encoder([features[i] for i in self.levels])

    def forward(self, features: list[Tensor], image_height: int, image_width: int) -> list[Tensor]:
        """Final decoder layer: ``[logits Tensor[N, K, C], boxes Tensor[N, K, 4]]`` (sigmoid class logits;
        normalised cx, cy, w, h)."""
        logits, boxes, _, _ = self.decoder(self._encode(features))
        return [logits[-1], boxes[-1]]

    def detect(self, features: list[Tensor], image_height: int, image_width: int, score_thresh: float,
               nms_thresh: float, max_detections: int) -> list[Tensor]:
        """Per-frame detections: sigmoid scores, the ``top_k`` best (query, class) pairs, class-wise NMS at
        ``nms_thresh`` only when the head was built with ``nms`` (:func:`decode_query_boxes`)."""
        logits, boxes = self.forward(features, image_height, image_width)
        return decode_query_boxes(logits.float().sigmoid(), boxes, image_height, image_width, score_thresh,
                                  nms_thresh if self.nms else 1.0, max_detections, self.top_k)

    @torch.jit.ignore
    def loss(self, features: list[Tensor], targets: list[Tensor], image_height: int,
             image_width: int) -> dict[str, Tensor]:
        """``loss`` (the weighted sum over every prediction set: final layer, earlier layers, proposals,
        denoising), the final layer's unweighted ``loss_vfl``, ``loss_bbox``, ``loss_giou``, the other sets'
        parts under their suffixes (:mod:`evdet.models.rtdetr_criterion`), and ``matched_iou``: the mean IoU
        of the final layer's matched boxes."""
        set_targets = normalised_targets(targets, image_height, image_width)
        encoded = self._encode(features)
        dn = None
        if self.training:
            tokens = sum(int(f.shape[-2]) * int(f.shape[-1]) for f in encoded)
            dn = denoising_groups([t["labels"] for t in set_targets], [t["boxes"] for t in set_targets],
                                  self.num_classes, min(self.decoder.num_queries, tokens), self.num_denoising,
                                  self.label_noise_ratio, self.box_noise_scale)
        if dn is None:
            logits, boxes, enc_logits, enc_boxes = self.decoder(encoded)
            dn_logits = dn_boxes = None
        else:
            logits, boxes, enc_logits, enc_boxes = self.decoder(encoded, dn.labels, dn.boxes_unact,
                                                                dn.attn_mask)
            dn_logits, logits = logits[:, :, :dn.num_denoising], logits[:, :, dn.num_denoising:]
            dn_boxes, boxes = boxes[:, :, :dn.num_denoising], boxes[:, :, dn.num_denoising:]
        losses, indices = self.criterion(logits, boxes, enc_logits, enc_boxes, set_targets, dn, dn_logits,
                                         dn_boxes, self.aux_loss)
        total = boxes.sum() * 0.0 + logits.sum() * 0.0  # keeps both branches in the graph without targets
        for name, value in losses.items():
            total = total + self.weight_dict[loss_kind(name)] * value
        out = {"loss": total}
        out.update({k: v.detach() for k, v in losses.items()})
        out["matched_iou"] = self._matched_iou(boxes[-1].detach(), set_targets, indices)
        return out

    @staticmethod
    def _matched_iou(boxes: Tensor, targets: list[dict[str, Tensor]],
                     indices: list[tuple[Tensor, Tensor]]) -> Tensor:
        src, tgt = matched_pairs(boxes, targets, indices)
        if src.shape[0] == 0:
            return torch.zeros((), device=boxes.device)
        return box_iou(box_cxcywh_to_xyxy(src)[:, None], box_cxcywh_to_xyxy(tgt)[:, None]).mean()

    @torch.jit.ignore
    def output_descriptions(self) -> list[tuple[str, str]]:
        return [("logits", "Tensor[T*B, K, C] class logits of the final decoder layer (no background); "
                           "scores = sigmoid"),
                ("boxes", "Tensor[T*B, K, 4] normalised (cx, cy, w, h) in [0, 1]; multiply by (W, H, W, H)")]

    @torch.jit.ignore
    def decoding_constants(self, features: list[Tensor], image_height: int,
                           image_width: int) -> dict[str, Any]:
        return {"top_k": self.top_k, "nms": self.nms,
                "score": "sigmoid of the logits; top-k over queries x classes" +
                         ("; class-wise NMS" if self.nms else "; no NMS")}

    @torch.jit.ignore
    def class_logit_layers(self) -> list[ClassLogitLayer]:
        """The proposal and per-layer class predictors (C rows) and the denoising class embedding (C rows
        then the padding row)."""
        layers = [ClassLogitLayer(("decoder.enc_score_head.weight", "decoder.enc_score_head.bias"))]
        layers += [ClassLogitLayer((f"decoder.dec_score_head.{i}.weight", f"decoder.dec_score_head.{i}.bias"))
                   for i in range(len(self.decoder.dec_score_head))]
        layers.append(ClassLogitLayer(("decoder.denoising_class_embed.weight",), background=True))
        return layers
