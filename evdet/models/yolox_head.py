"""YOLOX head (``--head yolox``): RVT's PAFPN + decoupled YOLOX head, SimOTA, YOLOX losses and decoding.

The :class:`evdet.models.head.DetectionHead` contract: ``forward`` gives ``[pred]``, RVT's decoded head
output ``Tensor[N, A, 5 + C]`` (cx, cy, w, h network pixels, objectness probability, independent class
probabilities; anchor order of :mod:`evdet.models.yolox_decoding`); ``detect`` post-processes it as RVT
(:func:`evdet.models.yolox_decoding.yolox_postprocess`); ``loss`` assigns anchors by SimOTA and returns the
YOLOX losses (:mod:`evdet.models.yolox_loss`). TorchScript-able.

Parameter names follow RVT's checkpoints: RVT's ``mdl.fpn.*`` is ``fpn.*`` here and ``mdl.yolox_head.*`` is
``yolox_head.*`` (relative to this head, i.e. ``head.fpn.*`` / ``head.yolox_head.*`` in a detector).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from evdet.models.head import ClassLogitLayer, DetectionHead
from evdet.models.memory_format import channels_last
from evdet.models.yolox_blocks import BaseConv, conv_block
from evdet.models.yolox_decoding import anchor_grid, decode_boxes, yolox_postprocess
from evdet.models.yolox_loss import yolox_loss
from evdet.models.yolox_pafpn import YoloxPAFPN

#: prior probability of the class and objectness outputs at initialisation (focal-loss prior)
PRIOR_PROB = 0.01


def yolox_hidden_dim(in_channels: list[int]) -> int:
    """Width of the decoupled head: RVT's ``int(256 · c_last / 1024)`` (YOLOX's width scaling)."""
    return int(256 * (in_channels[-1] / 1024))


def select_levels(strides: list[int], in_strides: list[int] | None, who: str = "YoloxHead") -> list[int]:
    """Indices of the three backbone levels that feed a feature pyramid (the YOLOX PAFPN, the RT-DETR
    hybrid encoder).

    Args:
        strides: the backbone's strides per level.
        in_strides: the three strides wanted (e.g. ``[8, 16, 32]``), or None: the first three levels of
            stride >= 8 (RVT's stages 2-4; Vanilla's levels 0-2).
        who: the head named in error messages.

    Raises:
        ValueError: a wanted stride the backbone lacks, fewer than three levels, or strides that do not
            double from level to level (the PAFPN upsamples by 2).
    """
    strides = [int(s) for s in strides]
    if in_strides is None:
        idx = [i for i, s in enumerate(strides) if s >= 8][:3]
    else:
        missing = [s for s in in_strides if int(s) not in strides]
        if missing:
            raise ValueError(f"{who}: in_strides {list(in_strides)}: the backbone has no level of stride "
                             f"{missing} (its strides are {strides})")
        idx = [strides.index(int(s)) for s in in_strides]
    if len(idx) != 3:
        raise ValueError(f"{who}: needs three levels of stride >= 8, the backbone's strides are "
                         f"{strides}")
    chosen = [strides[i] for i in idx]
    if chosen[1] != 2 * chosen[0] or chosen[2] != 2 * chosen[1]:
        raise ValueError(f"{who}: the three levels must have strides s, 2s, 4s, got {chosen}")
    return idx


class YoloxDecoupledHead(nn.Module):
    """YOLOX's decoupled head (RVT's ``YOLOXHead`` layers): per level a 1×1 stem to ``hidden`` channels,
    then a class branch (two 3×3 convs, 1×1 to C logits) and a box branch (two 3×3 convs, then 1×1 to the
    4 box outputs and 1×1 to the objectness logit). Biases of the class and objectness layers give the
    probability :data:`PRIOR_PROB` at start.

    Args:
        in_channels: channels of each level. num_classes: C. depthwise, act: as :class:`YoloxPAFPN`.
    """

    def __init__(self, in_channels: list[int], num_classes: int, depthwise: bool = False, act: str = "silu"):
        super().__init__()
        hidden = yolox_hidden_dim(in_channels)
        if hidden < 1:
            raise ValueError(f"YoloxHead: the coarsest level needs >= 4 channels (head width "
                             f"int(256 * c / 1024)), got {list(in_channels)}")
        self.stems = nn.ModuleList()
        self.cls_convs = nn.ModuleList()
        self.reg_convs = nn.ModuleList()
        self.cls_preds = nn.ModuleList()
        self.reg_preds = nn.ModuleList()
        self.obj_preds = nn.ModuleList()
        for c in in_channels:
            self.stems.append(BaseConv(int(c), hidden, 1, 1, act=act))
            self.cls_convs.append(nn.Sequential(conv_block(hidden, hidden, 3, 1, depthwise, act),
                                                conv_block(hidden, hidden, 3, 1, depthwise, act)))
            self.reg_convs.append(nn.Sequential(conv_block(hidden, hidden, 3, 1, depthwise, act),
                                                conv_block(hidden, hidden, 3, 1, depthwise, act)))
            self.cls_preds.append(nn.Conv2d(hidden, num_classes, 1))
            self.reg_preds.append(nn.Conv2d(hidden, 4, 1))
            self.obj_preds.append(nn.Conv2d(hidden, 1, 1))
        prior_bias = -math.log((1 - PRIOR_PROB) / PRIOR_PROB)
        with torch.no_grad():
            for conv in list(self.cls_preds) + list(self.obj_preds):
                conv.bias.fill_(prior_bias)

    def forward(self, features: list[Tensor]) -> Tensor:
        """Levels ``Tensor[N, c_l, H_l, W_l]`` -> raw outputs ``Tensor[N, A, 5 + C]`` (dx, dy, dw, dh,
        objectness logit, C class logits), anchors level by level, row-major."""
        outs: list[Tensor] = []
        for k, (stem, cls_conv, reg_conv, cls_pred, reg_pred, obj_pred) in enumerate(
                zip(self.stems, self.cls_convs, self.reg_convs, self.cls_preds, self.reg_preds,  # noqa: B905
                    self.obj_preds)):  # (TorchScript zips ModuleLists but has no strict=; equal lengths)
            x = stem(features[k])
            cls_out = cls_pred(cls_conv(x))  # [N, C, H_l, W_l]
            reg_feat = reg_conv(x)
            out = torch.cat([reg_pred(reg_feat), obj_pred(reg_feat), cls_out], 1)  # [N, 5+C, H_l, W_l]
            outs.append(out.flatten(start_dim=2))  # [N, 5+C, H_l*W_l]
        return torch.cat(outs, dim=2).permute(0, 2, 1)  # [N, A, 5+C]


class YoloxHead(DetectionHead):
    """PAFPN + decoupled YOLOX head over three backbone levels (strides s, 2s, 4s).

    Args:
        channels: the backbone's ``channels`` per level.
        strides: the backbone's ``strides`` per level (the nominal strides are used for decoding, as
            RVT, whose input is padded to a multiple of 32).
        num_classes: C (independent sigmoids, no background class).
        in_strides: the strides of the three levels used (default: the first three of stride >= 8).
        depth: PAFPN depth multiplier (``round(3·depth)`` bottlenecks per CSP layer).
        depthwise: depthwise-separable 3×3 convolutions.
        act: activation (``silu``, ``relu``, ``lrelu``).
        use_l1: add YOLOX's L1 loss on the raw box outputs.
        class_score_only: ``detect`` scores with the best class probability alone (RVT's evaluation)
            instead of objectness × class probability (YOLOX's definition, the default).

    Raises:
        ValueError: levels that do not fit (:func:`select_levels`), bad ``depth`` or activation.
    """

    #: ``loss_names`` depends on ``use_l1`` (an instance attribute TorchScript need not see)
    __jit_ignored_attributes__ = ["loss_names"]

    def __init__(self, channels: list[int], strides: list[int], num_classes: int,
                 in_strides: list[int] | None = None, depth: float = 0.33, depthwise: bool = False,
                 act: str = "silu", use_l1: bool = False, class_score_only: bool = False):
        super().__init__(num_classes)
        if len(channels) != len(strides):
            raise ValueError(f"YoloxHead: {len(channels)} levels but {len(strides)} strides")
        wanted = None if in_strides is None else list(in_strides)
        self.levels: list[int] = select_levels(list(strides), wanted)
        in_channels = [int(channels[i]) for i in self.levels]
        self.level_strides: list[int] = [int(strides[i]) for i in self.levels]
        self.fpn = YoloxPAFPN(in_channels, depth, depthwise, act)
        self.yolox_head = YoloxDecoupledHead(in_channels, num_classes, depthwise, act)
        self.use_l1 = bool(use_l1)
        self.class_score_only = bool(class_score_only)
        # RVT's inference runs the PAFPN and head bin by bin: the same batch sizes, the same float32 kernels
        self.per_bin_inference = True
        self.loss_names = ("loss", "loss_iou", "loss_obj", "loss_cls") + (("loss_l1",) if use_l1 else ())

    def _raw(self, features: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Raw outputs ``Tensor[N, A, 5 + C]``, anchor cells ``Tensor[A, 2]`` and strides ``Tensor[A]``."""
        # channels-last, as RVT's backbone hands its stages over (permuted NHWC): the convolutions then run
        # the same kernels as RVT's, so that float32 results are RVT's to the bit, not only to rounding
        fpn_in = [channels_last(features[i]) for i in self.levels]
        fpn_out = self.fpn(fpn_in)
        raw = self.yolox_head(fpn_out)
        sizes = [[f.shape[-2], f.shape[-1]] for f in fpn_out]
        grid, anchor_strides = anchor_grid(sizes, self.level_strides, raw.device, raw.dtype)
        return raw, grid, anchor_strides

    def forward(self, features: list[Tensor], image_height: int, image_width: int) -> list[Tensor]:
        """``[pred Tensor[N, A, 5 + C]]``: decoded cx, cy, w, h (network pixels), objectness probability,
        class probabilities (RVT's head output)."""
        raw, grid, anchor_strides = self._raw(features)
        boxes = decode_boxes(raw[..., :4], grid, anchor_strides)
        return [torch.cat((boxes, raw[..., 4:].sigmoid()), dim=-1)]

    def detect(self, features: list[Tensor], image_height: int, image_width: int, score_thresh: float,
               nms_thresh: float, max_detections: int) -> list[Tensor]:
        """Per-frame detections (:func:`evdet.models.yolox_decoding.yolox_postprocess`; the score is
        objectness × class probability, or the class probability with ``class_score_only``)."""
        pred = self.forward(features, image_height, image_width)[0]
        return yolox_postprocess(pred, image_height, image_width, score_thresh, nms_thresh, max_detections,
                                 self.class_score_only)

    @torch.jit.ignore
    def loss(self, features: list[Tensor], targets: list[Tensor], image_height: int,
             image_width: int) -> dict[str, Tensor]:
        """``{"loss", "loss_iou", "loss_obj", "loss_cls"[, "loss_l1"], "fg_per_gt"}``
        (:func:`evdet.models.yolox_loss.yolox_loss`)."""
        raw, grid, anchor_strides = self._raw(features)
        boxes = decode_boxes(raw[..., :4], grid, anchor_strides)
        return yolox_loss(boxes, raw[..., 4], raw[..., 5:], raw[..., :4], grid, anchor_strides, targets,
                          self.use_l1)

    @torch.jit.ignore
    def output_descriptions(self) -> list[tuple[str, str]]:
        return [("pred", "Tensor[T*B, A, 5+C]: cx, cy, w, h (network pixels), objectness probability, C "
                         "independent class probabilities; anchors level by level (decoding.strides), "
                         "row-major")]

    @torch.jit.ignore
    def decoding_constants(self, features: list[Tensor], image_height: int,
                           image_width: int) -> dict[str, Any]:
        """The levels (strides, sizes) and RVT's post-processing rule."""
        sizes = [[int(features[i].shape[-2]), int(features[i].shape[-1])] for i in self.levels]
        return {"strides": list(self.level_strides), "level_sizes": sizes,
                "score": "class_probability" if self.class_score_only else "objectness * class_probability",
                "postprocess": "best class per anchor; keep objectness * class probability >= score_thresh; "
                               "class-wise NMS ranked by objectness * class probability; xyxy = (cx -+ w/2, "
                               "cy -+ h/2) clipped to the image after NMS"}

    @torch.jit.ignore
    def class_logit_layers(self) -> list[ClassLogitLayer]:
        """The class predictor of every level: C rows each, no background row."""
        return [ClassLogitLayer((f"yolox_head.cls_preds.{k}.weight", f"yolox_head.cls_preds.{k}.bias"))
                for k in range(len(self.levels))]
