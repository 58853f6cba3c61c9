"""Convolutional recurrent layers (ConvLSTM, ConvGRU) with explicit, resettable state (SPEC 5).

Each layer takes a whole chunk ``Tensor[T, B, C, H, W]``: the input-to-hidden convolution (which
also carries the layer's spatial stride) runs on all T bins at once, the hidden-to-hidden recurrence
runs bin by bin. The last hidden state is kept in the module between calls so that consecutive
chunks of a stream continue each other; ``reset(mask)``, ``reset_all()`` and ``detach()`` manage it, and
``get_state()`` / ``set_state(tensors)`` read and write it explicitly (ConvLSTM: ``[h, c]``, ConvGRU:
``[h]``, each ``Tensor[B, hidden, H', W']``; an empty list means "no state yet", i.e. zeros). The state is
re-created (zeros) whenever the batch size or the spatial size changes. TorchScript-able.
"""


import torch
from torch import Tensor, nn


def _check_input(x: Tensor, in_channels: int, name: str) -> None:
    if x.dim() != 5 or x.shape[2] != in_channels:
        raise ValueError(f"{name}: expected Tensor[T, B, {in_channels}, H, W], got shape {list(x.shape)}")


def _masked_state(state: Tensor | None, mask: Tensor) -> Tensor | None:
    """Zero the columns of ``state [B, C, H, W]`` where ``mask [B]`` is 0, detached from the graph."""
    if state is None:
        return None
    if mask.dim() != 1 or mask.shape[0] != state.shape[0]:
        return None  # batch size changed: the state is re-created at the next call anyway
    keep = mask.to(dtype=state.dtype, device=state.device).view(-1, 1, 1, 1)
    return state.detach() * keep


class _ConvRecurrent(nn.Module):
    """What ConvLSTM and ConvGRU share: sizes and the input-to-hidden convolution of all bins at once.

    Args:
        in_channels, hidden_channels, kernel_size, stride: see :class:`ConvLSTM`.
        num_gates: the input-to-hidden convolution outputs ``num_gates · hidden_channels`` channels.
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int, stride: int, num_gates: int):
        super().__init__()
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.conv_x2h = nn.Conv2d(in_channels, num_gates * hidden_channels, kernel_size, stride,
                                  kernel_size // 2)

    def _input_gates(self, x: Tensor, name: str) -> tuple[Tensor, list[int]]:
        """Check ``x [T, B, C, H, W]`` and convolve every bin: ``Tensor[T, B, G·hidden, H', W']`` and the
        state shape ``[B, hidden, H', W']``."""
        _check_input(x, self.in_channels, name)
        t, b = x.shape[0], x.shape[1]
        xh = self.conv_x2h(x.flatten(0, 1))  # [T*B, G*hidden, H', W']
        xh = xh.view(t, b, xh.shape[1], xh.shape[2], xh.shape[3])  # [T, B, G*hidden, H', W']
        return xh, [b, self.hidden_channels, xh.shape[3], xh.shape[4]]


class ConvLSTM(_ConvRecurrent):
    """ConvLSTM layer: gates i, f, o, g; ``c = f·c + i·g``; ``h = o·tanh(c)``.

    Args:
        in_channels: input channels C.
        hidden_channels: state channels.
        kernel_size: kernel of both convolutions (odd).
        stride: spatial stride of the input-to-hidden convolution (output ``ceil(H / stride)``).
    """

    prev_h: Tensor | None
    prev_c: Tensor | None

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__(in_channels, hidden_channels, kernel_size, stride, 4)
        pad = kernel_size // 2
        self.conv_h2h = nn.Conv2d(hidden_channels, 4 * hidden_channels, kernel_size, 1, pad, bias=False)
        self.num_state_tensors = 2
        self.prev_h = None
        self.prev_c = None

    def forward(self, x: Tensor) -> Tensor:
        """``Tensor[T, B, C, H, W]`` -> hidden states ``Tensor[T, B, hidden, H', W']``; updates the state."""
        xh, state_shape = self._input_gates(x, "ConvLSTM")  # [T, B, 4*hidden, H', W'], [B, hidden, H', W']
        t = x.shape[0]
        h = self.prev_h
        c = self.prev_c
        if h is None or c is None or list(h.shape) != state_shape or h.device != x.device:
            h = torch.zeros(state_shape, dtype=xh.dtype, device=xh.device)
            c = torch.zeros(state_shape, dtype=xh.dtype, device=xh.device)
        outs = []
        for i in range(t):
            gates = xh[i] + self.conv_h2h(h)  # [B, 4*hidden, H', W']
            ig, fg, og, gg = gates.chunk(4, dim=1)
            c = torch.sigmoid(fg) * c + torch.sigmoid(ig) * torch.tanh(gg)
            h = torch.sigmoid(og) * torch.tanh(c)
            outs.append(h)
        self.prev_h = h
        self.prev_c = c
        return torch.stack(outs, 0)

    @torch.jit.export
    def reset(self, mask: Tensor) -> None:
        """Zero the state of the columns where ``mask [B]`` is 0 and detach it from the graph."""
        self.prev_h = _masked_state(self.prev_h, mask)
        self.prev_c = _masked_state(self.prev_c, mask)

    @torch.jit.export
    def reset_all(self) -> None:
        """Forget the state (zeros at the next call)."""
        self.prev_h = None
        self.prev_c = None

    @torch.jit.export
    def detach(self) -> None:
        """Cut the state from the autograd graph of previous calls (truncated BPTT)."""
        h = self.prev_h
        c = self.prev_c
        if h is not None:
            self.prev_h = h.detach()
        if c is not None:
            self.prev_c = c.detach()

    @torch.jit.export
    def get_state(self) -> list[Tensor]:
        """``[h, c]`` (each ``Tensor[B, hidden, H', W']``), or ``[]`` before the first call / after
        ``reset_all``."""
        h = self.prev_h
        c = self.prev_c
        if h is None or c is None:
            return []
        return [h, c]

    @torch.jit.export
    def set_state(self, state: list[Tensor]) -> None:
        """Set the state to ``[h, c]`` (as returned by :meth:`get_state`; ``[]`` forgets it)."""
        if len(state) == 0:
            self.prev_h = None
            self.prev_c = None
            return
        if len(state) != 2:
            raise ValueError(f"ConvLSTM.set_state: expected [h, c], got {len(state)} tensors")
        self.prev_h = state[0]
        self.prev_c = state[1]


class ConvGRU(_ConvRecurrent):
    """ConvGRU layer: ``z, r = σ(Wx + Uh)``; ``n = tanh(Wn x + Un (r·h))``; ``h = (1 − z)·h + z·n``.

    Same arguments and state management as :class:`ConvLSTM`.
    """

    prev_h: Tensor | None

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__(in_channels, hidden_channels, kernel_size, stride, 3)
        pad = kernel_size // 2
        self.conv_h2zr = nn.Conv2d(hidden_channels, 2 * hidden_channels, kernel_size, 1, pad, bias=False)
        self.conv_h2n = nn.Conv2d(hidden_channels, hidden_channels, kernel_size, 1, pad, bias=False)
        self.num_state_tensors = 1
        self.prev_h = None

    def forward(self, x: Tensor) -> Tensor:
        """``Tensor[T, B, C, H, W]`` -> hidden states ``Tensor[T, B, hidden, H', W']``; updates the state."""
        xh, state_shape = self._input_gates(x, "ConvGRU")  # [T, B, 3*hidden, H', W'], [B, hidden, H', W']
        t = x.shape[0]
        h = self.prev_h
        if h is None or list(h.shape) != state_shape or h.device != x.device:
            h = torch.zeros(state_shape, dtype=xh.dtype, device=xh.device)
        hc = self.hidden_channels
        outs = []
        for i in range(t):
            xz, xr, xn = xh[i].split(hc, dim=1)
            hz, hr = self.conv_h2zr(h).split(hc, dim=1)
            z = torch.sigmoid(xz + hz)
            r = torch.sigmoid(xr + hr)
            n = torch.tanh(xn + self.conv_h2n(r * h))
            h = (1 - z) * h + z * n
            outs.append(h)
        self.prev_h = h
        return torch.stack(outs, 0)

    @torch.jit.export
    def reset(self, mask: Tensor) -> None:
        """Zero the state of the columns where ``mask [B]`` is 0 and detach it from the graph."""
        self.prev_h = _masked_state(self.prev_h, mask)

    @torch.jit.export
    def reset_all(self) -> None:
        """Forget the state (zeros at the next call)."""
        self.prev_h = None

    @torch.jit.export
    def detach(self) -> None:
        """Cut the state from the autograd graph of previous calls (truncated BPTT)."""
        h = self.prev_h
        if h is not None:
            self.prev_h = h.detach()

    @torch.jit.export
    def get_state(self) -> list[Tensor]:
        """``[h]`` (``Tensor[B, hidden, H', W']``), or ``[]`` before the first call / after ``reset_all``."""
        h = self.prev_h
        if h is None:
            return []
        return [h]

    @torch.jit.export
    def set_state(self, state: list[Tensor]) -> None:
        """Set the state to ``[h]`` (as returned by :meth:`get_state`; ``[]`` forgets it)."""
        if len(state) == 0:
            self.prev_h = None
            return
        if len(state) != 1:
            raise ValueError(f"ConvGRU.set_state: expected [h], got {len(state)} tensors")
        self.prev_h = state[0]
