"""MaxViT attention blocks as RVT uses them (uzh-rpg/RVT ``models/layers/maxvit/maxvit.py``), channels-last.

- :func:`window_partition` / :func:`window_reverse`: ``Tensor[N, H, W, C]`` cut into non-overlapping
  ``p_h × p_w`` windows of neighbouring pixels (block attention, local);
  :func:`grid_partition` / :func:`grid_reverse`: into ``p_h × p_w`` groups of pixels spaced ``H/p_h``,
  ``W/p_w`` apart (grid attention, global, dilated). Both order the groups image-major, then row-major.
- :class:`SelfAttentionCl`: multi-head self-attention over the tokens of each group. RVT's channel grouping:
  the ``qkv`` projection's 3·C outputs are ``heads`` consecutive blocks of ``3·dim_head`` channels, block
  ``h`` holding head h's ``q``, ``k``, ``v`` (in that order, ``dim_head`` each), not three C-channel blocks
  as in ``nn.MultiheadAttention``. Logits ``(q·kᵀ)·dim_head^-½``, no position bias.
- :class:`PartitionAttentionCl`: pre-norm block ``x + ls1(attn(norm1(x)))``, ``x + ls2(mlp(norm2(x)))``
  (LayerScale, GELU MLP); ``norm1`` is skipped (identity) where the input is already normalised.
- :class:`ConvDownsampling`: channels-first input, conv (kernel ``2f − 1``, padding ``f − 1`` when
  overlapping, else kernel f, no padding; stride f, no bias), then channels-last LayerNorm.

Attribute names are RVT's, so the state_dict keys are the same (see :mod:`evdet.models.rvt_backbone`).
LayerNorm eps 1e-5 everywhere, exact (erf) GELU. TorchScript-able.
"""


import torch
from torch import Tensor, nn

from evdet.models.checks import check_heads


def window_partition(x: Tensor, partition: list[int]) -> Tensor:
    """``Tensor[N, H, W, C]`` -> ``Tensor[N·(H/p_h)·(W/p_w), p_h, p_w, C]``: window (i, j) of image n holds
    pixels ``[i·p_h, (i+1)·p_h) × [j·p_w, (j+1)·p_w)``; windows ordered n, i, j."""
    n, h, w, c = x.shape
    ph, pw = partition[0], partition[1]
    _check_divisible(h, w, ph, pw, "window")
    x = x.view(n, h // ph, ph, w // pw, pw, c)  # [N, H/ph, ph, W/pw, pw, C]
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ph, pw, c)  # [N*(H/ph)*(W/pw), ph, pw, C]


def window_reverse(windows: Tensor, partition: list[int], height: int, width: int) -> Tensor:
    """Inverse of :func:`window_partition`: ``Tensor[N·(H/p_h)·(W/p_w), p_h, p_w, C]`` -> ``[N, H, W, C]``."""
    ph, pw = partition[0], partition[1]
    c = windows.shape[-1]
    x = windows.view(-1, height // ph, width // pw, ph, pw, c)  # [N, H/ph, W/pw, ph, pw, C]
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, height, width, c)


def grid_partition(x: Tensor, partition: list[int]) -> Tensor:
    """``Tensor[N, H, W, C]`` -> ``Tensor[N·(H/p_h)·(W/p_w), p_h, p_w, C]``: group (i, j) of image n holds
    pixels ``(a·H/p_h + i, b·W/p_w + j)`` for a < p_h, b < p_w; groups ordered n, i, j."""
    n, h, w, c = x.shape
    ph, pw = partition[0], partition[1]
    _check_divisible(h, w, ph, pw, "grid")
    x = x.view(n, ph, h // ph, pw, w // pw, c)  # [N, ph, H/ph, pw, W/pw, C]
    return x.permute(0, 2, 4, 1, 3, 5).contiguous().view(-1, ph, pw, c)  # [N*(H/ph)*(W/pw), ph, pw, C]


def grid_reverse(groups: Tensor, partition: list[int], height: int, width: int) -> Tensor:
    """Inverse of :func:`grid_partition`: ``Tensor[N·(H/p_h)·(W/p_w), p_h, p_w, C]`` -> ``[N, H, W, C]``."""
    ph, pw = partition[0], partition[1]
    c = groups.shape[-1]
    x = groups.view(-1, height // ph, width // pw, ph, pw, c)  # [N, H/ph, W/pw, ph, pw, C]
    return x.permute(0, 3, 1, 4, 2, 5).contiguous().view(-1, height, width, c)


def _check_divisible(h: int, w: int, ph: int, pw: int, what: str) -> None:
    if h % ph != 0 or w % pw != 0:
        raise ValueError(f"{what} partition: feature map {h}x{w} is not divisible by the partition {ph}x{pw}")


class LayerScale(nn.Module):
    """``x · γ`` with a learned per-channel ``γ`` (``Tensor[C]``) initialised to ``init_value``."""

    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.gamma = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class SelfAttentionCl(nn.Module):
    """Multi-head self-attention over the tokens of each group, channels-last (see the module docstring).

    Args:
        dim: channels C (a multiple of ``dim_head``).
        dim_head: channels per head; ``C / dim_head`` heads.
        bias: biases of the ``qkv`` and ``proj`` linear layers.
    """

    def __init__(self, dim: int, dim_head: int, bias: bool = True):
        super().__init__()
        check_heads("SelfAttentionCl", "dim", dim, "dim_head", dim_head)
        self.num_heads = dim // dim_head
        self.dim_head = dim_head
        self.scale = dim_head ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """``Tensor[G, p_h, p_w, C]`` (G groups of ``p_h·p_w`` tokens) -> same shape."""
        g, ph, pw, c = x.shape
        qkv = self.qkv(x).view(g, ph * pw, self.num_heads, self.dim_head * 3)  # [G, S, heads, 3*dh]
        q, k, v = qkv.transpose(1, 2).chunk(3, dim=3)  # each [G, heads, S, dh]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)  # [G, heads, S, S]
        out = (attn @ v).transpose(1, 2).reshape(g, ph, pw, c)  # [G, ph, pw, C]
        return self.proj(out)


class MLP(nn.Module):
    """``Linear(C, r·C) → GELU → Dropout → Linear(r·C, C)`` (RVT's un-gated MLP: keys ``net.0.0``,
    ``net.2``)."""

    def __init__(self, dim: int, ratio: int, bias: bool = True, drop: float = 0.0):
        super().__init__()
        inner = int(dim * ratio)
        self.net = nn.Sequential(nn.Sequential(nn.Linear(dim, inner, bias=bias), nn.GELU()), nn.Dropout(drop),
                                 nn.Linear(inner, dim, bias=bias))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PartitionAttentionCl(nn.Module):
    """One MaxViT block: window (``grid=False``) or grid (``grid=True``) attention, then the MLP.

    Args:
        dim: channels C.
        grid: grid partition instead of window partition.
        dim_head: channels per attention head.
        mlp_ratio: hidden width of the MLP / C.
        ls_init_value: LayerScale initial value (<= 0: no LayerScale).
        skip_first_norm: no ``norm1`` (the input comes straight from a LayerNorm).
        attention_bias, mlp_bias: biases of the attention and MLP linear layers.
        drop_mlp: dropout inside the MLP.
    """

    def __init__(self, dim: int, grid: bool, dim_head: int, mlp_ratio: int = 4, ls_init_value: float = 1e-5,
                 skip_first_norm: bool = False, attention_bias: bool = True, mlp_bias: bool = True,
                 drop_mlp: float = 0.0):
        super().__init__()
        self.grid = grid
        self.norm1 = nn.Identity() if skip_first_norm else nn.LayerNorm(dim, eps=1e-5)
        self.self_attn = SelfAttentionCl(dim, dim_head, attention_bias)
        self.ls1 = LayerScale(dim, ls_init_value) if ls_init_value > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = MLP(dim, mlp_ratio, mlp_bias, drop_mlp)
        self.ls2 = LayerScale(dim, ls_init_value) if ls_init_value > 0 else nn.Identity()

    def _partition_attn(self, x: Tensor, partition: list[int]) -> Tensor:
        h, w = x.shape[1], x.shape[2]
        if self.grid:
            return grid_reverse(self.self_attn(grid_partition(x, partition)), partition, h, w)
        return window_reverse(self.self_attn(window_partition(x, partition)), partition, h, w)

    def forward(self, x: Tensor, partition: list[int]) -> Tensor:
        """``Tensor[N, H, W, C]`` -> same shape; ``partition`` ``[p_h, p_w]`` divides H and W."""
        x = x + self.ls1(self._partition_attn(self.norm1(x), partition))
        return x + self.ls2(self.mlp(self.norm2(x)))


class MaxViTAttentionPair(nn.Module):
    """A window-attention block then a grid-attention block (RVT's ``MaxVitAttentionPairCl``); the
    arguments are :class:`PartitionAttentionCl`'s (``skip_first_norm`` applies to the window block only)."""

    def __init__(self, dim: int, dim_head: int, mlp_ratio: int, ls_init_value: float, skip_first_norm: bool,
                 attention_bias: bool = True, mlp_bias: bool = True, drop_mlp: float = 0.0):
        super().__init__()
        self.att_window = PartitionAttentionCl(dim, False, dim_head, mlp_ratio, ls_init_value,
                                               skip_first_norm, attention_bias, mlp_bias, drop_mlp)
        self.att_grid = PartitionAttentionCl(dim, True, dim_head, mlp_ratio, ls_init_value, False,
                                             attention_bias, mlp_bias, drop_mlp)

    def forward(self, x: Tensor, partition: list[int]) -> Tensor:
        """``Tensor[N, H, W, C]`` -> same shape."""
        return self.att_grid(self.att_window(x, partition), partition)


class ConvDownsampling(nn.Module):
    """Channels-first ``Tensor[N, C_in, H, W]`` -> channels-last, normalised ``Tensor[N, H/f, W/f, C_out]``.

    Args:
        dim_in, dim_out: channels.
        factor: spatial downsampling f (2, 4 or 8).
        overlap: kernel ``2f − 1`` with padding ``f − 1`` (else kernel f, no padding).
        norm_affine: the LayerNorm has a weight and a bias.
    """

    def __init__(self, dim_in: int, dim_out: int, factor: int, overlap: bool = True,
                 norm_affine: bool = True):
        super().__init__()
        if factor not in (2, 4, 8):
            raise ValueError(f"ConvDownsampling: factor must be 2, 4 or 8, got {factor}")
        kernel = 2 * factor - 1 if overlap else factor
        self.conv = nn.Conv2d(dim_in, dim_out, kernel, stride=factor, padding=kernel // 2 if overlap else 0,
                              bias=False)
        self.norm = nn.LayerNorm(dim_out, eps=1e-5, elementwise_affine=norm_affine)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(x).permute(0, 2, 3, 1))  # [N, H/f, W/f, C_out]
