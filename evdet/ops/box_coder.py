"""SSD box coding: anchor-relative offsets with variances (0.1, 0.2) (SPEC 5), TorchScript-able.

With anchor centre ``(ax, ay)`` and size ``(aw, ah)`` and a box ``(gx, gy, gw, gh)`` (cxcywh, pixels)::

    dx = (gx - ax) / aw / 0.1     dy = (gy - ay) / ah / 0.1
    dw = ln(gw / aw) / 0.2        dh = ln(gh / ah) / 0.2
"""

import math

import torch
from torch import Tensor

from evdet.ops.boxes import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh

CENTER_VARIANCE = 0.1
SIZE_VARIANCE = 0.2
# Largest dw/dh (after the variance) accepted by decode_boxes: exp(clamp) keeps boxes finite.
_MAX_LOG_SCALE = math.log(1000.0 / 16)


def encode_boxes(boxes: Tensor, anchors: Tensor, center_variance: float = CENTER_VARIANCE,
                 size_variance: float = SIZE_VARIANCE) -> Tensor:
    """Encode xyxy boxes relative to xyxy anchors.

    Args:
        boxes: ``Tensor[..., 4]`` xyxy pixels (boxes with w or h <= 0 give -inf/NaN; the caller only
            uses encodings of valid boxes).
        anchors: ``Tensor[..., 4]`` xyxy pixels, broadcastable to ``boxes``.

    Returns:
        ``Tensor[..., 4]`` ``(dx, dy, dw, dh)``.
    """
    g = box_xyxy_to_cxcywh(boxes)
    a = box_xyxy_to_cxcywh(anchors)
    dxy = (g[..., :2] - a[..., :2]) / a[..., 2:] / center_variance
    dwh = torch.log(g[..., 2:] / a[..., 2:]) / size_variance
    return torch.cat((dxy, dwh), dim=-1)


def decode_boxes(deltas: Tensor, anchors: Tensor, center_variance: float = CENTER_VARIANCE,
                 size_variance: float = SIZE_VARIANCE, max_log_scale: float = _MAX_LOG_SCALE) -> Tensor:
    """Inverse of :func:`encode_boxes`.

    Args:
        deltas: ``Tensor[..., 4]`` ``(dx, dy, dw, dh)``.
        anchors: ``Tensor[..., 4]`` xyxy pixels, broadcastable to ``deltas``.

    Returns:
        ``Tensor[..., 4]`` xyxy pixels (not clipped: see ``clip_boxes_to_image``). ``dw·0.2`` and
        ``dh·0.2`` are clamped at ``max_log_scale`` (ln(1000/16)) so that exp() never overflows.
    """
    a = box_xyxy_to_cxcywh(anchors)
    cxy = deltas[..., :2] * center_variance * a[..., 2:] + a[..., :2]
    wh = torch.exp((deltas[..., 2:] * size_variance).clamp(max=max_log_scale)) * a[..., 2:]
    return box_cxcywh_to_xyxy(torch.cat((cxy, wh), dim=-1))
