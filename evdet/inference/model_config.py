"""What detector to build: ``ModelConfig`` (one dataclass per backbone family and per head) and
:func:`build_detector`, the one function that turns it into a :class:`evdet.models.RecurrentDetector`.

A checkpoint stores its ``ModelConfig`` as a plain dict, so this module sits in the inference layer
(loading a model needs no Lightning). Every option is declared once, as a documented dataclass field;
``evdet-train``'s command line and YAML configs are generated from these fields. Values derived from the
data (input channels, number of classes) are arguments of :func:`build_detector`, never config fields.

Adding a backbone or a head: a config dataclass (a field of :class:`ModelConfig`), a builder in
:data:`BACKBONES` / :data:`HEADS`; nothing in training changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the builders only: the configs stay cheap to import (`--help`)
    from torch import nn

__all__ = [
    "BACKBONES",
    "HEADS",
    "AnchorHeadConfig",
    "DetrHeadConfig",
    "RVT_SIZES",
    "ModelConfig",
    "RVTConfig",
    "VanillaConfig",
    "YoloxHeadConfig",
    "build_backbone_for",
    "build_detector",
]


def _positive_ints(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{type(owner).__name__}.{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class VanillaConfig:
    """The ConvRNN backbones ``Vanilla``, ``Vanilla_VGG`` and ``Vanilla_VGGRU`` (SPEC 5).

    Attributes:
        base: base width b (the stem's channels are multiples of it).
        cout: channels of every recurrent feature level.
    """

    base: int = 16
    cout: int = 256

    def __post_init__(self) -> None:
        _positive_ints(self, "base", "cout")


#: ``(embed_dim, dim_head)`` of RVT's sizes (uzh-rpg/RVT ``config/experiment/*/{tiny,small,base}.yaml``);
#: ``rvt`` (every field from :class:`RVTConfig`) defaults to RVT's model defaults, those of ``rvt-b``.
RVT_SIZES: dict[str, tuple[int, int]] = {"rvt": (64, 32), "rvt-t": (32, 32), "rvt-s": (48, 24),
                                         "rvt-b": (64, 32)}


@dataclass(frozen=True)
class RVTConfig:
    """RVT's MaxViT-RNN backbones ``rvt-t``, ``rvt-s``, ``rvt-b`` and the generic ``rvt``
    (:class:`evdet.models.RVTBackbone`; defaults are RVT's ``config/model/maxvit_yolox/default.yaml``).

    Attributes:
        embed_dim: channels of stage 1 (None: the size's, :data:`RVT_SIZES`); set it only with ``rvt``, or
            to the size's value.
        dim_head: channels per attention head (None: the size's, as ``embed_dim``).
        dim_multiplier: stage widths / ``embed_dim``, one per stage.
        num_blocks: window + grid attention pairs per stage.
        stem_patch_size: downsampling of stage 1 (2, 4 or 8); later stages downsample by 2.
        overlap: overlapping downsampling convolutions (kernel 2f − 1).
        norm_affine: affine LayerNorm after each downsampling.
        partition_split_32: pad the input to multiples of 32 × this and use ``padded / (32 × this)`` as the
            attention partition size (RVT: 1 for Gen1, 2 for 1Mpx); 1, 2 or 4.
        partition_size: ``(height, width)`` of the attention partitions instead (None: derived as above).
        mlp_ratio: MLP hidden width / stage width.
        ls_init_value: LayerScale initial value (0: no LayerScale).
        attention_bias, mlp_bias: biases of the attention and MLP linear layers.
        drop_mlp: dropout in the MLPs.
        lstm_dws_conv: depthwise conv in the ConvLSTMs.
        lstm_dws_conv_only_hidden: that conv on ``h`` only (else on ``cat(x, h)``).
        lstm_dws_conv_kernel_size: its kernel size.
        lstm_drop_cell_update: dropout on the cell input.
    """

    embed_dim: int | None = None
    dim_head: int | None = None
    dim_multiplier: tuple[int, ...] = (1, 2, 4, 8)
    num_blocks: tuple[int, ...] = (1, 1, 1, 1)
    stem_patch_size: int = 4
    overlap: bool = True
    norm_affine: bool = True
    partition_split_32: int = 2
    partition_size: tuple[int, int] | None = None
    mlp_ratio: int = 4
    ls_init_value: float = 1e-5
    attention_bias: bool = True
    mlp_bias: bool = True
    drop_mlp: float = 0.0
    lstm_dws_conv: bool = False
    lstm_dws_conv_only_hidden: bool = True
    lstm_dws_conv_kernel_size: int = 3
    lstm_drop_cell_update: float = 0.0

    def __post_init__(self) -> None:
        _positive_ints(self, "mlp_ratio", "lstm_dws_conv_kernel_size")
        for name in ("embed_dim", "dim_head"):
            if getattr(self, name) is not None:
                _positive_ints(self, name)
        if (len(self.dim_multiplier) == 0 or len(self.dim_multiplier) != len(self.num_blocks)
                or min(self.dim_multiplier) < 1 or min(self.num_blocks) < 1):
            raise ValueError(f"RVTConfig: dim_multiplier {self.dim_multiplier} and num_blocks "
                             f"{self.num_blocks} must be positive and have one entry per stage")
        if self.stem_patch_size not in (2, 4, 8):
            raise ValueError(f"RVTConfig.stem_patch_size must be 2, 4 or 8, got {self.stem_patch_size}")
        if self.partition_split_32 not in (1, 2, 4):
            raise ValueError(f"RVTConfig.partition_split_32 must be 1, 2 or 4, got {self.partition_split_32}")
        ps = self.partition_size
        if ps is not None and (len(ps) != 2 or min(ps) < 1):
            raise ValueError(f"RVTConfig.partition_size must be (height, width) >= 1 or None, got "
                             f"{self.partition_size}")
        if not (0.0 <= self.drop_mlp < 1.0 and 0.0 <= self.lstm_drop_cell_update < 1.0):
            raise ValueError(f"RVTConfig: dropouts must be in [0, 1), got drop_mlp={self.drop_mlp}, "
                             f"lstm_drop_cell_update={self.lstm_drop_cell_update}")

    def sizes(self, name: str) -> tuple[int, int]:
        """``(embed_dim, dim_head)`` of backbone ``name`` (a key of :data:`RVT_SIZES`) with this config.

        Raises:
            ValueError: ``embed_dim`` or ``dim_head`` is set to another value than size ``name``'s.
        """
        embed_dim, dim_head = RVT_SIZES[name]
        for field_name, value, size_value in (("embed_dim", self.embed_dim, embed_dim),
                                              ("dim_head", self.dim_head, dim_head)):
            if value is not None and name != "rvt" and value != size_value:
                raise ValueError(f"RVTConfig.{field_name} = {value} contradicts backbone {name!r} "
                                 f"({field_name} {size_value}); use backbone 'rvt' for other sizes")
        return (embed_dim if self.embed_dim is None else self.embed_dim,
                dim_head if self.dim_head is None else self.dim_head)


@dataclass(frozen=True)
class AnchorHeadConfig:
    """The anchor head (``head: anchor``; SPEC 5).

    Attributes:
        anchors: anchor list name (``PSEE_ANCHORS``, ``COCO_ANCHORS``).
        anchor_size: base anchor size of the first feature level in network pixels (level l: ·2^l); use 16
            for small inputs (e.g. 48×64) whose objects are smaller than 32 px.
        fg_iou_threshold: anchors with IoU ≥ this with a ground-truth box are positives.
        bg_iou_threshold: anchors whose best IoU is < this are background; in between they are ignored.
        allow_low_quality_matches: every ground-truth box also gets its best anchor(s), whatever the IoU.
        focal_gamma: focusing parameter γ of the softmax focal loss.
        focal_alpha: weight of foreground anchors in the focal loss (background: 1 − α); None: no weighting.
        num_layers: 3×3 conv layers in each head tower.
        top_k: candidates (anchor, class) kept per frame before NMS when decoding.
        width: tower channels for backbones whose levels differ in width (``rvt*``: each level is projected
            to it by a 1×1 conv); None: the widest level's.
    """

    anchors: str = "PSEE_ANCHORS"
    anchor_size: float = 32.0
    fg_iou_threshold: float = 0.5
    bg_iou_threshold: float = 0.3
    allow_low_quality_matches: bool = True
    focal_gamma: float = 2.0
    focal_alpha: float | None = None
    num_layers: int = 1
    top_k: int = 500
    width: int | None = None

    def __post_init__(self) -> None:
        _positive_ints(self, "top_k")
        if self.width is not None:
            _positive_ints(self, "width")
        if not isinstance(self.num_layers, int) or self.num_layers < 0:
            raise ValueError(f"AnchorHeadConfig.num_layers must be an integer >= 0, got {self.num_layers!r}")
        if not self.anchor_size > 0:
            raise ValueError(f"AnchorHeadConfig.anchor_size must be > 0, got {self.anchor_size}")
        if not 0.0 <= self.bg_iou_threshold <= self.fg_iou_threshold <= 1.0:
            raise ValueError(f"AnchorHeadConfig: need 0 <= bg_iou_threshold ({self.bg_iou_threshold}) <= "
                             f"fg_iou_threshold ({self.fg_iou_threshold}) <= 1")
        if self.focal_gamma < 0 or (self.focal_alpha is not None and not 0.0 <= self.focal_alpha <= 1.0):
            raise ValueError(f"AnchorHeadConfig: focal_gamma must be >= 0 and focal_alpha in [0, 1] or None, "
                             f"got {self.focal_gamma}, {self.focal_alpha}")


@dataclass(frozen=True)
class DetrHeadConfig:
    """The DETR set-prediction head (``head: set``; SPEC 5), DETR's exact formulation.

    Attributes:
        num_queries: object queries per frame (at least the largest number of objects in a frame).
        dec_layers: transformer decoder layers (one prediction set each).
        hidden_dim: decoder width (a multiple of 4 and of ``nheads``).
        nheads: attention heads.
        dim_feedforward: hidden width of the decoder's feed-forward blocks.
        dropout: dropout of attention and feed-forward blocks.
        cls_loss: classification loss, ``ce`` (DETR cross-entropy) or ``focal``.
        cost_class, cost_bbox, cost_giou: Hungarian matching cost weights (class, L1, GIoU).
        loss_ce, loss_bbox, loss_giou: loss weights (also applied to the auxiliary layers).
        eos_coef: weight of the no-object class in the cross-entropy.
        aux_loss: add the losses of every earlier decoder layer.
        top_k: candidates (query, class) kept per frame before NMS when decoding.
        grad_clip: gradient-norm clip this head needs; training clips at the smaller of this and
            ``TrainConfig.gradient_clip_val`` (0 disables this one).
        lr_mult: learning rate of the head relative to the backbone (optimizer parameter groups).
    """

    num_queries: int = 100
    dec_layers: int = 6
    hidden_dim: int = 256
    nheads: int = 8
    dim_feedforward: int = 1024
    dropout: float = 0.1
    cls_loss: str = "ce"
    cost_class: float = 1.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0
    loss_ce: float = 1.0
    loss_bbox: float = 5.0
    loss_giou: float = 2.0
    eos_coef: float = 0.1
    aux_loss: bool = True
    top_k: int = 100
    grad_clip: float = 0.1
    lr_mult: float = 1.0

    def __post_init__(self) -> None:
        _positive_ints(self, "num_queries", "dec_layers", "hidden_dim", "nheads", "dim_feedforward", "top_k")
        if self.cls_loss not in ("ce", "focal"):
            raise ValueError(f"DetrHeadConfig.cls_loss must be 'ce' or 'focal', got {self.cls_loss!r}")
        if not self.lr_mult > 0 or self.grad_clip < 0:
            raise ValueError(f"DetrHeadConfig: lr_mult must be > 0 and grad_clip >= 0, got {self.lr_mult} "
                             f"and {self.grad_clip}")


@dataclass(frozen=True)
class YoloxHeadConfig:
    """The YOLOX head (``head: yolox``): RVT's PAFPN + decoupled YOLOX head, SimOTA and the YOLOX losses
    (docs/models.md).

    Attributes:
        in_strides: strides of the three backbone levels fed to the PAFPN (s, 2s, 4s); None: the first
            three levels of stride >= 8 (RVT's stages 2-4, Vanilla's levels 0-2).
        depth: PAFPN depth multiplier, ``round(3 · depth)`` bottlenecks per CSP layer (RVT-T/S 0.33,
            RVT-B 0.67).
        depthwise: depthwise-separable 3×3 convolutions in the PAFPN and head.
        act: activation, ``silu`` (RVT), ``relu`` or ``lrelu``.
        use_l1: add YOLOX's L1 loss on the raw box outputs (RVT: off).
        class_score_only: detections are scored with the best class probability alone (what RVT's
            evaluation ranks by) instead of objectness × class probability (YOLOX's score).
    """

    in_strides: tuple[int, int, int] | None = None
    depth: float = 0.33
    depthwise: bool = False
    act: str = "silu"
    use_l1: bool = False
    class_score_only: bool = False

    def __post_init__(self) -> None:
        if not self.depth > 0:
            raise ValueError(f"YoloxHeadConfig.depth must be > 0, got {self.depth}")
        if self.act not in ("silu", "relu", "lrelu"):
            raise ValueError(f"YoloxHeadConfig.act must be 'silu', 'relu' or 'lrelu', got {self.act!r}")
        if self.in_strides is not None:
            strides = list(self.in_strides)
            if len(strides) != 3 or any(not isinstance(v, int) or v < 1 for v in strides):
                raise ValueError(f"YoloxHeadConfig.in_strides must be three positive integers or None, got "
                                 f"{self.in_strides!r}")


@dataclass(frozen=True)
class RTDetrHeadConfig:
    """The RT-DETR set-prediction head (``head: rtdetr``; docs/set_head.md): hybrid encoder, IoU-aware query
    selection, deformable decoder with box refinement, denoising, varifocal + L1 + GIoU losses. Defaults are
    RT-DETR's (R50 configuration) except where noted.

    Attributes:
        in_strides: strides of the three backbone levels used (s, 2s, 4s); None: the first three of
            stride >= 8.
        hidden_dim: encoder and decoder width D (a multiple of 4 and of ``nheads``).
        nheads: attention heads.
        enc_layers: transformer layers on the coarsest level (AIFI).
        enc_ffn: their feed-forward width.
        depth_mult: RepVGG blocks per cross-scale fusion block, ``round(3 · depth_mult)``.
        expansion: width of the fusion blocks relative to D.
        act: activation of the fusion convolutions (``silu``, ``relu``, ``lrelu``).
        num_queries: matching queries K (capped at the number of tokens of the three levels).
        dec_layers: decoder layers.
        dec_ffn: decoder feed-forward width.
        dropout: encoder and decoder dropout.
        num_points: deformable sampling points per head and level.
        num_denoising: denoising queries per batch (0: none).
        label_noise_ratio: twice the probability that a denoising label is replaced by a random class.
        box_noise_scale: scale of the denoising box noise (in half box sizes).
        cost_class, cost_bbox, cost_giou: Hungarian matching costs (focal class cost, L1, GIoU).
        matcher_alpha, matcher_gamma: parameters of the focal matching cost.
        vfl_alpha, vfl_gamma: parameters of the varifocal loss.
        loss_vfl, loss_bbox, loss_giou: loss weights, the same for every prediction set.
        aux_loss: also train the earlier decoder layers and the selected proposals.
        top_k: (query, class) pairs kept per frame when decoding (RT-DETR's ``num_top_queries``).
        nms: class-wise NMS when decoding (``ModelConfig.nms_thresh``); set prediction needs none.
        grad_clip: gradient-norm clip this head needs (RT-DETR: 0.1); training clips at the smaller of this
            and ``TrainConfig.gradient_clip_val`` (0 disables this one).
        lr_mult: learning rate of the head relative to the backbone's (RT-DETR's backbone is pretrained and
            runs at 0.1×; here both train from scratch, so 1).
    """

    in_strides: tuple[int, int, int] | None = None
    hidden_dim: int = 256
    nheads: int = 8
    enc_layers: int = 1
    enc_ffn: int = 1024
    depth_mult: float = 1.0
    expansion: float = 1.0
    act: str = "silu"
    num_queries: int = 300
    dec_layers: int = 6
    dec_ffn: int = 1024
    dropout: float = 0.0
    num_points: int = 4
    num_denoising: int = 100
    label_noise_ratio: float = 0.5
    box_noise_scale: float = 1.0
    cost_class: float = 2.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0
    matcher_alpha: float = 0.25
    matcher_gamma: float = 2.0
    vfl_alpha: float = 0.75
    vfl_gamma: float = 2.0
    loss_vfl: float = 1.0
    loss_bbox: float = 5.0
    loss_giou: float = 2.0
    aux_loss: bool = True
    top_k: int = 300
    nms: bool = False
    grad_clip: float = 0.1
    lr_mult: float = 1.0

    def __post_init__(self) -> None:
        _positive_ints(self, "hidden_dim", "nheads", "enc_ffn", "num_queries", "dec_layers", "dec_ffn",
                       "num_points", "top_k")
        if not isinstance(self.enc_layers, int) or self.enc_layers < 0:
            raise ValueError(f"RTDetrHeadConfig.enc_layers must be an integer >= 0, got {self.enc_layers!r}")
        if not isinstance(self.num_denoising, int) or self.num_denoising < 0:
            raise ValueError(f"RTDetrHeadConfig.num_denoising must be an integer >= 0, got "
                             f"{self.num_denoising!r}")
        if self.hidden_dim % 4 != 0 or self.hidden_dim % self.nheads != 0:
            raise ValueError(f"RTDetrHeadConfig.hidden_dim ({self.hidden_dim}) must be a multiple of 4 and "
                             f"of nheads ({self.nheads})")
        if self.act not in ("silu", "relu", "lrelu"):
            raise ValueError(f"RTDetrHeadConfig.act must be 'silu', 'relu' or 'lrelu', got {self.act!r}")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.label_noise_ratio <= 1.0:
            raise ValueError(f"RTDetrHeadConfig: dropout must be in [0, 1) and label_noise_ratio in [0, 1], "
                             f"got {self.dropout}, {self.label_noise_ratio}")
        for name in ("depth_mult", "expansion", "lr_mult"):
            if not getattr(self, name) > 0:
                raise ValueError(f"RTDetrHeadConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("box_noise_scale", "cost_class", "cost_bbox", "cost_giou", "matcher_gamma", "vfl_gamma",
                     "loss_vfl", "loss_bbox", "loss_giou", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"RTDetrHeadConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("matcher_alpha", "vfl_alpha"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"RTDetrHeadConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.in_strides is not None:
            strides = list(self.in_strides)
            if len(strides) != 3 or any(not isinstance(v, int) or v < 1 for v in strides):
                raise ValueError(f"RTDetrHeadConfig.in_strides must be three positive integers or None, got "
                                 f"{self.in_strides!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Which detector to build (a backbone and a head, each with its own options) and how it decodes.

    Attributes:
        backbone: a key of :data:`BACKBONES`.
        head: a key of :data:`HEADS`.
        vanilla: options of the ``Vanilla*`` backbones.
        rvt: options of the ``rvt*`` backbones.
        anchor: options of the ``anchor`` head.
        set: options of the ``set`` head.
        yolox: options of the ``yolox`` head.
        rtdetr: options of the ``rtdetr`` head.
        score_thresh: minimum class score kept when decoding (validation, detection, demo).
        nms_thresh: class-wise NMS IoU threshold (suppress when IoU > threshold).
        max_detections: at most this many detections per frame.
    """

    backbone: str = "Vanilla"
    head: str = "anchor"
    vanilla: VanillaConfig = field(default_factory=VanillaConfig)
    rvt: RVTConfig = field(default_factory=RVTConfig)
    anchor: AnchorHeadConfig = field(default_factory=AnchorHeadConfig)
    set: DetrHeadConfig = field(default_factory=DetrHeadConfig)
    yolox: YoloxHeadConfig = field(default_factory=YoloxHeadConfig)
    rtdetr: RTDetrHeadConfig = field(default_factory=RTDetrHeadConfig)
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    max_detections: int = 100

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"ModelConfig.backbone = {self.backbone!r}: valid backbones are "
                             f"{sorted(BACKBONES)}")
        if self.head not in HEADS:
            raise ValueError(f"ModelConfig.head = {self.head!r}: valid heads are {sorted(HEADS)}")
        _positive_ints(self, "max_detections")
        if self.backbone in RVT_SIZES:
            self.rvt.sizes(self.backbone)
        if not 0.0 <= self.score_thresh <= 1.0:
            raise ValueError(f"ModelConfig.score_thresh must be in [0, 1], got {self.score_thresh}")
        if not 0.0 < self.nms_thresh <= 1.0:
            raise ValueError(f"ModelConfig.nms_thresh must be in (0, 1], got {self.nms_thresh}")


def _vanilla(name: str) -> Callable[[ModelConfig, int], nn.Module]:
    def build(config: ModelConfig, in_channels: int) -> nn.Module:
        from evdet.models.backbones import build_backbone

        return build_backbone(name, in_channels, config.vanilla.base, config.vanilla.cout)

    return build


def _rvt(name: str) -> Callable[[ModelConfig, int], nn.Module]:
    def build(config: ModelConfig, in_channels: int) -> nn.Module:
        from evdet.models.rvt_backbone import RVTBackbone

        c = config.rvt
        embed_dim, dim_head = c.sizes(name)
        return RVTBackbone(in_channels, embed_dim, tuple(c.dim_multiplier), tuple(c.num_blocks), dim_head,
                           c.stem_patch_size, c.overlap, c.norm_affine, c.partition_split_32,
                           None if c.partition_size is None else tuple(c.partition_size), c.mlp_ratio,
                           c.ls_init_value, c.attention_bias, c.mlp_bias, c.drop_mlp, c.lstm_dws_conv,
                           c.lstm_dws_conv_only_hidden, c.lstm_dws_conv_kernel_size, c.lstm_drop_cell_update)

    return build


def _anchor_head(config: ModelConfig, channels: list[int], strides: list[int], num_classes: int) -> nn.Module:
    from evdet.models import AnchorHead

    c = config.anchor
    return AnchorHead(channels, strides, num_classes, anchor_list=c.anchors,
                      base_anchor_size=float(c.anchor_size), fg_iou_threshold=c.fg_iou_threshold,
                      bg_iou_threshold=c.bg_iou_threshold,
                      allow_low_quality_matches=c.allow_low_quality_matches, focal_gamma=c.focal_gamma,
                      focal_alpha=c.focal_alpha, num_layers=c.num_layers, top_k=c.top_k,
                      width=c.width if len(set(channels)) > 1 else None)


def _detr_head(config: ModelConfig, channels: list[int], strides: list[int], num_classes: int) -> nn.Module:
    from evdet.models import DetrHead

    c = config.set
    return DetrHead(channels, strides, num_classes, num_queries=c.num_queries, dec_layers=c.dec_layers,
                    hidden_dim=c.hidden_dim, nheads=c.nheads, dim_feedforward=c.dim_feedforward,
                    dropout=c.dropout, cls_loss=c.cls_loss, cost_class=c.cost_class, cost_bbox=c.cost_bbox,
                    cost_giou=c.cost_giou, loss_ce=c.loss_ce, loss_bbox=c.loss_bbox, loss_giou=c.loss_giou,
                    eos_coef=c.eos_coef, aux_loss=c.aux_loss, top_k=c.top_k, grad_clip=c.grad_clip,
                    lr_mult=c.lr_mult)


def _yolox_head(config: ModelConfig, channels: list[int], strides: list[int], num_classes: int) -> nn.Module:
    from evdet.models import YoloxHead

    c = config.yolox
    return YoloxHead(channels, strides, num_classes,
                     in_strides=None if c.in_strides is None else list(c.in_strides), depth=c.depth,
                     depthwise=c.depthwise, act=c.act, use_l1=c.use_l1, class_score_only=c.class_score_only)


def _rtdetr_head(config: ModelConfig, channels: list[int], strides: list[int], num_classes: int) -> nn.Module:
    from evdet.models import RTDETRHead

    c = config.rtdetr
    options = {f.name: getattr(c, f.name) for f in fields(c)}
    options["in_strides"] = None if c.in_strides is None else list(c.in_strides)
    return RTDETRHead(channels, strides, num_classes, **options)


#: Backbone name → builder ``(model_config, in_channels) -> backbone`` (the backbone contract in
#: :mod:`evdet.models.backbones`).
BACKBONES: dict[str, Callable[[ModelConfig, int], nn.Module]] = {
    "Vanilla": _vanilla("Vanilla"),
    "Vanilla_VGG": _vanilla("Vanilla_VGG"),
    "Vanilla_VGGRU": _vanilla("Vanilla_VGGRU"),
    **{name: _rvt(name) for name in RVT_SIZES},
}

#: Head name → builder ``(model_config, channels, strides, num_classes) -> head``
#: (:class:`evdet.models.DetectionHead`).
HEADS: dict[str, Callable[[ModelConfig, list[int], list[int], int], nn.Module]] = {
    "anchor": _anchor_head,
    "set": _detr_head,
    "yolox": _yolox_head,
    "rtdetr": _rtdetr_head,
}


def build_backbone_for(model_config: ModelConfig, in_channels: int) -> nn.Module:
    """The backbone described by ``model_config`` for inputs of ``in_channels`` channels."""
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"build_detector: in_channels must be a positive integer, got {in_channels!r}")
    return BACKBONES[model_config.backbone](model_config, in_channels)


def build_detector(model_config: ModelConfig, in_channels: int, num_classes: int) -> nn.Module:
    """Build the detector described by ``model_config``.

    Args:
        model_config: which backbone and head, and their options.
        in_channels: channels C of the input ``Tensor[T, B, C, H, W]`` (from the data).
        num_classes: number of object classes (background excluded).

    Returns:
        a :class:`evdet.models.RecurrentDetector` (train mode, fresh state).

    Raises:
        ValueError: non-positive sizes, or options a part rejects.
    """
    from evdet.models import RecurrentDetector

    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"build_detector: num_classes must be a positive integer, got {num_classes!r}")
    backbone = build_backbone_for(model_config, in_channels)
    head = HEADS[model_config.head](model_config, list(backbone.channels), list(backbone.strides),
                                    num_classes)
    return RecurrentDetector(backbone, head)
