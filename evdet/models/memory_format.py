"""Channels-last feature maps with canonical strides, so that convolutions pick the same kernels as RVT's.

The values of a convolution do not depend on the memory layout of its input, but the float32 rounding
does: oneDNN picks its kernels by the strides. RVT's stages hand channels-last maps from one to the next
and into the PAFPN. ``Tensor.contiguous(memory_format=torch.channels_last)`` keeps a tensor whose size-1
dimensions have other strides (a batch of one frame sliced out of a stack, say) as it is, since those
strides address no other element; the convolution then reads the layout as another one and takes
channels-first kernels. :func:`channels_last` always returns the canonical strides.
"""

from __future__ import annotations

import torch
from torch import Tensor


def channels_last(x: Tensor) -> Tensor:
    """``x`` ``Tensor[N, C, H, W]`` in channels-last layout with the canonical strides
    ``(C·H·W, 1, W·C, C)``; ``x`` itself when it has them, else a copy."""
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    if list(x.stride()) == [c * h * w, 1, w * c, c]:
        return x
    return x.clone(memory_format=torch.channels_last)
