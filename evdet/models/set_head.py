"""DETR-style set-prediction head over the recurrent feature levels (SPEC 5). TorchScript-able.

Every feature level is projected to ``hidden_dim`` channels by a 1×1 convolution and flattened; the
levels are concatenated into one memory of ``S = sum_l H_l·W_l`` tokens, each with a 2-D sine positional
encoding (DETR's normalised encoding, 2π scale, per level) plus a learned level embedding. ``num_queries``
learned object queries (a positional part and a content part, the latter replacing DETR's zero start so
that the first layer's self-attention learns too) go through ``dec_layers`` post-norm transformer
decoder layers (self-attention, cross-attention to the memory, feed-forward); after each layer a
shared LayerNorm, a linear class predictor (C+1 logits, the last is no-object) and a 3-layer MLP
box predictor (sigmoid, normalised cx, cy, w, h) give one set
of predictions per layer (the earlier ones feed the auxiliary losses).
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evdet.models.checks import check_heads, check_sizes


def sine_position_encoding(height: int, width: int, dim: int, device: torch.device,
                           temperature: float = 10000.0) -> Tensor:
    """2-D sine positional encoding of a ``height × width`` grid (DETR's ``normalize=True`` variant).

    Cell (i, j) has normalised coordinates ``y = (i+1)/height · 2π``, ``x = (j+1)/width · 2π``; each is
    encoded by ``dim/2`` features ``sin(c / T^(2k/(dim/2)))``, ``cos(...)`` interleaved; y then x.

    Returns:
        ``Tensor[height·width, dim]`` float32, row-major cells.

    Raises:
        ValueError: ``dim`` not a multiple of 4.
    """
    if dim % 4 != 0:
        raise ValueError(f"sine_position_encoding: dim must be a multiple of 4, got {dim}")
    npf = dim // 2
    eps = 1e-6
    scale = 2.0 * math.pi
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device) / (height + eps) * scale  # [H]
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device) / (width + eps) * scale  # [W]
    k = torch.arange(npf, dtype=torch.float32, device=device)
    dim_t = temperature ** (2.0 * torch.div(k, 2, rounding_mode="floor") / npf)  # [npf]
    py = y[:, None] / dim_t  # [H, npf]
    px = x[:, None] / dim_t  # [W, npf]
    py = torch.stack((py[:, 0::2].sin(), py[:, 1::2].cos()), dim=2).flatten(1)  # [H, npf]
    px = torch.stack((px[:, 0::2].sin(), px[:, 1::2].cos()), dim=2).flatten(1)  # [W, npf]
    pos = torch.cat((py[:, None, :].expand(height, width, npf), px[None, :, :].expand(height, width, npf)), 2)
    return pos.reshape(height * width, dim)  # [H*W, dim]


class DecoderLayer(nn.Module):
    """Post-norm transformer decoder layer (DETR): self-attention, cross-attention, feed-forward."""

    def __init__(self, dim: int, nheads: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, nheads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, nheads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tgt: Tensor, query_pos: Tensor, memory: Tensor, pos: Tensor) -> Tensor:
        """``tgt, query_pos: Tensor[N, Q, D]``, ``memory, pos: Tensor[N, S, D]`` -> ``Tensor[N, Q, D]``."""
        q = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout(self.self_attn(q, q, tgt, need_weights=False)[0]))
        attn = self.cross_attn(tgt + query_pos, memory + pos, memory, need_weights=False)[0]
        tgt = self.norm2(tgt + self.dropout(attn))
        ff = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout(ff))


class SetTransformer(nn.Module):
    """Transformer-decoder object queries over flattened feature levels.

    Args:
        in_channels: channels of each feature level (``backbone.channels``).
        num_classes: C; the class predictor has C+1 outputs, the last is no-object.
        num_queries: Q object queries (at least the largest number of objects per frame).
        dec_layers: decoder layers (one prediction set each).
        hidden_dim: width D of the decoder (a multiple of 4 and of ``nheads``).
        nheads: attention heads.
        dim_feedforward: hidden width of the feed-forward blocks.
        dropout: dropout of attention and feed-forward blocks.

    Raises:
        ValueError: non-positive sizes, ``hidden_dim`` not a multiple of 4 or of ``nheads``.
    """

    def __init__(self, in_channels: list[int], num_classes: int, num_queries: int = 100, dec_layers: int = 6,
                 hidden_dim: int = 256, nheads: int = 8, dim_feedforward: int = 1024, dropout: float = 0.1):
        super().__init__()
        check_sizes("SetTransformer", {"num_classes": num_classes, "num_queries": num_queries,
                                       "dec_layers": dec_layers, "hidden_dim": hidden_dim, "nheads": nheads,
                                       "dim_feedforward": dim_feedforward,
                                       "feature levels": len(in_channels)})
        check_heads("SetTransformer", "hidden_dim", hidden_dim, "nheads", nheads, multiple_of_4=True)
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.hidden_dim = hidden_dim
        self.input_proj = nn.ModuleList([nn.Conv2d(c, hidden_dim, 1) for c in in_channels])
        self.level_embed = nn.Parameter(torch.empty(len(in_channels), hidden_dim).normal_(std=0.02))
        self.query_pos = nn.Embedding(num_queries, hidden_dim)
        self.query_content = nn.Embedding(num_queries, hidden_dim)
        self.layers = nn.ModuleList([DecoderLayer(hidden_dim, nheads, dim_feedforward, dropout)
                                     for _ in range(dec_layers)])
        self.norm = nn.LayerNorm(hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.bbox_embed = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                                        nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                                        nn.Linear(hidden_dim, 4))
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def memory(self, features: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Flattened, projected levels and their positional encodings.

        Args:
            features: per level ``Tensor[N, C_l, H_l, W_l]``.

        Returns:
            ``memory Tensor[N, S, D]`` and ``pos Tensor[1, S, D]`` (sine encoding + level embedding).
        """
        mems: list[Tensor] = []
        poss: list[Tensor] = []
        for i, proj in enumerate(self.input_proj):
            f = proj(features[i])  # [N, D, H_l, W_l]
            h, w = f.shape[2], f.shape[3]
            mems.append(f.flatten(2).transpose(1, 2))  # [N, H_l*W_l, D]
            pe = sine_position_encoding(h, w, self.hidden_dim, f.device).to(f.dtype)  # [H_l*W_l, D]
            poss.append(pe + self.level_embed[i])
        return torch.cat(mems, 1), torch.cat(poss, 0).unsqueeze(0)

    def forward(self, features: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Predictions of every decoder layer.

        Args:
            features: per level ``Tensor[N, C_l, H_l, W_l]`` (as many levels as ``in_channels``).

        Returns:
            ``logits Tensor[L, N, Q, C+1]`` (last = no-object) and ``boxes Tensor[L, N, Q, 4]`` (normalised
            cx, cy, w, h in (0, 1)), layer L−1 being the final prediction.
        """
        if len(features) != len(self.input_proj):
            raise ValueError(f"SetTransformer: expected {len(self.input_proj)} feature levels, got "
                             f"{len(features)}")
        memory, pos = self.memory(features)  # [N, S, D], [1, S, D]
        n = memory.shape[0]
        pos = pos.expand(n, pos.shape[1], pos.shape[2])  # [N, S, D]
        q, d = self.num_queries, self.hidden_dim
        query_pos = self.query_pos.weight.unsqueeze(0).expand(n, q, d)  # [N, Q, D]
        tgt = self.query_content.weight.unsqueeze(0).expand(n, q, d)  # [N, Q, D]
        outs: list[Tensor] = []
        for layer in self.layers:
            tgt = layer(tgt, query_pos, memory, pos)
            outs.append(self.norm(tgt))
        hs = torch.stack(outs, 0)  # [L, N, Q, D]
        return self.class_embed(hs), self.bbox_embed(hs).sigmoid()
