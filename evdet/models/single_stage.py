"""Recurrent single-stage detector: ConvRNN backbone → anchor pyramid + BoxHead (SPEC 5).

TorchScript-able: ``torch.jit.script(detector)`` exposes ``forward``, ``detect``, ``reset``,
``reset_all`` and ``detach``.
"""

from typing import Union

import torch
from torch import Tensor, nn

from evdet.models.anchors import Anchors, batched_decode, encode
from evdet.models.box_head import BoxHead
from evdet.models.detector import RecurrentDetector
from evdet.models.focal_loss import smooth_l1_loss, softmax_focal_loss


class SingleStageDetector(RecurrentDetector):
    """Recurrent anchor-based detector.

    Args:
        feature_extractor: a backbone (``forward(Tensor[T, B, C, H, W]) -> list[Tensor[T, B, C_l, H_l,
            W_l]]`` with ``channels``, ``strides``, ``reset``, ``reset_all``, ``detach``); None builds
            ``backbone`` from ``BACKBONES`` with ``feature_base`` and ``feature_channels_out``.
        in_channels: input channels C.
        num_classes: foreground classes (the head predicts C+1 logits, background at 0).
        feature_base, feature_channels_out: ``base`` and ``cout`` of the built backbone.
        anchor_list: ``"PSEE_ANCHORS"``, ``"COCO_ANCHORS"`` or a list of ``(ratio w/h, scale)``.
        backbone: name in ``BACKBONES`` used when ``feature_extractor`` is None.
        base_anchor_size: anchor base size of the first level (pixels); level l uses ``· 2^l``.
        fg_iou_threshold, bg_iou_threshold, allow_low_quality_matches: matching (``anchors.encode``).
        focal_gamma, focal_alpha: focal loss parameters.
        head_layers: conv layers in each head tower.
        top_k: candidates kept per frame before NMS at decoding.

    Raises:
        ValueError: unknown backbone or anchor list name, levels with different channel counts.
    """

    def __init__(self, feature_extractor: nn.Module | None = None, in_channels: int = 2,
                 num_classes: int = 2, feature_base: int = 16, feature_channels_out: int = 256,
                 anchor_list: Union[str, list[tuple[float, float]]] = "PSEE_ANCHORS",
                 backbone: str = "Vanilla",
                 base_anchor_size: float = 32.0, fg_iou_threshold: float = 0.5, bg_iou_threshold: float = 0.3,
                 allow_low_quality_matches: bool = True, focal_gamma: float = 2.0,
                 focal_alpha: float | None = None, head_layers: int = 1, top_k: int = 500):
        super().__init__(feature_extractor, in_channels, num_classes, backbone, feature_base,
                         feature_channels_out)
        channels = list(self.feature_extractor.channels)
        if len(set(channels)) != 1:
            raise ValueError(f"SingleStageDetector: the shared head needs equal channels on every level, got "
                             f"{channels}")
        self.anchors = Anchors(len(channels), anchor_list, base_anchor_size)
        self.box_head = BoxHead(channels[0], self.anchors.num_anchors, num_classes, head_layers)
        self.fg_iou_threshold = fg_iou_threshold
        self.bg_iou_threshold = bg_iou_threshold
        self.allow_low_quality_matches = allow_low_quality_matches
        self.focal_gamma = focal_gamma
        self.focal_alpha = focal_alpha
        self.top_k = top_k

    def _anchors_for(self, feats: list[Tensor], height: int, width: int) -> Tensor:
        sizes = [[f.shape[-2], f.shape[-1]] for f in feats]
        return self.anchors(sizes, height, width)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Run the backbone (updating its state) and the head on every bin.

        Args:
            x: ``Tensor[T, B, C, H, W]``.

        Returns:
            ``loc Tensor[T·B, A, 4]`` (SSD deltas) and ``cls Tensor[T·B, A, C+1]`` logits, frames t-major.
        """
        self._check_input(x)
        feats = [f.flatten(0, 1) for f in self.feature_extractor(x)]  # each [T*B, C_l, H_l, W_l]
        return self.box_head(feats)

    @torch.jit.export
    def detect(self, x: Tensor, score_thresh: float = 0.1, nms_thresh: float = 0.5,
               max_detections: int = 100) -> list[Tensor]:
        """Detections of every bin: T·B tensors ``[n, 6]`` in t-major order (frame index t·B + b).

        Rows ``(x1, y1, x2, y2, score, class_idx)``: xyxy network pixels clipped to the image,
        class_idx in 0..C−1 (as a float), scores descending, at most ``max_detections`` rows.
        """
        self._check_input(x)
        feats = [f.flatten(0, 1) for f in self.feature_extractor(x)]  # each [T*B, C_l, H_l, W_l]
        loc, cls = self.box_head(feats)
        anchors = self._anchors_for(feats, x.shape[3], x.shape[4])
        return batched_decode(loc, cls, anchors, x.shape[3], x.shape[4], score_thresh, nms_thresh,
                              max_detections, self.top_k)

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
            ``{"loss", "loss_cls", "loss_box"}`` scalars; focal and smooth-L1 sums divided by
            max(1, number of positive anchors). With no labelled bin: zeros still connected to every
            parameter.

        Raises:
            ValueError: shapes of ``targets`` / ``frame_is_labeled`` disagree with x, or a bad box row
                (its t, b and row index are given).
        """
        height, width = x.shape[3], x.shape[4]
        feats, idx, frame_targets = self._labeled_frames(x, targets, frame_is_labeled)
        if idx.numel() == 0:
            return self._zero_losses(("loss", "loss_cls", "loss_box"))
        loc, cls = self.box_head([f[idx] for f in feats])  # [N, A, 4], [N, A, C+1]
        anchors = self._anchors_for(feats, height, width)
        loc_t, cls_t = encode(anchors, frame_targets, self.fg_iou_threshold, self.bg_iou_threshold,
                              self.allow_low_quality_matches)
        pos = cls_t > 0  # [N, A]
        norm = pos.sum().clamp(min=1).to(loc.dtype)
        loss_cls = softmax_focal_loss(cls.reshape(-1, cls.shape[-1]), cls_t.reshape(-1), self.focal_gamma,
                                      self.focal_alpha) / norm
        loss_box = smooth_l1_loss(loc[pos], loc_t[pos]) / norm
        return {"loss": loss_cls + loss_box, "loss_cls": loss_cls, "loss_box": loss_box}

    @torch.jit.ignore
    def map_cls_weights(self, src_state_dict: dict[str, Tensor], old_classes: list[str],
                        new_classes: list[str]) -> None:
        """Load ``src_state_dict`` (a detector with classes ``old_classes``) into this detector (classes
        ``new_classes``), remapping the class logits by name for every anchor.

        Background and the classes present in both lists get the source weights; classes only in
        ``new_classes`` keep their current weights (the 0.99-background prior at construction). Every
        other tensor is copied as is.

        Raises:
            ValueError: ``new_classes`` does not have ``num_classes`` names, ``old_classes`` does not
                match the source logits, or a non-class tensor has a different shape (key given).
        """
        if len(new_classes) != self.num_classes:
            raise ValueError(f"map_cls_weights: new_classes has {len(new_classes)} names, the model has "
                             f"{self.num_classes} classes")
        own = self.state_dict()
        a = self.anchors.num_anchors
        cls_keys = ("box_head.cls_pred.weight", "box_head.cls_pred.bias")
        with torch.no_grad():
            for key, value in src_state_dict.items():
                if key not in own:
                    continue
                if key in cls_keys:
                    if value.shape[0] != a * (len(old_classes) + 1):
                        raise ValueError(f"map_cls_weights: {key} has {value.shape[0]} rows, expected "
                                         f"{a} anchors x ({len(old_classes)} old classes + 1)")
                    src = value.view(a, len(old_classes) + 1, *value.shape[1:])
                    dst = own[key].view(a, self.num_classes + 1, *own[key].shape[1:])
                    dst[:, 0] = src[:, 0]
                    for j, name in enumerate(new_classes):
                        if name in old_classes:
                            dst[:, j + 1] = src[:, old_classes.index(name) + 1]
                elif own[key].shape != value.shape:
                    raise ValueError(f"map_cls_weights: {key} has shape {list(value.shape)} in the source, "
                                     f"{list(own[key].shape)} here")
                else:
                    own[key].copy_(value)
