"""YOLOX's PAFPN (path-aggregation feature pyramid) over three backbone levels, as RVT uses it.

Top-down: the coarsest level is reduced (1×1) and upsampled (nearest-exact, ×2) onto the middle one,
concatenated and fused by a CSP layer; the same again onto the finest level. Bottom-up: 3×3 stride-2
convolutions bring the fused maps back down, each concatenated with the top-down map of that level and
fused by a CSP layer. Each CSP layer has ``round(3 · depth)`` bottlenecks without shortcut. The outputs
have the input channels ``(c0, c1, c2)`` at the input resolutions.

The upsampling takes the size of the finer map, which for sizes that are exact doubles (RVT pads its
input to a multiple of 32) is RVT's ``interpolate(scale_factor=2, mode="nearest-exact")`` (same source
pixel for every output pixel), and for odd sizes (e.g. 240×304 at stride 32 gives 8×10 over 15×19) is the
nearest-exact resize onto it. Module names are RVT's (``lateral_conv0``, ``C3_p4``, ``reduce_conv1``,
``C3_p3``, ``bu_conv2``, ``C3_n3``, ``bu_conv1``, ``C3_n4``). TorchScript-able.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from evdet.models.yolox_blocks import BaseConv, CSPLayer, conv_block


def _nearest_exact_index(size_in: int, size_out: int, device: torch.device) -> Tensor:
    """Source index of every output pixel, as torch's nearest-exact kernel computes it:
    ``min(floor((i + 0.5) · (in / out)), in − 1)`` in float32."""
    scale = torch.tensor(float(size_in) / float(size_out), dtype=torch.float32, device=device)
    idx = ((torch.arange(size_out, dtype=torch.float32, device=device) + 0.5) * scale).floor()
    return idx.clamp(max=size_in - 1).to(torch.int64)


def upsample_to(x: Tensor, like: Tensor) -> Tensor:
    """``x`` ``Tensor[N, C, h, w]`` resized (nearest-exact, identical to ``F.interpolate(...,
    mode="nearest-exact")``, memory format included) to the spatial size of ``like`` ``Tensor[N, C', H, W]``;
    written as two index selections so that the ONNX exporter, which lacks nearest-exact, can export it."""
    rows = _nearest_exact_index(x.shape[-2], like.shape[-2], x.device)
    cols = _nearest_exact_index(x.shape[-1], like.shape[-1], x.device)
    out = x.index_select(2, rows).index_select(3, cols)
    if x.is_contiguous(memory_format=torch.channels_last):  # as F.interpolate: the input's memory format
        out = out.contiguous(memory_format=torch.channels_last)
    return out


class YoloxPAFPN(nn.Module):
    """The PAFPN of three levels of strides s, 2s, 4s.

    Args:
        in_channels: ``(c0, c1, c2)``, channels of the three levels, finest first.
        depth: depth multiplier; every CSP layer has ``round(3 · depth)`` bottlenecks (RVT-T/S 0.33,
            RVT-B 0.67).
        depthwise: depthwise-separable 3×3 convolutions (bottom-up and in the bottlenecks).
        act: activation name (:data:`evdet.models.yolox_blocks.ACTIVATIONS`).

    Raises:
        ValueError: not three levels, a non-positive channel count or ``depth``.
    """

    def __init__(self, in_channels: list[int], depth: float = 0.33, depthwise: bool = False,
                 act: str = "silu"):
        super().__init__()
        if len(in_channels) != 3 or any(int(c) < 1 for c in in_channels):
            raise ValueError(f"YoloxPAFPN: needs three positive channel counts, got {list(in_channels)}")
        if not depth > 0:
            raise ValueError(f"YoloxPAFPN: depth must be > 0, got {depth}")
        c0, c1, c2 = (int(c) for c in in_channels)
        n = round(3 * depth)
        self.in_channels = [c0, c1, c2]
        self.lateral_conv0 = BaseConv(c2, c1, 1, 1, act=act)
        self.C3_p4 = CSPLayer(2 * c1, c1, n, False, depthwise=depthwise, act=act)
        self.reduce_conv1 = BaseConv(c1, c0, 1, 1, act=act)
        self.C3_p3 = CSPLayer(2 * c0, c0, n, False, depthwise=depthwise, act=act)
        self.bu_conv2 = conv_block(c0, c0, 3, 2, depthwise, act)
        self.C3_n3 = CSPLayer(2 * c0, c1, n, False, depthwise=depthwise, act=act)
        self.bu_conv1 = conv_block(c1, c1, 3, 2, depthwise, act)
        self.C3_n4 = CSPLayer(2 * c1, c2, n, False, depthwise=depthwise, act=act)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """``[x2, x1, x0]`` (``Tensor[N, c0, H0, W0]``, ``[N, c1, H1, W1]``, ``[N, c2, H2, W2]``, finest
        first, ``H1 = ceil(H0 / 2)``, ``H2 = ceil(H1 / 2)``) -> the three fused maps, same shapes."""
        x2, x1, x0 = features[0], features[1], features[2]
        fpn_out0 = self.lateral_conv0(x0)  # [N, c1, H2, W2]
        f_out0 = self.C3_p4(torch.cat([upsample_to(fpn_out0, x1), x1], 1))  # [N, c1, H1, W1]
        fpn_out1 = self.reduce_conv1(f_out0)  # [N, c0, H1, W1]
        pan_out2 = self.C3_p3(torch.cat([upsample_to(fpn_out1, x2), x2], 1))  # [N, c0, H0, W0]
        p_out1 = torch.cat([self.bu_conv2(pan_out2), fpn_out1], 1)  # [N, 2 c0, H1, W1]
        pan_out1 = self.C3_n3(p_out1)  # [N, c1, H1, W1]
        p_out0 = torch.cat([self.bu_conv1(pan_out1), fpn_out0], 1)  # [N, 2 c1, H2, W2]
        pan_out0 = self.C3_n4(p_out0)  # [N, c2, H2, W2]
        return [pan_out2, pan_out1, pan_out0]
