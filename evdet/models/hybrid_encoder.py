"""RT-DETR's hybrid encoder (Zhao et al. 2024, "DETRs Beat YOLOs on Real-time Object Detection") over three
feature levels of strides s, 2s, 4s. TorchScript-able.

1. Each level is projected to ``hidden_dim`` channels (1×1 convolution without bias + BatchNorm).
2. AIFI (intra-scale interaction): ``num_encoder_layers`` post-norm transformer encoder layers
   (self-attention, feed-forward with GELU) over the tokens of the coarsest level only, with a 2-D sin-cos
   positional encoding (:func:`sincos_position_encoding`).
3. CCFM (cross-scale fusion): a top-down pass (1×1 lateral conv-BN-SiLU of the coarser map, nearest
   upsampling to the finer map, concatenation, :class:`CSPRepLayer`) then a bottom-up pass (3×3 / 2
   conv-BN-SiLU, concatenation, :class:`CSPRepLayer`).

Returns three maps ``Tensor[N, hidden_dim, H_l, W_l]`` at the input resolutions. Differences from RT-DETR's
code, both for inputs whose sizes are not powers of two times each other (event sensors: 240×304 at
stride 32 is 8×10 against 15×19 at stride 16):

- upsampling goes to the finer map's size (nearest-exact), not by a factor 2 (the same on exact halves);
- the positional encoding enumerates the tokens row-major, as the tokens are flattened; RT-DETR builds
  it column-major, which gives the right positions only on square maps (its 640×640 COCO input).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evdet.models.checks import check_heads, check_sizes
from evdet.models.yolox_blocks import BaseConv, activation
from evdet.models.yolox_pafpn import upsample_to


def sincos_position_encoding(height: int, width: int, dim: int, temperature: float = 10000.0,
                             device: torch.device | None = None) -> Tensor:
    """2-D sin-cos positional encoding of a ``height × width`` grid of tokens flattened row-major.

    Token ``(y, x)`` gets ``[sin(x·ω_k), cos(x·ω_k), sin(y·ω_k), cos(y·ω_k)]`` (each block ``dim / 4``
    features, ``ω_k = temperature^(−k / (dim/4))``, coordinates in cells, not normalised).

    Returns:
        ``Tensor[1, height·width, dim]`` float32.

    Raises:
        ValueError: ``dim`` not a multiple of 4.
    """
    if dim % 4 != 0:
        raise ValueError(f"sincos_position_encoding: dim must be a multiple of 4, got {dim}")
    pos_dim = dim // 4
    omega = 1.0 / temperature ** (torch.arange(pos_dim, dtype=torch.float32, device=device) / pos_dim)
    ys = torch.arange(height, dtype=torch.float32, device=device).repeat_interleave(width)  # [H*W]
    xs = torch.arange(width, dtype=torch.float32, device=device).repeat(height)  # [H*W]
    out_x = xs[:, None] * omega[None]  # [H*W, dim/4]
    out_y = ys[:, None] * omega[None]
    return torch.cat((out_x.sin(), out_x.cos(), out_y.sin(), out_y.cos()), dim=1)[None]


class RepVggBlock(nn.Module):
    """``act(BN(conv3×3(x)) + BN(conv1×1(x)))`` (RepVGG's training-time form, as RT-DETR trains it)."""

    def __init__(self, channels: int, act: str = "silu"):
        super().__init__()
        self.conv1 = BaseConv(channels, channels, 3, 1, act="none")
        self.conv2 = BaseConv(channels, channels, 1, 1, act="none")
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv1(x) + self.conv2(x))


class CSPRepLayer(nn.Module):
    """RT-DETR's fusion block: ``conv3(blocks(conv1(x)) + conv2(x))`` with 1×1 conv-BN-act ``conv1`` and
    ``conv2`` to ``hidden = int(out · expansion)`` channels, ``num_blocks`` :class:`RepVggBlock`, and
    ``conv3`` a 1×1 conv-BN-act to ``out`` when ``hidden != out`` (else the identity)."""

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int = 3, expansion: float = 1.0,
                 act: str = "silu"):
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, 1, act=act)
        self.conv2 = BaseConv(in_channels, hidden, 1, 1, act=act)
        self.bottlenecks = nn.Sequential(*[RepVggBlock(hidden, act) for _ in range(num_blocks)])
        self.conv3 = (BaseConv(hidden, out_channels, 1, 1, act=act) if hidden != out_channels
                      else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(self.bottlenecks(self.conv1(x)) + self.conv2(x))


class EncoderLayer(nn.Module):
    """Post-norm transformer encoder layer: self-attention (positions added to queries and keys), then a
    feed-forward block with GELU; ``Tensor[N, S, D] -> Tensor[N, S, D]``."""

    def __init__(self, dim: int, nheads: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, nheads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: Tensor, pos: Tensor) -> Tensor:
        q = src + pos
        src = self.norm1(src + self.dropout1(self.self_attn(q, q, src, need_weights=False)[0]))
        ff = self.linear2(self.dropout(F.gelu(self.linear1(src))))
        return self.norm2(src + self.dropout2(ff))


class HybridEncoder(nn.Module):
    """Input projection, AIFI on the coarsest level and CCFM fusion of three levels (module docstring).

    Args:
        in_channels: channels of the three levels, finest first.
        hidden_dim: D, channels of every output level (a multiple of 4 and of ``nheads``).
        nheads: attention heads of the AIFI layers.
        dim_feedforward: hidden width of their feed-forward blocks.
        dropout: their dropout (RT-DETR: 0).
        num_encoder_layers: AIFI layers (0: no attention, CCFM only).
        depth_mult: ``round(3 · depth_mult)`` RepVGG blocks per :class:`CSPRepLayer`.
        expansion: hidden width of the CSP layers relative to D.
        act: activation of the CCFM convolutions (``silu``, ``relu``, ``lrelu``).
        pe_temperature: temperature of the positional encoding.

    Raises:
        ValueError: not three levels, non-positive sizes, ``hidden_dim`` not a multiple of 4 and ``nheads``.
    """

    def __init__(self, in_channels: list[int], hidden_dim: int = 256, nheads: int = 8,
                 dim_feedforward: int = 1024, dropout: float = 0.0, num_encoder_layers: int = 1,
                 depth_mult: float = 1.0, expansion: float = 1.0, act: str = "silu",
                 pe_temperature: float = 10000.0):
        super().__init__()
        if len(in_channels) != 3 or any(int(c) < 1 for c in in_channels):
            raise ValueError(f"HybridEncoder: needs three positive channel counts, got {list(in_channels)}")
        check_sizes("HybridEncoder", {"hidden_dim": hidden_dim, "nheads": nheads,
                                      "dim_feedforward": dim_feedforward})
        check_heads("HybridEncoder", "hidden_dim", hidden_dim, "nheads", nheads, multiple_of_4=True)
        if num_encoder_layers < 0 or not depth_mult > 0 or not expansion > 0:
            raise ValueError(f"HybridEncoder: need num_encoder_layers >= 0, depth_mult > 0, expansion > 0, "
                             f"got {num_encoder_layers}, {depth_mult}, {expansion}")
        self.hidden_dim = hidden_dim
        self.pe_temperature = float(pe_temperature)
        self.input_proj = nn.ModuleList([
            nn.Sequential(nn.Conv2d(int(c), hidden_dim, 1, bias=False), nn.BatchNorm2d(hidden_dim))
            for c in in_channels])
        self.encoder = nn.ModuleList([EncoderLayer(hidden_dim, nheads, dim_feedforward, dropout)
                                      for _ in range(num_encoder_layers)])
        blocks = round(3 * depth_mult)
        # top-down: index 0 fuses level 2 into level 1, index 1 level 1 into level 0
        self.lateral_convs = nn.ModuleList([BaseConv(hidden_dim, hidden_dim, 1, 1, act=act)
                                            for _ in range(2)])
        self.fpn_blocks = nn.ModuleList([CSPRepLayer(2 * hidden_dim, hidden_dim, blocks, expansion, act)
                                         for _ in range(2)])
        # bottom-up: index 0 fuses level 0 into level 1, index 1 level 1 into level 2
        self.downsample_convs = nn.ModuleList([BaseConv(hidden_dim, hidden_dim, 3, 2, act=act)
                                               for _ in range(2)])
        self.pan_blocks = nn.ModuleList([CSPRepLayer(2 * hidden_dim, hidden_dim, blocks, expansion, act)
                                         for _ in range(2)])

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """``features``: three ``Tensor[N, C_l, H_l, W_l]``, finest first -> three
        ``Tensor[N, D, H_l, W_l]``."""
        proj = [p(features[i]) for i, p in enumerate(self.input_proj)]
        if len(self.encoder) > 0:
            top = proj[2]
            n, d, h, w = top.shape
            src = top.flatten(2).transpose(1, 2)  # [N, h*w, D], row-major tokens
            pos = sincos_position_encoding(h, w, d, self.pe_temperature, src.device).to(src.dtype)
            for layer in self.encoder:
                src = layer(src, pos)
            proj[2] = src.transpose(1, 2).reshape(n, d, h, w)
        # top-down (CCFM): coarse to fine
        high = self.lateral_convs[0](proj[2])
        mid = self.fpn_blocks[0](torch.cat((upsample_to(high, proj[1]), proj[1]), dim=1))
        mid_lat = self.lateral_convs[1](mid)
        out0 = self.fpn_blocks[1](torch.cat((upsample_to(mid_lat, proj[0]), proj[0]), dim=1))
        # bottom-up (CCFM): fine to coarse, fused with the lateral outputs of the top-down pass
        out1 = self.pan_blocks[0](torch.cat((self.downsample_convs[0](out0), mid_lat), dim=1))
        out2 = self.pan_blocks[1](torch.cat((self.downsample_convs[1](out1), high), dim=1))
        return [out0, out1, out2]
