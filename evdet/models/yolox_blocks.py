"""YOLOX's convolution blocks (conv-BN-activation, depthwise pair, bottleneck, CSP layer), as RVT uses them.

The module and parameter names are those of YOLOX's ``network_blocks.py`` (``conv``, ``bn``, ``dconv``,
``pconv``, ``conv1`` … ``conv3``, ``m``), so that a YOLOX / RVT state dict loads by key. Every block maps
``Tensor[N, C_in, H, W]`` to ``Tensor[N, C_out, H', W']`` with "same" padding (``H' = ceil(H / stride)``).
TorchScript-able.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: activation name -> module factory (YOLOX's ``get_activation``; all in place; ``none``: the identity, for
#: RT-DETR's convolutions without activation)
ACTIVATIONS = {
    "silu": lambda: nn.SiLU(inplace=True),
    "relu": lambda: nn.ReLU(inplace=True),
    "lrelu": lambda: nn.LeakyReLU(0.1, inplace=True),
    "none": nn.Identity,
}


def activation(name: str) -> nn.Module:
    """The activation module called ``name`` (a key of :data:`ACTIVATIONS`).

    Raises:
        ValueError: unknown name (the valid ones are listed).
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"YOLOX blocks: unknown activation {name!r}; valid ones are {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class BaseConv(nn.Module):
    """``act(BN(conv(x)))``: a k×k convolution without bias, padding ``(k - 1) // 2``, BatchNorm2d (torch
    defaults: eps 1e-5, momentum 0.1), then the activation."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int, stride: int, groups: int = 1,
                 act: str = "silu"):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, ksize, stride, (ksize - 1) // 2, groups=groups,
                              bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class DWConv(nn.Module):
    """Depthwise k×k :class:`BaseConv` (carrying the stride) followed by a pointwise 1×1 one."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int, stride: int = 1, act: str = "silu"):
        super().__init__()
        self.dconv = BaseConv(in_channels, in_channels, ksize, stride, groups=in_channels, act=act)
        self.pconv = BaseConv(in_channels, out_channels, 1, 1, act=act)

    def forward(self, x: Tensor) -> Tensor:
        return self.pconv(self.dconv(x))


def conv_block(in_channels: int, out_channels: int, ksize: int, stride: int, depthwise: bool,
               act: str) -> nn.Module:
    """:class:`DWConv` when ``depthwise`` else :class:`BaseConv` (YOLOX's ``Conv`` switch)."""
    if depthwise:
        return DWConv(in_channels, out_channels, ksize, stride, act=act)
    return BaseConv(in_channels, out_channels, ksize, stride, act=act)


class Bottleneck(nn.Module):
    """1×1 conv to ``int(out · expansion)`` channels, 3×3 conv back to ``out``; residual added when
    ``shortcut`` and ``in == out``."""

    def __init__(self, in_channels: int, out_channels: int, shortcut: bool = True, expansion: float = 0.5,
                 depthwise: bool = False, act: str = "silu"):
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, 1, act=act)
        self.conv2 = conv_block(hidden, out_channels, 3, 1, depthwise, act)
        self.use_add = bool(shortcut and in_channels == out_channels)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(self.conv1(x))
        if self.use_add:
            y = y + x
        return y


class CSPLayer(nn.Module):
    """CSP bottleneck with three convolutions (YOLOv5's C3): ``conv3(cat(m(conv1(x)), conv2(x)))`` where
    conv1 and conv2 are 1×1 to ``hidden = int(out · expansion)`` channels and ``m`` is ``n`` bottlenecks
    ``hidden → hidden`` (expansion 1.0)."""

    def __init__(self, in_channels: int, out_channels: int, n: int = 1, shortcut: bool = True,
                 expansion: float = 0.5, depthwise: bool = False, act: str = "silu"):
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, 1, act=act)
        self.conv2 = BaseConv(in_channels, hidden, 1, 1, act=act)
        self.conv3 = BaseConv(2 * hidden, out_channels, 1, 1, act=act)
        self.m = nn.Sequential(*[Bottleneck(hidden, hidden, shortcut, 1.0, depthwise, act=act)
                                 for _ in range(n)])

    def forward(self, x: Tensor) -> Tensor:
        x_1 = self.m(self.conv1(x))
        x_2 = self.conv2(x)
        return self.conv3(torch.cat((x_1, x_2), dim=1))
