"""The detection-head contract: what every head (anchor, DETR set, YOLOX, RT-DETR, ...) offers the detector.

A head is stateless from bin to bin (the recurrent memory lives in the backbone) and sees the feature
levels of N frames at once, ``features[l]: Tensor[N, C_l, H_l, W_l]`` (N = T·B, t-major), together with
the network input size ``(image_height, image_width)`` in pixels. It is built from the backbone's declared
levels (``channels``, ``strides``) and the number of classes, so any backbone combines with any head.

- ``forward(features, image_height, image_width) -> list[Tensor]``: the raw outputs (the head documents
  their layout; the detector's ``forward`` and the ONNX export return them).
- ``detect(features, image_height, image_width, score_thresh, nms_thresh, max_detections)
  -> list[Tensor[n, 6]]``: per frame rows ``(x1, y1, x2, y2, score, class_idx)``, xyxy network pixels
  clipped to the image, ``class_idx`` in 0..C−1 (as a float), scores descending.
- ``loss(features, targets, image_height, image_width) -> dict[str, Tensor]``: ``"loss"`` (the total to
  back-propagate) first, then named parts; ``targets`` are N tensors ``[n, 5]`` rows
  ``(x1, y1, x2, y2, class_idx)`` in network pixels (``n`` may be 0).
- ``loss_names``: the keys ``loss`` returns that are logged (the detector returns zeros under those names
  for a chunk without a labelled bin).
- ``class_logit_layers()``: the tensors holding per-class rows, for class remapping by name
  (:meth:`evdet.models.RecurrentDetector.map_cls_weights`).
- ``lr_mult`` (learning rate of the head relative to the backbone's) and ``grad_clip`` (gradient-norm
  clip this head needs, 0 for none): read by the trainer. ``per_bin_inference``: read by the detector
  (``forward`` and ``detect`` then see the B frames of one bin per call; outputs are concatenated along
  dim 0 in t-major order, so the contract is the same).
- ``output_descriptions()`` (per ``forward`` output a ``(name, meaning)`` pair: layout, units, how to
  decode) and
  ``decoding_constants(features, image_height, image_width)`` (what a consumer of the raw outputs needs
  besides them, e.g. the anchor boxes): written into export metadata (ONNX).

Class indices are 0..C−1 everywhere; a softmax head that predicts a background / no-object class puts it
last (index C), and its :class:`ClassLogitLayer` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from evdet.models.checks import check_sizes


@dataclass(frozen=True)
class ClassLogitLayer:
    """Tensors of a head whose rows (dim 0) are per-class, for remapping classes by name.

    Attributes:
        keys: state-dict keys relative to the head (e.g. ``("cls_pred.weight", "cls_pred.bias")``).
        groups: the rows are ``groups`` consecutive blocks (e.g. one per anchor), each of
            ``C + background`` rows.
        background: each block ends with one background / no-object (or padding) row after the C class
            rows; it is copied from the source as is.
    """

    keys: tuple[str, ...]
    groups: int = 1
    background: bool = False


class DetectionHead(nn.Module):
    """Base of every detection head (see the module docstring for the contract).

    Args:
        num_classes: C, foreground classes (>= 1).

    Raises:
        ValueError: ``num_classes`` < 1 (the message names the head).
    """

    #: keys of ``loss`` that are logged (``"loss"`` first)
    loss_names: tuple[str, ...] = ("loss",)

    def __init__(self, num_classes: int):
        super().__init__()
        check_sizes(type(self).__name__, {"num_classes": num_classes})
        self.num_classes = num_classes
        #: learning rate of the head relative to the backbone's
        self.lr_mult = 1.0
        #: gradient-norm clipping this head needs (0: none)
        self.grad_clip = 0.0
        #: the detector runs ``forward`` and ``detect`` bin by bin (B frames per call) instead of on all T·B
        #: frames at once, as a reference that runs bin by bin does (float32 rounding depends on N);
        #: ``loss`` always sees all labelled frames at once
        self.per_bin_inference = False

    @torch.jit.ignore
    def loss(self, features: list[Tensor], targets: list[Tensor], image_height: int,
             image_width: int) -> dict[str, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} does not define loss()")

    @torch.jit.ignore
    def class_logit_layers(self) -> list[ClassLogitLayer]:
        raise NotImplementedError(f"{type(self).__name__} does not declare its class-logit layers")

    @torch.jit.ignore
    def output_descriptions(self) -> list[tuple[str, str]]:
        raise NotImplementedError(f"{type(self).__name__} does not describe its outputs")

    @torch.jit.ignore
    def decoding_constants(self, features: list[Tensor], image_height: int,
                           image_width: int) -> dict[str, Any]:
        """Constants needed to decode the raw outputs besides the outputs themselves (JSON types); none by
        default."""
        return {}
