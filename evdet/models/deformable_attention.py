"""Multi-scale deformable attention (Zhu et al., "Deformable DETR", ICLR 2021), as in RT-DETR's decoder.

Each query attends to a few points per head and per feature level instead of to every token: a linear layer
predicts, from the query, ``P`` sampling offsets per (head, level) around a reference point and
another their weights (a softmax over the ``L·P`` points of a head); the head's output is the weighted sum
of the value maps sampled bilinearly (zero outside the map) at those locations. TorchScript-able and
exportable to ONNX (opset >= 16, ``GridSample``).

Coordinates: locations are normalised ``(x, y)`` over each level's map, 0 = left / top edge, 1 = right /
bottom edge, so pixel centre ``(i, j)`` of an ``h × w`` level is at ``((j + 0.5)/w, (i + 0.5)/h)``
(``grid_sample`` with ``align_corners=False``). Levels share the normalised frame: the same location
falls on the same image point in every level.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evdet.models.checks import check_heads, check_sizes


def ms_deformable_attention(value: Tensor, spatial_shapes: list[tuple[int, int]], sampling_locations: Tensor,
                            attention_weights: Tensor) -> Tensor:
    """Weighted sum of bilinear samples of every head's value maps (the core of deformable attention).

    Args:
        value: ``Tensor[N, S, H, Dh]``, the L levels flattened row-major and concatenated in order,
            ``S = sum_l h_l·w_l``; H heads of Dh channels.
        spatial_shapes: per level its ``(height, width)`` ``(h_l, w_l)`` in tokens.
        sampling_locations: ``Tensor[N, Q, H, L, P, 2]``, normalised ``(x, y)`` per level (see the module
            docstring); locations outside ``[0, 1]`` sample zeros.
        attention_weights: ``Tensor[N, Q, H, L, P]``, the weight of each sample (RT-DETR: softmax over L·P).

    Returns:
        ``Tensor[N, Q, H·Dh]``: per query the heads' outputs concatenated, head-major.

    Raises:
        ValueError: ``S`` differs from ``sum_l h_l·w_l``, or the levels / heads of the arguments disagree.
    """
    n, s, num_heads, head_dim = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    sizes = [h * w for h, w in spatial_shapes]
    if len(spatial_shapes) != num_levels or sum(sizes) != s:
        raise ValueError(f"ms_deformable_attention: value has {s} tokens and sampling_locations "
                         f"{num_levels} levels, spatial_shapes {spatial_shapes} give {len(spatial_shapes)} "
                         f"levels of {sum(sizes)} tokens")
    if (sampling_locations.shape[2] != num_heads
            or attention_weights.shape[2:] != sampling_locations.shape[2:5]):
        raise ValueError(f"ms_deformable_attention: value has {num_heads} heads, sampling_locations "
                         f"[N, Q, H, L, P, 2] = {list(sampling_locations.shape)}, attention_weights "
                         f"[N, Q, H, L, P] = {list(attention_weights.shape)}")
    grids = 2.0 * sampling_locations - 1.0  # [N, Q, H, L, P, 2] in grid_sample's [-1, 1]
    samples: list[Tensor] = []
    for level, value_l in enumerate(value.split(sizes, dim=1)):
        h, w = spatial_shapes[level]
        value_l = value_l.permute(0, 2, 3, 1).reshape(n * num_heads, head_dim, h, w)  # [N*H, Dh, h_l, w_l]
        grid_l = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)  # [N*H, Q, P, 2]
        samples.append(F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros",
                                     align_corners=False))  # [N*H, Dh, Q, P]
    sampled = torch.stack(samples, dim=-2).flatten(-2)  # [N*H, Dh, Q, L*P], level-major as the weights
    weights = attention_weights.transpose(1, 2).reshape(n * num_heads, 1, num_queries,
                                                        num_levels * num_points)  # [N*H, 1, Q, L*P]
    out = (sampled * weights).sum(-1).reshape(n, num_heads * head_dim, num_queries)  # [N, H*Dh, Q]
    return out.transpose(1, 2).contiguous()  # [N, Q, H*Dh]


class MSDeformableAttention(nn.Module):
    """Multi-scale deformable attention of queries to flattened feature levels (RT-DETR's layer).

    Layers: ``sampling_offsets`` (D → H·L·P·2), ``attention_weights`` (D → H·L·P), ``value_proj`` and
    ``output_proj`` (D → D). Initialisation (RT-DETR / Deformable DETR): offsets' weight 0 and bias the
    "grid" — head h points in direction ``2πh/H``, ``(cos, sin)`` scaled so that its larger component is
    ±1, point p (0-based) at ``p + 1`` times that, the same on every level; attention weights' weight and
    bias 0 (uniform weights); projections xavier-uniform with zero bias.

    Args:
        embed_dim: D, width of queries and values (a multiple of ``num_heads``).
        num_heads: H.
        num_levels: L, feature levels of the value.
        num_points: P, sampling points per head and level.

    Raises:
        ValueError: a size < 1, or ``embed_dim`` not a multiple of ``num_heads``.
    """

    def __init__(self, embed_dim: int = 256, num_heads: int = 8, num_levels: int = 4, num_points: int = 4):
        super().__init__()
        check_sizes("MSDeformableAttention", {"embed_dim": embed_dim, "num_heads": num_heads,
                                              "num_levels": num_levels, "num_points": num_points})
        check_heads("MSDeformableAttention", "embed_dim", embed_dim, "num_heads", num_heads)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.head_dim = embed_dim // num_heads
        total = num_heads * num_levels * num_points
        self.sampling_offsets = nn.Linear(embed_dim, total * 2)
        self.attention_weights = nn.Linear(embed_dim, total)
        self.value_proj = nn.Linear(embed_dim, embed_dim)
        self.output_proj = nn.Linear(embed_dim, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """RT-DETR's initialisation (see the class docstring)."""
        h, l, p = self.num_heads, self.num_levels, self.num_points
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(h, dtype=torch.float32) * (2.0 * math.pi / h)  # [H]
        grid = torch.stack((thetas.cos(), thetas.sin()), -1)  # [H, 2] (x, y)
        grid = grid / grid.abs().max(-1, keepdim=True).values
        grid = grid[:, None, None, :].repeat(1, l, p, 1)  # [H, L, P, 2]
        grid = grid * torch.arange(1, p + 1, dtype=torch.float32)[None, None, :, None]
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def sampling_locations(self, query: Tensor, reference_points: Tensor,
                           spatial_shapes: list[tuple[int, int]]) -> Tensor:
        """Where each head samples each level: reference points moved by the predicted offsets.

        Args:
            query: ``Tensor[N, Q, D]``.
            reference_points: ``Tensor[N, Q, 1, 2]`` normalised ``(x, y)`` points, offsets then count in
                pixels of each level (divided by ``(w_l, h_l)``); or ``Tensor[N, Q, 1, 4]`` normalised
                ``(cx, cy, w, h)`` boxes, offsets then count in ``P``-ths of the half box size (the grid
                init's farthest point lands on the box edge). The third dim may also be L (one per level).
            spatial_shapes: per level ``(height, width)`` ``(h_l, w_l)``.

        Returns:
            ``Tensor[N, Q, H, L, P, 2]`` normalised ``(x, y)``.

        Raises:
            ValueError: ``reference_points`` of another shape, or not L ``spatial_shapes``.
        """
        n, q = query.shape[0], query.shape[1]
        if len(spatial_shapes) != self.num_levels:
            raise ValueError(f"MSDeformableAttention: {self.num_levels} levels expected, spatial_shapes "
                             f"has {len(spatial_shapes)}: {spatial_shapes}")
        if (reference_points.dim() != 4 or reference_points.shape[0] != n or reference_points.shape[1] != q
                or (reference_points.shape[2] != 1 and reference_points.shape[2] != self.num_levels)
                or (reference_points.shape[3] != 2 and reference_points.shape[3] != 4)):
            raise ValueError(f"MSDeformableAttention: reference_points must be [N, Q, 1 or L, 2 or 4] = "
                             f"[{n}, {q}, 1 or {self.num_levels}, 2 or 4], "
                             f"got {list(reference_points.shape)}")
        offsets = self.sampling_offsets(query).reshape(
            n, q, self.num_heads, self.num_levels, self.num_points, 2)  # [N, Q, H, L, P, 2]
        ref = reference_points[:, :, None, :, None, :]  # [N, Q, 1, 1 or L, 1, 2 or 4]
        if reference_points.shape[3] == 2:
            wh: list[float] = []
            for h, w in spatial_shapes:
                wh.append(float(w))
                wh.append(float(h))
            normalizer = torch.tensor(wh, dtype=offsets.dtype, device=offsets.device).reshape(
                1, 1, 1, self.num_levels, 1, 2)  # (w_l, h_l) per level
            return ref + offsets / normalizer
        return ref[..., :2] + offsets / self.num_points * ref[..., 2:] * 0.5

    def forward(self, query: Tensor, reference_points: Tensor, value: Tensor,
                spatial_shapes: list[tuple[int, int]], value_mask: Tensor | None = None) -> Tensor:
        """Attend from each query to ``L·P`` sampled points per head.

        Args:
            query: ``Tensor[N, Q, D]`` (content + positional embedding in RT-DETR).
            reference_points: ``Tensor[N, Q, 1, 2]`` normalised points or ``Tensor[N, Q, 1, 4]`` normalised
                ``(cx, cy, w, h)`` boxes (see :meth:`sampling_locations`).
            value: ``Tensor[N, S, D]``, the L levels flattened row-major and concatenated,
                ``S = sum_l h_l·w_l``.
            spatial_shapes: per level ``(height, width)`` ``(h_l, w_l)``.
            value_mask: ``Tensor[N, S]`` bool, True = valid token; invalid tokens are zeroed after
                ``value_proj`` (they sample as zeros, like outside the map).

        Returns:
            ``Tensor[N, Q, D]``.

        Raises:
            ValueError: D or S inconsistent with the layer and ``spatial_shapes``, a bad
                ``reference_points`` shape (see :meth:`sampling_locations`), ``value_mask`` not ``[N, S]``.
        """
        n, q, s = query.shape[0], query.shape[1], value.shape[1]
        if query.shape[-1] != self.embed_dim or value.shape[-1] != self.embed_dim or value.shape[0] != n:
            raise ValueError(f"MSDeformableAttention: query [N, Q, D] = {list(query.shape)} and value "
                             f"[N, S, D] = {list(value.shape)} must share N and have D = {self.embed_dim}")
        total = 0
        for h, w in spatial_shapes:
            total += h * w
        if total != s:
            raise ValueError(f"MSDeformableAttention: value has {s} tokens, spatial_shapes {spatial_shapes} "
                             f"give {total}")
        value = self.value_proj(value)  # [N, S, D]
        if value_mask is not None:
            if value_mask.dim() != 2 or value_mask.shape[0] != n or value_mask.shape[1] != s:
                raise ValueError(f"MSDeformableAttention: value_mask must be [N, S] = [{n}, {s}], got "
                                 f"{list(value_mask.shape)}")
            value = value * value_mask.to(value.dtype).unsqueeze(-1)
        value = value.reshape(n, s, self.num_heads, self.head_dim)  # [N, S, H, Dh]
        locations = self.sampling_locations(query, reference_points, spatial_shapes)  # [N, Q, H, L, P, 2]
        weights = self.attention_weights(query).reshape(
            n, q, self.num_heads, self.num_levels * self.num_points)  # [N, Q, H, L*P]
        weights = weights.softmax(-1).reshape(
            n, q, self.num_heads, self.num_levels, self.num_points)  # [N, Q, H, L, P]
        return self.output_proj(ms_deformable_attention(value, spatial_shapes, locations, weights))
