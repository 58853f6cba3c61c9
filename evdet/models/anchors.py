"""Anchor pyramid, GT-to-anchor matching (``encode``) and detection decoding (SPEC 5).

Anchor ``a`` of level ``l`` (base size ``S = base_size · 2^l``, list entry ``(ratio, scale)`` with
ratio = w/h) has ``w = scale·S·√ratio``, ``h = scale·S/√ratio`` and is centred at
``((j + 0.5)·W/W_l, (i + 0.5)·H/H_l)`` for feature cell (i, j): the *true* stride ``H/H_l`` keeps the
centres inside the image when H is not a multiple of the nominal stride (e.g. 240×304). When the level's
nominal stride s is given and the level has more than ``ceil(H/s)`` rows (a backbone that pads its input,
e.g. RVT's to multiples of 32), the spacing is ``H / ceil(H/s)``, that of the rows covering the image, and
continues into the padding (likewise for columns).
Anchors of all levels are concatenated level by level, then row, column, anchor (the layout of
``BoxHead``'s outputs). Boxes are xyxy in network pixels.
"""

import math
from typing import Union

import torch
from torch import Tensor, nn

from evdet.models.decoding import nms_per_frame, top_candidates
from evdet.ops.box_coder import decode_boxes, encode_boxes
from evdet.ops.boxes import box_iou, clip_boxes_to_image

_C1 = 2 ** (1 / 3)
_C2 = 2 ** (2 / 3)
ANCHOR_LISTS: dict[str, list[tuple[float, float]]] = {
    "PSEE_ANCHORS": [(1 / 3, 1.0), (1 / 2, 1.0), (1.0, 1.0), (1.0, 1.5), (2.0, 1.0), (3.0, 1.0)],
    "COCO_ANCHORS": [(r, s) for s in (1.0, _C1, _C2) for r in (0.5, 1.0, 2.0)],
}


def resolve_anchor_list(anchor_list: Union[str, list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Anchor list by name (``ANCHOR_LISTS``) or an explicit list of ``(ratio w/h, scale)`` pairs.

    Raises ValueError for an unknown name (listing the choices), an empty list or a pair with a
    non-positive value (giving its index).
    """
    if isinstance(anchor_list, str):
        if anchor_list not in ANCHOR_LISTS:
            raise ValueError(f"unknown anchor list {anchor_list!r}; choices: {sorted(ANCHOR_LISTS)}")
        return list(ANCHOR_LISTS[anchor_list])
    pairs = [tuple(float(v) for v in p) for p in anchor_list]
    if not pairs:
        raise ValueError("anchor list is empty")
    for i, p in enumerate(pairs):
        if len(p) != 2 or p[0] <= 0 or p[1] <= 0:
            raise ValueError(f"anchor list entry {i} must be a (ratio > 0, scale > 0) pair, got {p}")
    return [(p[0], p[1]) for p in pairs]


def base_anchors(size: float, anchor_list: list[tuple[float, float]]) -> Tensor:
    """Anchors centred on (0, 0) of one level: ``Tensor[A, 4]`` xyxy offsets (pixels)."""
    rows = []
    for ratio, scale in anchor_list:
        w = scale * size * math.sqrt(ratio)
        h = scale * size / math.sqrt(ratio)
        rows.append([-w / 2, -h / 2, w / 2, h / 2])
    return torch.tensor(rows, dtype=torch.float32)


class AnchorLayer(nn.Module):
    """Anchors of one feature level.

    Args:
        base_size: S in pixels.
        anchor_list: ``(ratio, scale)`` pairs.
        stride: the level's nominal stride (0: unknown; see the module docstring).
    """

    def __init__(self, base_size: float, anchor_list: list[tuple[float, float]], stride: int = 0):
        super().__init__()
        self.base_size = float(base_size)
        self.stride = int(stride)
        self.num_anchors = len(anchor_list)
        self.register_buffer("cell_anchors", base_anchors(base_size, anchor_list), persistent=False)

    def forward(self, feat_height: int, feat_width: int, image_height: int, image_width: int) -> Tensor:
        """Anchors of a ``feat_height × feat_width`` level of an ``image_height × image_width`` input.

        Returns ``Tensor[feat_height · feat_width · A, 4]`` xyxy pixels, ordered row, column, anchor.
        """
        dev = self.cell_anchors.device
        rows, cols = feat_height, feat_width
        if self.stride > 0:  # levels of a padded input: the spacing of the cells covering the image
            rows = min(rows, (image_height + self.stride - 1) // self.stride)
            cols = min(cols, (image_width + self.stride - 1) // self.stride)
        sy = float(image_height) / float(rows)
        sx = float(image_width) / float(cols)
        cy = (torch.arange(feat_height, dtype=torch.float32, device=dev) + 0.5) * sy
        cx = (torch.arange(feat_width, dtype=torch.float32, device=dev) + 0.5) * sx
        yy = cy.view(-1, 1).expand(feat_height, feat_width)
        xx = cx.view(1, -1).expand(feat_height, feat_width)
        centres = torch.stack((xx, yy, xx, yy), dim=-1).view(-1, 1, 4)  # [H_l*W_l, 1, 4]
        return (centres + self.cell_anchors.view(1, -1, 4)).reshape(-1, 4)  # [H_l*W_l*A, 4]


class Anchors(nn.Module):
    """Anchor pyramid with a cache keyed on the image size and every level's shape.

    Args:
        num_levels: feature levels; level l has base size ``base_size · 2^l``.
        anchor_list: name in ``ANCHOR_LISTS`` or ``(ratio, scale)`` pairs.
        base_size: base size of level 0 (pixels).
        strides: nominal stride of every level (None: unknown), see the module docstring.
    """

    cached: Tensor | None
    cache_key: list[int]

    def __init__(self, num_levels: int, anchor_list: Union[str, list[tuple[float, float]]] = "PSEE_ANCHORS",
                 base_size: float = 32.0, strides: list[int] | None = None):
        super().__init__()
        pairs = resolve_anchor_list(anchor_list)
        if strides is not None and len(strides) != num_levels:
            raise ValueError(f"Anchors: {num_levels} levels but {len(strides)} strides")
        level_strides = [0] * num_levels if strides is None else [int(v) for v in strides]
        self.num_anchors = len(pairs)
        self.num_levels = num_levels
        self.layers = nn.ModuleList([AnchorLayer(base_size * 2**i, pairs, level_strides[i])
                                     for i in range(num_levels)])
        self.register_buffer("device_probe", torch.zeros(0), persistent=False)  # follows .to(device)
        self.cached = None
        self.cache_key = []

    def forward(self, feature_sizes: list[list[int]], image_height: int, image_width: int) -> Tensor:
        """Anchors of all levels: ``Tensor[sum_l H_l·W_l·A, 4]`` xyxy pixels.

        Args:
            feature_sizes: ``[[H_0, W_0], [H_1, W_1], ...]``, one per level (``num_levels`` of them).
        """
        if len(feature_sizes) != self.num_levels:
            raise ValueError(f"Anchors: expected {self.num_levels} feature sizes, got {len(feature_sizes)}")
        key = [image_height, image_width]
        for hw in feature_sizes:
            key.append(hw[0])
            key.append(hw[1])
        cached = self.cached
        dev = self.device_probe.device
        if cached is not None and key == self.cache_key and cached.device == dev:
            return cached
        out: list[Tensor] = []
        i = 0
        for layer in self.layers:
            out.append(layer(feature_sizes[i][0], feature_sizes[i][1], image_height, image_width))
            i += 1
        anchors = torch.cat(out, 0)
        self.cached = anchors
        self.cache_key = key
        return anchors


def _pad_targets(targets: list[Tensor], device: torch.device) -> tuple[Tensor, Tensor]:
    """``N`` tensors ``[n_i, 5]`` -> padded ``Tensor[N, M, 5]`` and validity mask ``Tensor[N, M]``."""
    m = 1
    for t in targets:
        m = max(m, t.shape[0])
    padded = torch.zeros(len(targets), m, 5, device=device)
    valid = torch.zeros(len(targets), m, dtype=torch.bool, device=device)
    for i, t in enumerate(targets):
        n = t.shape[0]
        if n > 0:
            padded[i, :n] = t.to(device=device, dtype=torch.float32)
            valid[i, :n] = True
    return padded, valid


def encode(anchors: Tensor, targets: list[Tensor], num_classes: int, fg_iou_threshold: float = 0.5,
           bg_iou_threshold: float = 0.3, allow_low_quality_matches: bool = True) -> tuple[Tensor, Tensor]:
    """Match ground truth to anchors for N frames at once (GT padded to the largest count).

    Args:
        anchors: ``Tensor[A, 4]`` xyxy pixels.
        targets: N tensors ``[n_i, 5]`` rows ``(x1, y1, x2, y2, class_idx)``, class_idx in 0..C−1.
        num_classes: C (the background label).
        fg_iou_threshold: IoU ≥ this: positive.
        bg_iou_threshold: IoU < this: background; in between: ignored.
        allow_low_quality_matches: every GT also gets the anchor(s) with its highest IoU (> 0), whatever
            their IoU, assigned to it.

    Returns:
        ``loc_targets Tensor[N, A, 4]`` (SSD encoding of the matched GT; zeros where not positive) and
        ``cls_targets Tensor[N, A]`` int64: −1 ignored, C background, ``class_idx`` positive.

    Raises:
        ValueError: a target that is not ``[n, 5]`` (its frame index is given).
    """
    for i, t in enumerate(targets):
        if t.dim() != 2 or t.shape[1] != 5:
            raise ValueError(f"encode: targets[{i}] must be a Tensor[n, 5], got shape {list(t.shape)}")
    n_frames, n_anchors = len(targets), anchors.shape[0]
    device = anchors.device
    if n_frames == 0:
        return torch.zeros(0, n_anchors, 4, device=device), torch.zeros(0, n_anchors, dtype=torch.int64,
                                                                         device=device)
    gt, valid = _pad_targets(targets, device)  # [N, M, 5], [N, M]
    iou = box_iou(anchors.unsqueeze(0), gt[..., :4])  # [N, A, M]
    iou = torch.where(valid.unsqueeze(1), iou.nan_to_num(0.0), torch.full_like(iou, -1.0))
    best_iou, best_gt = iou.max(dim=2)  # [N, A]
    labels = torch.full((n_frames, n_anchors), -1, dtype=torch.int64, device=device)
    labels[best_iou < bg_iou_threshold] = num_classes
    positive = best_iou >= fg_iou_threshold
    if allow_low_quality_matches:
        gt_best = iou.max(dim=1, keepdim=True)[0]  # [N, 1, M]
        lq = (iou == gt_best) & valid.unsqueeze(1) & (gt_best > 0)  # [N, A, M]
        lq_any = lq.any(dim=2)  # [N, A]
        lq_gt = torch.where(lq, iou, torch.full_like(iou, -2.0)).argmax(dim=2)  # [N, A]
        best_gt = torch.where(lq_any & ~positive, lq_gt, best_gt)
        positive = positive | lq_any
    matched = torch.gather(gt, 1, best_gt.unsqueeze(-1).expand(-1, -1, 5))  # [N, A, 5]
    labels = torch.where(positive, matched[..., 4].long(), labels)
    loc = encode_boxes(matched[..., :4], anchors.unsqueeze(0))  # [N, A, 4]
    loc = torch.where(positive.unsqueeze(-1), loc, torch.zeros_like(loc))
    return loc, labels


def decode(loc: Tensor, cls_logits: Tensor, anchors: Tensor, image_height: int, image_width: int,
           score_thresh: float = 0.1, nms_thresh: float = 0.5, max_detections: int = 100,
           top_k: int = 500) -> list[Tensor]:
    """Detections of one frame: see :func:`batched_decode` (with N = 1)."""
    return batched_decode(loc.unsqueeze(0), cls_logits.unsqueeze(0), anchors, image_height, image_width,
                          score_thresh, nms_thresh, max_detections, top_k)


def batched_decode(loc: Tensor, cls_logits: Tensor, anchors: Tensor, image_height: int, image_width: int,
                   score_thresh: float = 0.1, nms_thresh: float = 0.5, max_detections: int = 100,
                   top_k: int = 500) -> list[Tensor]:
    """Per-frame detections from head outputs, all frames in one vectorised pass.

    Per frame: softmax over classes, the ``top_k`` best (anchor, class) pairs over all anchors and
    foreground classes, score > ``score_thresh``, class-wise NMS (IoU > ``nms_thresh`` suppresses),
    at most ``max_detections`` kept.

    Args:
        loc: ``Tensor[N, A, 4]`` box deltas.
        cls_logits: ``Tensor[N, A, C+1]``, background last (index C).
        anchors: ``Tensor[A, 4]`` xyxy pixels.

    Returns:
        N tensors ``[n, 6]`` rows ``(x1, y1, x2, y2, score, class_idx)``, xyxy network pixels clipped
        to the image, class_idx in 0..C−1, scores descending.
    """
    n_frames = loc.shape[0]
    num_classes = cls_logits.shape[2] - 1
    scores = torch.softmax(cls_logits.float(), dim=2)[:, :, :num_classes].reshape(n_frames, -1)  # [N, A*C]
    frame_idx, anchor_idx, class_idx, sc = top_candidates(scores, num_classes, top_k, score_thresh)  # [K]
    deltas = loc[frame_idx, anchor_idx].float()  # [K, 4]
    boxes = clip_boxes_to_image(decode_boxes(deltas, anchors[anchor_idx]), (image_height, image_width))
    return nms_per_frame(boxes, sc, frame_idx, class_idx, n_frames, num_classes, nms_thresh, max_detections)
