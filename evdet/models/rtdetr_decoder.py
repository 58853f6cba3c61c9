"""RT-DETR's decoder (Zhao et al. 2024): IoU-aware query selection over the encoder tokens, then
deformable-attention decoder layers with iterative box refinement. TorchScript-able.

1. Each encoder level is projected (1×1 conv without bias + BatchNorm) to ``D`` and flattened; the levels
   are concatenated into a memory of ``S = Σ H_l·W_l`` tokens.
2. Query selection (two-stage): every token gets an anchor box (its cell centre, side ``0.05 · 2^l`` of
   the image for level ``l``; anchors with a coordinate outside (0.01, 0.99) are invalid: their memory is
   zeroed and their logits are ``+inf``), ``enc_output`` (Linear + LayerNorm) gives the token's feature,
   ``enc_score_head`` its C class logits and ``enc_bbox_head`` a box offset added to the anchor's logits.
   The ``K = min(num_queries, S)`` tokens of highest best-class logit become the queries: their (detached)
   features are the content, their (detached) boxes the initial reference boxes. The selected proposals
   are also scored by the loss (IoU-aware classification makes the selection score predict the IoU).
3. Decoder layer ``i`` (post-norm: self-attention with an optional attention mask, multi-scale deformable
   cross-attention sampling around the reference box, ReLU feed-forward) is followed by its own class head
   and box head; the box head refines the reference: ``box_i = σ(bbox_head_i(h) + σ⁻¹(ref))``, and
   ``box_i`` (detached during training) is the next layer's reference. The query position embedding is an
   MLP of the reference box. In training, the box of layer ``i > 0`` is computed from the non-detached
   previous box (RT-DETR's look-forward-twice), so each layer's loss reaches the previous box head.

Denoising queries (:mod:`evdet.models.denoising`) are prepended to the matching queries during training.
Boxes are normalised ``(cx, cy, w, h)`` in (0, 1); logits are per class (sigmoid, no background).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evdet.models.checks import check_heads, check_sizes
from evdet.models.deformable_attention import MSDeformableAttention
from evdet.models.denoising import inverse_sigmoid

#: prior probability of every class logit at initialisation (the bias is ``−log((1 − p) / p)``)
PRIOR_PROB = 0.01


class MLP(nn.Module):
    """``num_layers`` linear layers ``in → hidden → … → out`` with ReLU between them."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)])

    def forward(self, x: Tensor) -> Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = F.relu(x)
        return x


class DecoderLayer(nn.Module):
    """Post-norm decoder layer: masked self-attention, deformable cross-attention, ReLU feed-forward."""

    def __init__(self, dim: int, nheads: int, dim_feedforward: int, dropout: float, num_levels: int,
                 num_points: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, nheads, dropout=dropout, batch_first=True)
        self.cross_attn = MSDeformableAttention(dim, nheads, num_levels, num_points)
        self.linear1 = nn.Linear(dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.dropout4 = nn.Dropout(dropout)

    def forward(self, tgt: Tensor, ref_boxes: Tensor, memory: Tensor, spatial_shapes: list[tuple[int, int]],
                attn_mask: Tensor | None, query_pos: Tensor) -> Tensor:
        """``tgt, query_pos: Tensor[N, Q, D]``, ``ref_boxes: Tensor[N, Q, 4]`` (normalised cxcywh),
        ``memory: Tensor[N, S, D]``, ``attn_mask: Tensor[Q, Q]`` bool (True = blocked)
        -> ``Tensor[N, Q, D]``."""
        q = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(q, q, tgt, attn_mask=attn_mask,
                                                            need_weights=False)[0]))
        attn = self.cross_attn(tgt + query_pos, ref_boxes.unsqueeze(2), memory, spatial_shapes)
        tgt = self.norm2(tgt + self.dropout2(attn))
        ff = self.linear2(self.dropout3(F.relu(self.linear1(tgt))))
        return self.norm3((tgt + self.dropout4(ff)).clamp(min=-65504.0, max=65504.0))


def anchor_proposals(spatial_shapes: list[tuple[int, int]], grid_size: float = 0.05, eps: float = 0.01,
                     device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """The anchor box of every memory token (module docstring, step 2).

    Returns:
        ``anchors Tensor[1, S, 4]`` float32 (logits of normalised cx, cy, w, h; ``+inf`` where invalid)
        and ``valid Tensor[1, S, 1]`` bool.
    """
    out: list[Tensor] = []
    for lvl, (h, w) in enumerate(spatial_shapes):
        ys = torch.arange(h, dtype=torch.float32, device=device).repeat_interleave(w)  # row-major tokens
        xs = torch.arange(w, dtype=torch.float32, device=device).repeat(h)
        side = torch.full_like(xs, grid_size * 2.0 ** lvl)
        out.append(torch.stack(((xs + 0.5) / w, (ys + 0.5) / h, side, side), dim=1))  # [h*w, 4]
    anchors = torch.cat(out, 0)[None]  # [1, S, 4]
    valid = ((anchors > eps) & (anchors < 1.0 - eps)).all(-1, keepdim=True)
    logits = torch.log(anchors / (1.0 - anchors))
    return torch.where(valid, logits, torch.full_like(logits, math.inf)), valid


class RTDETRDecoder(nn.Module):
    """Query selection and the refining decoder (module docstring).

    Args:
        in_channels: channels of each encoder level.
        num_classes: C.
        hidden_dim: D (a multiple of ``nheads``).
        num_queries: matching queries K (at most the number of memory tokens are used).
        dec_layers: decoder layers (one prediction set each).
        nheads: attention heads (self- and cross-attention).
        dim_feedforward: hidden width of the feed-forward blocks.
        dropout: dropout of the decoder layers (RT-DETR: 0).
        num_points: sampling points per head and level of the deformable attention.

    Raises:
        ValueError: non-positive sizes or ``hidden_dim`` not a multiple of ``nheads``.
    """

    def __init__(self, in_channels: list[int], num_classes: int, hidden_dim: int = 256,
                 num_queries: int = 300, dec_layers: int = 6, nheads: int = 8, dim_feedforward: int = 1024,
                 dropout: float = 0.0, num_points: int = 4):
        super().__init__()
        check_sizes("RTDETRDecoder", {"num_classes": num_classes, "hidden_dim": hidden_dim,
                                      "num_queries": num_queries, "dec_layers": dec_layers, "nheads": nheads,
                                      "dim_feedforward": dim_feedforward, "num_points": num_points,
                                      "levels": len(in_channels)})
        check_heads("RTDETRDecoder", "hidden_dim", hidden_dim, "nheads", nheads)
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.input_proj = nn.ModuleList([
            nn.Sequential(nn.Conv2d(int(c), hidden_dim, 1, bias=False), nn.BatchNorm2d(hidden_dim))
            for c in in_channels])
        self.layers = nn.ModuleList([DecoderLayer(hidden_dim, nheads, dim_feedforward, dropout,
                                                  len(in_channels), num_points) for _ in range(dec_layers)])
        self.denoising_class_embed = nn.Embedding(num_classes + 1, hidden_dim, padding_idx=num_classes)
        self.query_pos_head = MLP(4, 2 * hidden_dim, hidden_dim, 2)
        self.enc_output = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.LayerNorm(hidden_dim))
        self.enc_score_head = nn.Linear(hidden_dim, num_classes)
        self.enc_bbox_head = MLP(hidden_dim, hidden_dim, 4, 3)
        self.dec_score_head = nn.ModuleList([nn.Linear(hidden_dim, num_classes) for _ in range(dec_layers)])
        self.dec_bbox_head = nn.ModuleList([MLP(hidden_dim, hidden_dim, 4, 3) for _ in range(dec_layers)])
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        bias = -math.log((1.0 - PRIOR_PROB) / PRIOR_PROB)
        for score, box in [(self.enc_score_head, self.enc_bbox_head),
                           *zip(self.dec_score_head, self.dec_bbox_head, strict=True)]:
            nn.init.constant_(score.bias, bias)
            nn.init.zeros_(box.layers[-1].weight)
            nn.init.zeros_(box.layers[-1].bias)
        nn.init.xavier_uniform_(self.enc_output[0].weight)
        for layer in self.query_pos_head.layers:
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, features: list[Tensor], dn_labels: Tensor | None = None,
                dn_boxes_unact: Tensor | None = None,
                attn_mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Predictions of every decoder layer and of the selected proposals.

        Args:
            features: per level ``Tensor[N, C_l, H_l, W_l]``.
            dn_labels, dn_boxes_unact, attn_mask: denoising queries (``Tensor[N, Ndn]`` classes,
                ``Tensor[N, Ndn, 4]`` box logits) and the ``[Ndn + K, Ndn + K]`` mask, or None.

        Returns:
            ``logits Tensor[L, N, Ndn + K, C]``, ``boxes Tensor[L, N, Ndn + K, 4]`` (normalised cxcywh; the
            denoising queries first), and the proposals ``enc_logits Tensor[N, K, C]``,
            ``enc_boxes Tensor[N, K, 4]``.
        """
        mems: list[Tensor] = []
        shapes: list[tuple[int, int]] = []
        for i, proj in enumerate(self.input_proj):
            f = proj(features[i])
            shapes.append((int(f.shape[2]), int(f.shape[3])))
            mems.append(f.flatten(2).transpose(1, 2))
        memory = torch.cat(mems, 1)  # [N, S, D]
        anchors, valid = anchor_proposals(shapes, device=memory.device)
        out_memory = self.enc_output(valid.to(memory.dtype) * memory)  # [N, S, D]
        enc_logits_all = self.enc_score_head(out_memory)  # [N, S, C]
        enc_boxes_unact = self.enc_bbox_head(out_memory) + anchors.to(memory.dtype)  # [N, S, 4]
        k = min(self.num_queries, memory.shape[1])
        topk = enc_logits_all.max(-1).values.topk(k, dim=1).indices  # [N, K]
        ref_unact = enc_boxes_unact.gather(1, topk.unsqueeze(-1).expand(-1, -1, 4))  # [N, K, 4]
        enc_boxes = ref_unact.sigmoid()
        enc_logits = enc_logits_all.gather(1, topk.unsqueeze(-1).expand(-1, -1, enc_logits_all.shape[-1]))
        tgt = out_memory.gather(1, topk.unsqueeze(-1).expand(-1, -1, out_memory.shape[-1])).detach()
        ref_unact = ref_unact.detach()
        if dn_labels is not None and dn_boxes_unact is not None:
            tgt = torch.cat((self.denoising_class_embed(dn_labels), tgt), 1)
            ref_unact = torch.cat((dn_boxes_unact.to(ref_unact.dtype), ref_unact), 1)
        ref_detach = ref_unact.sigmoid()
        ref = ref_detach
        out_logits: list[Tensor] = []
        out_boxes: list[Tensor] = []
        first = True
        # zip without strict=: TorchScript does not take it (the three lists have dec_layers entries)
        for layer, score_head, bbox_head in zip(self.layers, self.dec_score_head, self.dec_bbox_head):  # noqa: B905
            tgt = layer(tgt, ref_detach, memory, shapes, attn_mask, self.query_pos_head(ref_detach))
            delta = bbox_head(tgt)
            box = (delta + inverse_sigmoid(ref_detach)).sigmoid()
            out_logits.append(score_head(tgt))
            if self.training and not first:
                out_boxes.append((delta + inverse_sigmoid(ref)).sigmoid())
            else:
                out_boxes.append(box)
            ref = box
            ref_detach = box.detach() if self.training else box
            first = False
        return torch.stack(out_logits), torch.stack(out_boxes), enc_logits, enc_boxes
