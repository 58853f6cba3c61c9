"""RVT's ConvLSTM cell (uzh-rpg/RVT ``models/layers/rnn.py``, ``DWSConvLSTM2d``), run over a chunk of bins.

Per bin t, with ``h, c`` the previous state (zeros at the start of a stream):

- ``h' = dws(h)`` when ``dws_conv and dws_conv_only_hidden`` (a depthwise ``k × k`` conv with bias, applied
  even to a zero state), ``xh = cat(x_t, h')`` (input channels first); with ``dws_conv`` and not
  ``dws_conv_only_hidden`` the depthwise conv runs on ``xh`` instead;
- ``mix = conv1x1(xh)`` (``2C → 4C``, with bias); its channels are, in order, the forget, input and output
  gates (C each, sigmoid) and the cell input (C, tanh, then dropout ``drop_cell_update``);
- ``c_t = f·c + i·g``, ``h_t = o·tanh(c_t)``; ``h_t`` is the output.

The cell holds no state: :meth:`DWSConvLSTM2d.forward` takes and returns it (the backbone keeps it).
TorchScript-able.
"""


import torch
from torch import Tensor, nn


class DWSConvLSTM2d(nn.Module):
    """ConvLSTM with a 1×1 gate convolution on ``cat(x, h)`` and an optional depthwise conv.

    Args:
        dim: channels C of the input and of the state.
        dws_conv: add the depthwise ``k × k`` convolution.
        dws_conv_only_hidden: apply it to ``h`` only (else to ``cat(x, h)``).
        dws_conv_kernel_size: its kernel k (odd; padding k // 2).
        drop_cell_update: dropout on ``tanh(cell input)`` (training only).
    """

    def __init__(self, dim: int, dws_conv: bool = False, dws_conv_only_hidden: bool = True,
                 dws_conv_kernel_size: int = 3, drop_cell_update: float = 0.0):
        super().__init__()
        self.dim = dim
        dws_dim = dim if dws_conv_only_hidden else 2 * dim
        k = dws_conv_kernel_size
        self.conv3x3_dws = (nn.Conv2d(dws_dim, dws_dim, k, padding=k // 2, groups=dws_dim) if dws_conv
                            else nn.Identity())
        self.conv1x1 = nn.Conv2d(2 * dim, 4 * dim, 1)
        self.conv_only_hidden = dws_conv_only_hidden
        self.cell_update_dropout = nn.Dropout(drop_cell_update)

    def step(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """One bin: ``x, h, c`` ``Tensor[B, C, H, W]`` -> the new ``(h, c)``."""
        if self.conv_only_hidden:
            h = self.conv3x3_dws(h)
        xh = torch.cat((x, h), dim=1)  # [B, 2C, H, W]
        if not self.conv_only_hidden:
            xh = self.conv3x3_dws(xh)
        mix = self.conv1x1(xh)  # [B, 4C, H, W]: forget, input, output gates, cell input
        gates = torch.sigmoid(mix[:, :3 * self.dim])
        forget_gate = gates[:, :self.dim]
        input_gate = gates[:, self.dim:2 * self.dim]
        output_gate = gates[:, 2 * self.dim:]
        cell_input = self.cell_update_dropout(torch.tanh(mix[:, 3 * self.dim:]))
        c = forget_gate * c + input_gate * cell_input
        return output_gate * torch.tanh(c), c

    def forward(self, x: Tensor, h: Tensor | None, c: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Run over the T bins of ``x`` ``Tensor[T, B, C, H, W]`` from the state ``h, c`` (``Tensor[B, C, H,
        W]``; None, or a shape or device that does not fit x: zeros).

        Returns:
            the hidden states ``Tensor[T, B, C, H, W]`` and the last ``(h, c)``.
        """
        if x.dim() != 5 or x.shape[2] != self.dim:
            raise ValueError(f"DWSConvLSTM2d: expected Tensor[T, B, {self.dim}, H, W], got {list(x.shape)}")
        shape = [x.shape[1], x.shape[2], x.shape[3], x.shape[4]]
        if h is None or c is None or list(h.shape) != shape or list(c.shape) != shape or h.device != x.device:
            h = torch.zeros_like(x[0])  # x's memory format, as RVT's zeros_like
            c = torch.zeros_like(x[0])
        outs: list[Tensor] = []
        for t in range(x.shape[0]):
            h, c = self.step(x[t], h, c)
            outs.append(h)
        return torch.stack(outs, 0), h, c
