"""Anchor head (SPEC 5, ``--head anchor``): anchor pyramid + :class:`BoxHead`, softmax focal loss, decoding.

The :class:`evdet.models.head.DetectionHead` contract: ``forward`` gives ``[loc, cls]`` (SSD deltas and
class logits, background last), ``detect`` decodes them (top-k over anchors × classes, class-wise NMS),
``loss`` matches ground truth to anchors (IoU thresholds, low-quality matches) and returns the focal and
smooth-L1 losses. TorchScript-able.
"""

from __future__ import annotations

from typing import Any, Union

import torch
from torch import Tensor, nn

from evdet.models.anchors import Anchors, batched_decode, encode
from evdet.models.box_head import BoxHead
from evdet.models.focal_loss import smooth_l1_loss, softmax_focal_loss
from evdet.models.head import ClassLogitLayer, DetectionHead


class AnchorHead(DetectionHead):
    """Anchor-based single-stage head shared by all feature levels.

    Args:
        channels: channels of every feature level (the backbone's ``channels``). The towers are shared by
            the levels: levels of different widths (e.g. RVT's stages) are first projected to ``width``
            channels by a 1×1 conv each (``input_proj.{l}``); levels of equal width are used as they are.
        strides: the backbone's ``strides`` (one per level; anchors use the true stride of each level,
            computed from the image size and the level's cells covering it: :mod:`evdet.models.anchors`).
        num_classes: foreground classes C (the head predicts C+1 logits, background last).
        anchor_list: ``"PSEE_ANCHORS"``, ``"COCO_ANCHORS"`` or a list of ``(ratio w/h, scale)``.
        base_anchor_size: anchor base size of the first level (pixels); level l uses ``· 2^l``.
        fg_iou_threshold, bg_iou_threshold, allow_low_quality_matches: matching (``anchors.encode``).
        focal_gamma, focal_alpha: focal loss parameters.
        num_layers: conv layers in each head tower.
        top_k: candidates kept per frame before NMS at decoding.
        background_prior: P(background) of every anchor at initialisation.
        width: channels of the towers when the levels' widths differ (None: the largest of them).

    Raises:
        ValueError: ``width`` given for levels of equal width, ``channels`` and ``strides`` of different
            lengths, unknown anchor list name.
    """

    loss_names = ("loss", "loss_cls", "loss_box")

    def __init__(self, channels: list[int], strides: list[int], num_classes: int,
                 anchor_list: Union[str, list[tuple[float, float]]] = "PSEE_ANCHORS",
                 base_anchor_size: float = 32.0, fg_iou_threshold: float = 0.5, bg_iou_threshold: float = 0.3,
                 allow_low_quality_matches: bool = True, focal_gamma: float = 2.0,
                 focal_alpha: float | None = None, num_layers: int = 1, top_k: int = 500,
                 background_prior: float = 0.99, width: int | None = None):
        super().__init__(num_classes)
        channels = [int(c) for c in channels]
        if len(set(channels)) == 1:
            if width is not None and width != channels[0]:
                raise ValueError(f"AnchorHead: width {width} given for levels of equal width {channels}")
            width = channels[0]
            self.input_proj = nn.ModuleList()
        else:
            width = max(channels) if width is None else int(width)
            self.input_proj = nn.ModuleList([nn.Conv2d(c, width, 1) for c in channels])
        if len(strides) != len(channels):
            raise ValueError(f"AnchorHead: {len(channels)} levels but {len(strides)} strides")
        if not 0.0 <= bg_iou_threshold <= fg_iou_threshold <= 1.0:
            raise ValueError(f"AnchorHead: need 0 <= bg_iou_threshold ({bg_iou_threshold}) <= "
                             f"fg_iou_threshold ({fg_iou_threshold}) <= 1")
        self.anchors = Anchors(len(channels), anchor_list, base_anchor_size, list(strides))
        self.box_head = BoxHead(width, self.anchors.num_anchors, num_classes, num_layers,
                                background_prior)
        self.fg_iou_threshold = fg_iou_threshold
        self.bg_iou_threshold = bg_iou_threshold
        self.allow_low_quality_matches = allow_low_quality_matches
        self.focal_gamma = focal_gamma
        self.focal_alpha = focal_alpha
        self.top_k = top_k

    def _levels(self, features: list[Tensor]) -> list[Tensor]:
        """The features at the towers' width (projected when the levels' widths differ)."""
        if len(self.input_proj) == 0:
            return features
        out: list[Tensor] = []
        for i, proj in enumerate(self.input_proj):
            out.append(proj(features[i]))
        return out

    def _anchors_for(self, features: list[Tensor], image_height: int, image_width: int) -> Tensor:
        sizes = [[f.shape[-2], f.shape[-1]] for f in features]
        return self.anchors(sizes, image_height, image_width)

    def forward(self, features: list[Tensor], image_height: int, image_width: int) -> list[Tensor]:
        """``[loc Tensor[N, A, 4], cls Tensor[N, A, C+1]]``: SSD deltas and class logits (background last)
        of the A anchors of all levels (order level, row, column, anchor: :class:`Anchors`)."""
        loc, cls = self.box_head(self._levels(features))
        return [loc, cls]

    def detect(self, features: list[Tensor], image_height: int, image_width: int, score_thresh: float,
               nms_thresh: float, max_detections: int) -> list[Tensor]:
        """Per-frame detections (see :func:`evdet.models.anchors.batched_decode`)."""
        loc, cls = self.box_head(self._levels(features))
        anchors = self._anchors_for(features, image_height, image_width)
        return batched_decode(loc, cls, anchors, image_height, image_width, score_thresh, nms_thresh,
                              max_detections, self.top_k)

    @torch.jit.ignore
    def loss(self, features: list[Tensor], targets: list[Tensor], image_height: int,
             image_width: int) -> dict[str, Tensor]:
        """``{"loss", "loss_cls", "loss_box"}``: focal and smooth-L1 sums divided by max(1, number of
        positive anchors)."""
        loc, cls = self.box_head(self._levels(features))  # [N, A, 4], [N, A, C+1]
        anchors = self._anchors_for(features, image_height, image_width)
        loc_t, cls_t = encode(anchors, targets, self.num_classes, self.fg_iou_threshold,
                              self.bg_iou_threshold, self.allow_low_quality_matches)
        pos = (cls_t >= 0) & (cls_t < self.num_classes)  # [N, A]
        norm = pos.sum().clamp(min=1).to(loc.dtype)
        loss_cls = softmax_focal_loss(cls.reshape(-1, cls.shape[-1]), cls_t.reshape(-1), self.focal_gamma,
                                      self.focal_alpha) / norm
        loss_box = smooth_l1_loss(loc[pos], loc_t[pos]) / norm
        return {"loss": loss_cls + loss_box, "loss_cls": loss_cls, "loss_box": loss_box}

    @torch.jit.ignore
    def output_descriptions(self) -> list[tuple[str, str]]:
        return [("loc", "Tensor[T*B, A, 4] SSD box deltas (dx, dy, dw, dh; variances 0.1, 0.1, 0.2, 0.2) "
                        "relative to decoding.anchors_xyxy (network pixels): cx = ax + dx*0.1*aw, "
                        "w = aw*exp(dw*0.2)"),
                ("cls", "Tensor[T*B, A, C+1] class logits, background last; scores = softmax over the last "
                        "dim")]

    @torch.jit.ignore
    def decoding_constants(self, features: list[Tensor], image_height: int,
                           image_width: int) -> dict[str, Any]:
        """The A anchors (xyxy network pixels, order level, row, column, anchor) and the decoding rule."""
        anchors = self._anchors_for(features, image_height, image_width)
        return {"anchors_xyxy": anchors.tolist(), "variances": [0.1, 0.2], "top_k": int(self.top_k),
                "score": "softmax over C+1 classes (background last); top-k over anchors x classes, "
                         "class-wise NMS"}

    @torch.jit.ignore
    def class_logit_layers(self) -> list[ClassLogitLayer]:
        """The class predictor: one block of C + 1 rows (background last) per anchor."""
        return [ClassLogitLayer(("box_head.cls_pred.weight", "box_head.cls_pred.bias"),
                                groups=self.anchors.num_anchors, background=True)]
