"""RVT's recurrent MaxViT backbone (uzh-rpg/RVT ``MaxViTRNN``, its ``RNNDetector``), numerically as RVT's.

Stage s (s = 0..S−1; RVT: S = 4) on channels-first maps:

1. :class:`evdet.models.maxvit.ConvDownsampling` by the stem patch size (stage 0, default 4) or 2, to
   ``embed_dim · dim_multiplier[s]`` channels, channels-last + LayerNorm;
2. ``num_blocks[s]`` :class:`evdet.models.maxvit.MaxViTAttentionPair` (window then grid attention; the
   first window block has no ``norm1``, its input being the downsampling's LayerNorm output);
3. back to channels-first, :class:`evdet.models.dws_convlstm.DWSConvLSTM2d`; its ``h`` is the stage output
   (the input of the next stage) and a feature level. Strides: patch, 2·patch, 4·patch, ... (4, 8, 16, 32).

Input size (RVT's ``InputPadderFromShape`` and ``config/modifier.py``; :func:`rvt_input_geometry`): the
input ``Tensor[T, B, C, H, W]`` is zero-padded on the right and bottom to ``(H_p, W_p)``, multiples of
``m = last stride · partition_split_32`` (32 · 1 for RVT's Gen1 models, 32 · 2 for 1Mpx), and every block
of every stage uses the partition size ``(H_p / m, W_p / m)`` (Gen1 240×304 → 256×320, partition 8×10;
1Mpx at half resolution 360×640 → 384×640, partition 6×10). With an explicit ``partition_size`` p the input
is padded to multiples of ``last stride · p`` instead. The feature levels cover the padded input (level l is
``H_p / stride_l × W_p / stride_l``); pixel coordinates are unchanged by the padding, so boxes stay in
unpadded input pixels.

Recurrent state: per stage ``(h, c)``, each ``Tensor[B, C_s, H_p / stride_s, W_p / stride_s]``, held by the
backbone with the API of :class:`evdet.models.backbones.RecurrentBackbone` (``reset(mask_keep_memory)``
zeroes columns, as RVT's ``RNNStates.reset``; zeros are also RVT's initial state).

State-dict keys are RVT's: an evdet detector's ``backbone.<key>`` is RVT's checkpoint key
``mdl.backbone.<key>`` (``state_dict`` of its Lightning module), one to one, same shapes. For stage s and
block j (``.weight``/``.bias`` unless noted)::

    stages.{s}.downsample_cf2cl.conv.weight                   [C_s, C_in, k, k]   (no bias)
    stages.{s}.downsample_cf2cl.norm                          [C_s]       (absent if not norm_affine)
    stages.{s}.att_blocks.{j}.att_window.norm1                [C_s]       (absent for j = 0)
    stages.{s}.att_blocks.{j}.att_{window,grid}.self_attn.qkv [3·C_s, C_s], [3·C_s]
    stages.{s}.att_blocks.{j}.att_{window,grid}.self_attn.proj [C_s, C_s], [C_s]
    stages.{s}.att_blocks.{j}.att_{window,grid}.ls1.gamma     [C_s]       (absent if ls_init_value <= 0)
    stages.{s}.att_blocks.{j}.att_{window,grid}.norm2         [C_s]
    stages.{s}.att_blocks.{j}.att_{window,grid}.mlp.net.0.0   [r·C_s, C_s], [r·C_s]
    stages.{s}.att_blocks.{j}.att_{window,grid}.mlp.net.2     [C_s, r·C_s], [C_s]
    stages.{s}.att_blocks.{j}.att_{window,grid}.ls2.gamma     [C_s]
    stages.{s}.att_blocks.{j}.att_grid.norm1                  [C_s]
    stages.{s}.lstm.conv1x1                                   [4·C_s, 2·C_s, 1, 1], [4·C_s]
    stages.{s}.lstm.conv3x3_dws                               (only with lstm_dws_conv)

(RVT's ``mask_token``, for its optional token masking, is not part of this backbone.)
"""


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evdet.models.dws_convlstm import DWSConvLSTM2d
from evdet.models.maxvit import ConvDownsampling, MaxViTAttentionPair
from evdet.models.memory_format import channels_last


def rvt_input_geometry(height: int, width: int, last_stride: int, partition_split_32: int,
                       partition_size: list[int]) -> list[int]:
    """Padded input size and partition size of an ``height × width`` input, as RVT derives them.

    Args:
        height, width: input size (pixels).
        last_stride: stride of the last stage (32 for RVT's four stages with stem patch size 4).
        partition_split_32: RVT's ``partition_split_32`` (1, 2 or 4): pad to multiples of
            ``last_stride · partition_split_32`` and use ``padded / that`` as the partition size.
        partition_size: ``[p_h, p_w]`` to use instead (``[]``: derive it): pad to multiples of
            ``last_stride · p``.

    Returns:
        ``[padded_height, padded_width, p_h, p_w]``.
    """
    if height < 1 or width < 1:
        raise ValueError(f"rvt_input_geometry: input size must be positive, got {height}x{width}")
    if len(partition_size) == 2:
        ph, pw = partition_size[0], partition_size[1]
        mh, mw = last_stride * ph, last_stride * pw
        return [(height + mh - 1) // mh * mh, (width + mw - 1) // mw * mw, ph, pw]
    m = last_stride * partition_split_32
    padded_h = (height + m - 1) // m * m
    padded_w = (width + m - 1) // m * m
    return [padded_h, padded_w, padded_h // m, padded_w // m]


class RVTStage(nn.Module):
    """Downsampling + LayerNorm, MaxViT attention pairs, DWS ConvLSTM (see the module docstring).

    Args:
        dim_in, dim: input and stage channels.
        factor: spatial downsampling of the stage.
        num_blocks: attention pairs.
        dim_head, mlp_ratio, ls_init_value, attention_bias, mlp_bias, drop_mlp: of every block.
        overlap, norm_affine: of the downsampling.
        lstm_dws_conv, lstm_dws_conv_only_hidden, lstm_dws_conv_kernel_size, lstm_drop_cell_update: of the
            ConvLSTM.
    """

    def __init__(self, dim_in: int, dim: int, factor: int, num_blocks: int, dim_head: int, mlp_ratio: int,
                 ls_init_value: float, overlap: bool, norm_affine: bool, attention_bias: bool, mlp_bias: bool,
                 drop_mlp: float, lstm_dws_conv: bool, lstm_dws_conv_only_hidden: bool,
                 lstm_dws_conv_kernel_size: int, lstm_drop_cell_update: float):
        super().__init__()
        self.downsample_cf2cl = ConvDownsampling(dim_in, dim, factor, overlap, norm_affine)
        self.att_blocks = nn.ModuleList([
            MaxViTAttentionPair(dim, dim_head, mlp_ratio, ls_init_value, i == 0, attention_bias, mlp_bias,
                                drop_mlp) for i in range(num_blocks)])
        self.lstm = DWSConvLSTM2d(dim, lstm_dws_conv, lstm_dws_conv_only_hidden, lstm_dws_conv_kernel_size,
                                  lstm_drop_cell_update)

    def forward(self, x: Tensor, num_tbins: int, partition: list[int], h: Tensor | None,
                c: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` ``Tensor[T·B, C_in, H, W]`` (t-major) -> hidden states ``Tensor[T·B, C, H/f, W/f]`` and the
        last ``(h, c)``."""
        y = self.downsample_cf2cl(x)  # [T*B, H/f, W/f, C]
        for blk in self.att_blocks:
            y = blk(y, partition)
        # memory formats as RVT's: the LSTM sees the permuted (channels-last) map, and the next stage and the
        # head get channels-last hidden states; the values do not depend on it, the float32 rounding of
        # the convolutions (their kernels) does
        y = y.reshape(num_tbins, -1, y.shape[1], y.shape[2], y.shape[3])  # [T, B, H/f, W/f, C] (a view)
        hs, h, c = self.lstm(y.permute(0, 1, 4, 2, 3), h, c)  # bins [B, C, H/f, W/f], RVT's strides
        return channels_last(hs.flatten(0, 1)), h, c


class RVTBackbone(nn.Module):
    """RVT's ``MaxViTRNN`` backbone with explicit, resettable state.

    Args:
        in_channels: input channels C (20 for RVT's stacked histograms).
        embed_dim: channels of stage 0; stage s has ``embed_dim · dim_multiplier[s]``.
        dim_multiplier: per stage.
        num_blocks: attention pairs per stage (as many entries as ``dim_multiplier``).
        dim_head: channels per attention head (every stage's width must be a multiple of it).
        stem_patch_size: downsampling of stage 0 (2, 4 or 8); later stages downsample by 2.
        overlap: overlapping downsampling convolutions.
        norm_affine: affine LayerNorm after each downsampling.
        partition_split_32: see :func:`rvt_input_geometry`.
        partition_size: ``(p_h, p_w)``, or None to derive it from the input size.
        mlp_ratio, ls_init_value, attention_bias, mlp_bias, drop_mlp: of the attention blocks.
        lstm_dws_conv, lstm_dws_conv_only_hidden, lstm_dws_conv_kernel_size, lstm_drop_cell_update: of the
            ConvLSTMs.

    Attributes:
        channels, strides: the feature levels (one per stage).
    """

    state: list[Tensor]
    partition_size: list[int]

    def __init__(self, in_channels: int, embed_dim: int = 64, dim_multiplier: tuple[int, ...] = (1, 2, 4, 8),
                 num_blocks: tuple[int, ...] = (1, 1, 1, 1), dim_head: int = 32, stem_patch_size: int = 4,
                 overlap: bool = True, norm_affine: bool = True, partition_split_32: int = 2,
                 partition_size: tuple[int, int] | None = None, mlp_ratio: int = 4,
                 ls_init_value: float = 1e-5,
                 attention_bias: bool = True, mlp_bias: bool = True, drop_mlp: float = 0.0,
                 lstm_dws_conv: bool = False, lstm_dws_conv_only_hidden: bool = True,
                 lstm_dws_conv_kernel_size: int = 3, lstm_drop_cell_update: float = 0.0):
        super().__init__()
        if len(dim_multiplier) == 0 or len(dim_multiplier) != len(num_blocks):
            raise ValueError(f"RVTBackbone: dim_multiplier {tuple(dim_multiplier)} and num_blocks "
                             f"{tuple(num_blocks)} must be non-empty and of equal length (one per stage)")
        if min(num_blocks) < 1:
            raise ValueError(f"RVTBackbone: every stage needs >= 1 attention block, got {tuple(num_blocks)}")
        if partition_split_32 not in (1, 2, 4):
            raise ValueError(f"RVTBackbone: partition_split_32 must be 1, 2 or 4, got {partition_split_32}")
        if partition_size is not None and (len(partition_size) != 2 or min(partition_size) < 1):
            raise ValueError(f"RVTBackbone: partition_size must be (p_h, p_w) >= 1 or None, got "
                             f"{partition_size}")
        dims = [embed_dim * m for m in dim_multiplier]
        bad = [d for d in dims if d % dim_head != 0]
        if bad:
            raise ValueError(f"RVTBackbone: stage widths {dims} must be multiples of dim_head ({dim_head})")
        self.in_channels = in_channels
        stages = []
        strides = []
        stride = 1
        dim_in = in_channels
        for s, (dim, blocks) in enumerate(zip(dims, num_blocks, strict=True)):
            factor = stem_patch_size if s == 0 else 2
            stages.append(RVTStage(dim_in, dim, factor, blocks, dim_head, mlp_ratio, ls_init_value,
                                   overlap, norm_affine, attention_bias, mlp_bias, drop_mlp, lstm_dws_conv,
                                   lstm_dws_conv_only_hidden, lstm_dws_conv_kernel_size,
                                   lstm_drop_cell_update))
            stride *= factor
            strides.append(stride)
            dim_in = dim
        self.stages = nn.ModuleList(stages)
        self.channels: list[int] = dims
        self.strides: list[int] = strides
        self.partition_split_32 = partition_split_32
        self.partition_size = [] if partition_size is None else [int(v) for v in partition_size]
        self.num_state_tensors = 2 * len(dims)
        self.state = []

    def geometry(self, height: int, width: int) -> list[int]:
        """``[padded_height, padded_width, p_h, p_w]`` for an ``height × width`` input
        (:func:`rvt_input_geometry`)."""
        return rvt_input_geometry(height, width, self.strides[-1], self.partition_split_32,
                                  self.partition_size)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``Tensor[T, B, C, H, W]`` -> per stage ``Tensor[T, B, C_s, H_p / stride_s, W_p / stride_s]``
        (padded size, see the module docstring); updates the state."""
        if x.dim() != 5 or x.shape[2] != self.in_channels:
            raise ValueError(f"backbone: expected Tensor[T, B, {self.in_channels}, H, W], got shape "
                             f"{list(x.shape)}")
        t, b, h, w = x.shape[0], x.shape[1], x.shape[3], x.shape[4]
        g = self.geometry(h, w)
        partition = [g[2], g[3]]
        y = F.pad(x.flatten(0, 1), [0, g[1] - w, 0, g[0] - h])  # [T*B, C, H_p, W_p], zeros right and bottom
        have_state = len(self.state) == self.num_state_tensors
        new_state: list[Tensor] = []
        outs: list[Tensor] = []
        for s, stage in enumerate(self.stages):
            prev_h: Tensor | None = None
            prev_c: Tensor | None = None
            if have_state:
                prev_h = self.state[2 * s]
                prev_c = self.state[2 * s + 1]
            y, hs, cs = stage(y, t, partition, prev_h, prev_c)  # [T*B, C_s, H_s, W_s]
            new_state.append(hs)
            new_state.append(cs)
            outs.append(y.view(t, b, y.shape[1], y.shape[2], y.shape[3]))  # [T, B, C_s, H_s, W_s]
        self.state = new_state
        return outs

    @torch.jit.export
    def reset(self, mask: Tensor) -> None:
        """Zero the state of columns where ``mask [B]`` is 0 (every stage) and detach it; a mask of another
        batch size forgets the state."""
        out: list[Tensor] = []
        for s in self.state:
            if mask.dim() != 1 or mask.shape[0] != s.shape[0]:
                self.state = []
                return
            out.append(s.detach() * mask.to(dtype=s.dtype, device=s.device).view(-1, 1, 1, 1))
        self.state = out

    @torch.jit.export
    def reset_all(self) -> None:
        """Forget the state (zeros at the next call)."""
        self.state = []

    @torch.jit.export
    def detach(self) -> None:
        """Cut the state from the autograd graph of previous calls."""
        self.state = [s.detach() for s in self.state]

    @torch.jit.export
    def get_state(self) -> list[Tensor]:
        """``[h_0, c_0, h_1, c_1, ...]`` (stage by stage), or ``[]`` before the first call / after
        ``reset_all``."""
        return list(self.state)

    @torch.jit.export
    def set_state(self, state: list[Tensor]) -> None:
        """Set the state from a list in :meth:`get_state`'s order (``[]``: forget it).

        Raises:
            ValueError: the list does not hold ``2 · stages`` tensors.
        """
        if len(state) != 0 and len(state) != self.num_state_tensors:
            raise ValueError(f"set_state: expected {self.num_state_tensors} state tensors, got {len(state)}")
        self.state = list(state)
