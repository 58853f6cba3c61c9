"""Contrastive denoising queries of RT-DETR / DINO training (Zhang et al. 2023; Zhao et al. 2024).

During training, noised copies of the ground-truth boxes and labels are fed to the decoder as extra
queries in front of the matching queries; each must reconstruct its ground truth (positives) or predict
no object (negatives), which stabilises the one-to-one matching. With ``m`` = the most ground truths of
an image in the batch:

- ``G = max(1, num_denoising // m)`` groups, each of ``2m`` queries: ``m`` positives then ``m``
  negatives, every ground truth of an image once in each half (padded slots hold class C and a zero box);
  ``Ndn = 2·m·G`` denoising queries in total;
- labels: each real slot is replaced, with probability ``label_noise_ratio / 2``, by a uniform random
  class;
- boxes (normalised cxcywh, noised as xyxy): each corner moves by ``± r · (w/2, h/2) · box_noise_scale``
  with ``r ~ U[0, 1)`` for positives and ``U[1, 2)`` for negatives, random sign, then clipped to [0, 1];
  the decoder receives them as ``inverse_sigmoid`` of cxcywh (also without box noise, where RT-DETR
  passes the probabilities through as if they were logits);
- attention mask ``[Ndn + Q, Ndn + Q]`` (True = may not attend): matching queries see no denoising
  query, a denoising group sees no other group (it sees the matching queries).

The random draws are those of RT-DETR's ``get_contrastive_denoising_training_group``, in its order, from
torch's global generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from evdet.ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """``log(x / (1 − x))`` with ``x`` clipped to [0, 1] and both terms to at least ``eps`` (RT-DETR's)."""
    x = x.clamp(0.0, 1.0)
    return torch.log(x.clamp(min=eps) / (1.0 - x).clamp(min=eps))


@dataclass
class DenoisingGroups:
    """The denoising queries of one batch.

    Attributes:
        labels: ``Tensor[B, Ndn]`` int64 noised classes (C in padded slots).
        boxes_unact: ``Tensor[B, Ndn, 4]`` ``inverse_sigmoid`` of the noised normalised cxcywh boxes.
        attn_mask: ``Tensor[Ndn + Q, Ndn + Q]`` bool, True where a query may not attend.
        positive_idx: per image, ``Tensor[G · n_i]`` int64 the denoising query of each positive,
            group-major (ground truth ``j`` of group ``g`` is entry ``g · n_i + j``).
        num_groups: G.
        num_denoising: Ndn.
    """

    labels: Tensor
    boxes_unact: Tensor
    attn_mask: Tensor
    positive_idx: list[Tensor]
    num_groups: int
    num_denoising: int

    def matched_indices(self) -> list[tuple[Tensor, Tensor]]:
        """Per image ``(denoising query idx, ground-truth idx)`` of the positives: the fixed matching of the
        denoising losses (RT-DETR's ``get_cdn_matched_indices``)."""
        out = []
        for pos in self.positive_idx:
            n = pos.numel() // self.num_groups
            out.append((pos, torch.arange(n, dtype=torch.int64, device=pos.device).repeat(self.num_groups)))
        return out


def denoising_attn_mask(max_gt: int, num_groups: int, num_queries: int, device: torch.device) -> Tensor:
    """``Tensor[Ndn + Q, Ndn + Q]`` bool (True = blocked) for ``num_groups`` groups of ``2 · max_gt``
    denoising queries followed by ``num_queries`` matching queries (see the module docstring)."""
    ndn = 2 * max_gt * num_groups
    size = ndn + num_queries
    group = torch.full((size,), -1, dtype=torch.int64, device=device)
    group[:ndn] = torch.arange(ndn, device=device) // (2 * max_gt)
    is_dn = group >= 0
    mask = is_dn[:, None] & is_dn[None, :] & (group[:, None] != group[None, :])  # across groups
    mask[ndn:, :ndn] = True  # matching queries do not see the reconstructions
    return mask


def denoising_groups(labels: list[Tensor], boxes: list[Tensor], num_classes: int, num_queries: int,
                     num_denoising: int = 100, label_noise_ratio: float = 0.5,
                     box_noise_scale: float = 1.0) -> DenoisingGroups | None:
    """The denoising queries of a batch (module docstring), or None when ``num_denoising`` is 0 or no image
    has a ground truth.

    Args:
        labels: per image ``Tensor[n_i]`` int64 classes in 0..C−1.
        boxes: per image ``Tensor[n_i, 4]`` normalised cxcywh.
        num_classes: C.
        num_queries: Q, matching queries that follow (for the attention mask).
        num_denoising: target number of denoising queries (the groups are sized from it).
        label_noise_ratio: twice the probability of a random label.
        box_noise_scale: scale of the box noise (0: no box noise).
    """
    num_gts = [int(lab.shape[0]) for lab in labels]
    max_gt = max(num_gts, default=0)
    if num_denoising <= 0 or max_gt == 0:
        return None
    device = labels[0].device
    num_groups = max(1, num_denoising // max_gt)
    bs = len(num_gts)
    query_class = torch.full((bs, max_gt), num_classes, dtype=torch.int64, device=device)
    query_box = torch.zeros((bs, max_gt, 4), device=device)
    pad_mask = torch.zeros((bs, max_gt), dtype=torch.bool, device=device)
    for i, n in enumerate(num_gts):
        if n > 0:
            query_class[i, :n] = labels[i].to(torch.int64)
            query_box[i, :n] = boxes[i].to(query_box.dtype)
            pad_mask[i, :n] = True
    query_class = query_class.tile(1, 2 * num_groups)  # [B, Ndn]
    query_box = query_box.tile(1, 2 * num_groups, 1)  # [B, Ndn, 4]
    pad_mask = pad_mask.tile(1, 2 * num_groups)
    negative = torch.zeros((bs, 2 * max_gt, 1), device=device)
    negative[:, max_gt:] = 1.0
    negative = negative.tile(1, num_groups, 1)  # [B, Ndn, 1]
    positive = (1.0 - negative).squeeze(-1) * pad_mask  # [B, Ndn]
    positive_idx = list(torch.nonzero(positive)[:, 1].split([n * num_groups for n in num_gts]))
    if label_noise_ratio > 0:
        flip = torch.rand_like(query_class, dtype=torch.float) < label_noise_ratio * 0.5
        new_label = torch.randint_like(flip, 0, num_classes, dtype=query_class.dtype)
        query_class = torch.where(flip & pad_mask, new_label, query_class)
    if box_noise_scale > 0:
        xyxy = box_cxcywh_to_xyxy(query_box)
        diff = query_box[..., 2:].mul(0.5).tile(1, 1, 2) * box_noise_scale  # [B, Ndn, 4]: w/2, h/2, w/2, h/2
        sign = torch.randint_like(query_box, 0, 2) * 2.0 - 1.0
        part = torch.rand_like(query_box)
        part = ((part + 1.0) * negative + part * (1.0 - negative)) * sign
        xyxy = (xyxy + part * diff).clamp(0.0, 1.0)
        query_box = box_xyxy_to_cxcywh(xyxy)
    mask = denoising_attn_mask(max_gt, num_groups, num_queries, device)
    return DenoisingGroups(query_class, inverse_sigmoid(query_box), mask, positive_idx, num_groups,
                           2 * max_gt * num_groups)
