"""Box conversions, areas, IoU and GIoU, clipping and small-box removal (pure torch, TorchScript-able).

Box formats (pixels, any frame):

- ``xyxy``: ``(x1, y1, x2, y2)``, top-left and bottom-right corners;
- ``cxcywh``: ``(cx, cy, w, h)``, centre and size;
- ``xywh``: ``(x, y, w, h)``, top-left corner and size (the ``_bbox.npy`` convention).

Every function accepts any number of leading dimensions (``Tensor[..., 4]``) unless stated, never
modifies its inputs, and keeps the dtype.
"""

import torch
from torch import Tensor


def _check_last_dim(boxes: Tensor, name: str) -> None:
    if boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"{name}: expected a Tensor[..., 4], got shape {list(boxes.shape)}")


def box_xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """``Tensor[..., 4]`` xyxy -> ``Tensor[..., 4]`` cxcywh (same units)."""
    _check_last_dim(boxes, "box_xyxy_to_cxcywh")
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1), dim=-1)


def box_cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``Tensor[..., 4]`` cxcywh -> ``Tensor[..., 4]`` xyxy (same units)."""
    _check_last_dim(boxes, "box_cxcywh_to_xyxy")
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


def box_xywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``Tensor[..., 4]`` xywh (top-left corner + size) -> ``Tensor[..., 4]`` xyxy."""
    _check_last_dim(boxes, "box_xywh_to_xyxy")
    x, y, w, h = boxes.unbind(-1)
    return torch.stack((x, y, x + w, y + h), dim=-1)


def box_xyxy_to_xywh(boxes: Tensor) -> Tensor:
    """``Tensor[..., 4]`` xyxy -> ``Tensor[..., 4]`` xywh (top-left corner + size)."""
    _check_last_dim(boxes, "box_xyxy_to_xywh")
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack((x1, y1, x2 - x1, y2 - y1), dim=-1)


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert ``Tensor[..., 4]`` between ``"xyxy"``, ``"cxcywh"`` and ``"xywh"``.

    Raises ValueError for an unknown format name.
    """
    fmts = ["xyxy", "cxcywh", "xywh"]
    if in_fmt not in fmts or out_fmt not in fmts:
        raise ValueError(f"box_convert: formats must be in {fmts}, got in_fmt={in_fmt!r}, "
                         f"out_fmt={out_fmt!r}")
    if in_fmt == out_fmt:
        return boxes.clone()
    xyxy = boxes
    if in_fmt == "cxcywh":
        xyxy = box_cxcywh_to_xyxy(boxes)
    elif in_fmt == "xywh":
        xyxy = box_xywh_to_xyxy(boxes)
    if out_fmt == "cxcywh":
        return box_xyxy_to_cxcywh(xyxy)
    if out_fmt == "xywh":
        return box_xyxy_to_xywh(xyxy)
    return xyxy


def box_area(boxes: Tensor) -> Tensor:
    """Area of xyxy boxes: ``Tensor[..., 4]`` -> ``Tensor[...]`` (pixels²; negative for inverted boxes)."""
    _check_last_dim(boxes, "box_area")
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    lt = torch.max(boxes1[..., :, None, :2], boxes2[..., None, :, :2])  # [..., N, M, 2]
    rb = torch.min(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])  # [..., N, M, 2]
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]  # [..., N, M]
    union = area1[..., :, None] + area2[..., None, :] - inter
    return inter, union


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU of xyxy boxes.

    Args:
        boxes1: ``Tensor[..., N, 4]`` xyxy.
        boxes2: ``Tensor[..., M, 4]`` xyxy (same leading dims as ``boxes1``, or broadcastable).

    Returns:
        ``Tensor[..., N, M]``: ``inter / (area1 + area2 - inter)``; NaN when both boxes are empty
        and identical (0 / 0), as in torchvision.
    """
    _check_last_dim(boxes1, "box_iou boxes1")
    _check_last_dim(boxes2, "box_iou boxes2")
    inter, union = _inter_union(boxes1, boxes2)
    return inter / union


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise generalized IoU (Rezatofighi et al. 2019) of xyxy boxes, in ``[-1, 1]``.

    Args:
        boxes1: ``Tensor[N, 4]`` xyxy with ``x2 >= x1``, ``y2 >= y1``.
        boxes2: ``Tensor[M, 4]`` xyxy.

    Returns:
        ``Tensor[N, M]``: ``IoU - (enclosing area - union) / enclosing area``.

    Raises:
        ValueError: a box with ``x2 < x1`` or ``y2 < y1`` (its index and value are given).
    """
    _check_last_dim(boxes1, "generalized_box_iou boxes1")
    _check_last_dim(boxes2, "generalized_box_iou boxes2")
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        bad = ((b[..., 2:] < b[..., :2]).any(-1)).nonzero()
        if bad.shape[0] > 0:
            i = bad[0].tolist()
            raise ValueError(f"generalized_box_iou: {name} box {i} is not xyxy (x2 < x1 or y2 < y1): "
                             f"{b[tuple(i)].tolist()}")
    inter, union = _inter_union(boxes1, boxes2)
    iou = inter / union
    lt = torch.min(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    rb = torch.max(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    enclosing = wh[..., 0] * wh[..., 1]
    return iou - (enclosing - union) / enclosing


def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip xyxy boxes ``Tensor[..., 4]`` to ``0 <= x <= width``, ``0 <= y <= height`` (pixels), with
    ``size = (height, width)`` (torchvision's signature)."""
    height, width = size
    _check_last_dim(boxes, "clip_boxes_to_image")
    x = boxes[..., 0::2].clamp(min=0.0, max=float(width))
    y = boxes[..., 1::2].clamp(min=0.0, max=float(height))
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices (int64, ascending) of xyxy boxes ``Tensor[N, 4]`` with width and height >= ``min_size``."""
    _check_last_dim(boxes, "remove_small_boxes")
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return ((w >= min_size) & (h >= min_size)).nonzero().view(-1)
