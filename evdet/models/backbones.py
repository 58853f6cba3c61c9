"""Recurrent feature extractors (SPEC 5): ``Vanilla``, ``Vanilla_VGG``, ``Vanilla_VGGRU``.

The backbone contract (every backbone, these and any other, follows it; docs/architecture.md):

- ``forward(x: Tensor[T, B, C, H, W]) -> list[Tensor[T, B, C_l, H_l, W_l]]``, one entry per feature level,
  updating the recurrent state;
- attributes ``in_channels`` (C), ``channels`` (C_l per level) and ``strides`` (nominal stride per level:
  ``H_l = ceil(H / stride)`` as each stride-2 convolution rounds up), from which heads are sized;
- the stateful API ``reset(mask_keep_memory: Tensor[B])``, ``reset_all()``, ``detach()`` and the explicit
  one ``get_state() -> list[Tensor]`` / ``set_state(list[Tensor])``: the state as a flat, ordered list
  (level by level, each level's tensors in its own order), ``[]`` before the first call. Zeroing a
  column's slice of every state tensor is the same as ``reset`` of that column.

TorchScript-able.
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn

from evdet.models.convrnn import ConvGRU, ConvLSTM


def _conv_bn_relu(cin: int, cout: int, kernel_size: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SqueezeExcite(nn.Module):
    """Channel attention: ``x · σ(W2 relu(W1 mean_hw(x)))``."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        w = x.mean(dim=(2, 3), keepdim=True)  # [N, C, 1, 1]
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(w))))


class SEResidualBlock(nn.Module):
    """Two 3×3 conv-BN, squeeze-excite, residual (1×1 projection when shape changes), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv_bn_relu(cin, cout, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.se = SqueezeExcite(cout)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.se(self.conv2(self.conv1(x))) + self.shortcut(x))


class RecurrentBackbone(nn.Module):
    """A per-bin convolutional stem followed by stride-2 recurrent levels, each one an output level.

    Args:
        in_channels: input channels C.
        stem: module mapping ``Tensor[N, C, H, W]`` to ``Tensor[N, stem_channels, H/s, W/s]``.
        stem_channels, stem_stride: its output channels and total stride s.
        cout: channels of every recurrent level.
        num_levels: number of recurrent levels (strides s·2, s·4, ...).
        cell: ``"lstm"`` or ``"gru"``.
    """

    def __init__(self, in_channels: int, stem: nn.Module, stem_channels: int, stem_stride: int, cout: int,
                 num_levels: int = 5, cell: str = "lstm"):
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"RecurrentBackbone: cell must be 'lstm' or 'gru', got {cell!r}")
        self.in_channels = in_channels
        self.stem = stem
        levels = []
        cin = stem_channels
        for _ in range(num_levels):
            levels.append(ConvLSTM(cin, cout, 3, 2) if cell == "lstm" else ConvGRU(cin, cout, 3, 2))
            cin = cout
        self.levels = nn.ModuleList(levels)
        self.channels: list[int] = [cout] * num_levels
        self.strides: list[int] = [stem_stride * 2 ** (i + 1) for i in range(num_levels)]

    def forward(self, x: Tensor) -> list[Tensor]:
        """``Tensor[T, B, C, H, W]`` -> list of ``Tensor[T, B, C_l, H_l, W_l]``, one per level."""
        if x.dim() != 5 or x.shape[2] != self.in_channels:
            raise ValueError(f"backbone: expected Tensor[T, B, {self.in_channels}, H, W], got shape "
                             f"{list(x.shape)}")
        t, b = x.shape[0], x.shape[1]
        y = self.stem(x.flatten(0, 1))  # [T*B, stem_channels, H/s, W/s]
        y = y.view(t, b, y.shape[1], y.shape[2], y.shape[3])  # [T, B, stem_channels, H/s, W/s]
        outs: list[Tensor] = []
        for level in self.levels:
            y = level(y)
            outs.append(y)
        return outs

    @torch.jit.export
    def reset(self, mask: Tensor) -> None:
        """Zero the state of columns where ``mask [B]`` is 0 (all levels) and detach it."""
        for level in self.levels:
            level.reset(mask)

    @torch.jit.export
    def reset_all(self) -> None:
        for level in self.levels:
            level.reset_all()

    @torch.jit.export
    def detach(self) -> None:
        for level in self.levels:
            level.detach()

    @torch.jit.export
    def get_state(self) -> list[Tensor]:
        """Every level's state tensors, level by level (``[]`` when some level has none yet)."""
        out: list[Tensor] = []
        for level in self.levels:
            s = level.get_state()
            if len(s) == 0:
                return []
            out.extend(s)
        return out

    @torch.jit.export
    def set_state(self, state: list[Tensor]) -> None:
        """Set every level's state from a list in :meth:`get_state`'s order (``[]``: forget all state).

        Raises:
            ValueError: the list does not have the backbone's number of state tensors.
        """
        if len(state) == 0:
            self.reset_all()
            return
        expected = 0
        for level in self.levels:
            expected += level.num_state_tensors
        if len(state) != expected:
            raise ValueError(f"set_state: expected {expected} state tensors, got {len(state)}")
        i = 0
        for level in self.levels:
            n = level.num_state_tensors
            level.set_state(state[i:i + n])
            i += n


def Vanilla(in_channels: int, base: int = 16, cout: int = 256) -> RecurrentBackbone:  # noqa: N802
    """7×7/2 conv to 2b, SE residual blocks 2b→4b (/2), 4b→4b, 4b→8b, 5 ConvLSTM levels: strides 8…128."""
    stem = nn.Sequential(
        _conv_bn_relu(in_channels, 2 * base, 7, 2),
        SEResidualBlock(2 * base, 4 * base, 2),
        SEResidualBlock(4 * base, 4 * base, 1),
        SEResidualBlock(4 * base, 8 * base, 1),
    )
    return RecurrentBackbone(in_channels, stem, 8 * base, 4, cout, 5, "lstm")


def _vgg_stem(in_channels: int, base: int) -> nn.Sequential:
    chans = [base, 2 * base, 2 * base, 2 * base, 4 * base, 8 * base]
    strides = [1, 2, 1, 2, 1, 2]
    layers = []
    cin = in_channels
    for c, s in zip(chans, strides, strict=True):
        layers.append(_conv_bn_relu(cin, c, 3, s))
        cin = c
    return nn.Sequential(*layers)


def Vanilla_VGG(in_channels: int, base: int = 16, cout: int = 256) -> RecurrentBackbone:  # noqa: N802
    """Six 3×3 conv-BN-ReLU (strides 1,2,1,2,1,2; b,2b,2b,2b,4b,8b), 5 ConvLSTM levels: strides 16…256."""
    return RecurrentBackbone(in_channels, _vgg_stem(in_channels, base), 8 * base, 8, cout, 5, "lstm")


def Vanilla_VGGRU(in_channels: int, base: int = 16, cout: int = 256) -> RecurrentBackbone:  # noqa: N802
    """As :func:`Vanilla_VGG` with ConvGRU levels."""
    return RecurrentBackbone(in_channels, _vgg_stem(in_channels, base), 8 * base, 8, cout, 5, "gru")


BACKBONES: dict[str, Callable[..., RecurrentBackbone]] = {
    "Vanilla": Vanilla,
    "Vanilla_VGG": Vanilla_VGG,
    "Vanilla_VGGRU": Vanilla_VGGRU,
}


def build_backbone(name: str, in_channels: int, base: int = 16, cout: int = 256) -> RecurrentBackbone:
    """Build a backbone by name; unknown name -> ValueError listing ``BACKBONES``."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choices: {sorted(BACKBONES)}")
    return BACKBONES[name](in_channels, base, cout)
