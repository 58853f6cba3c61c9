"""Model and training options (frozen dataclasses) and the one function that builds a detector.

``ModelConfig`` says which detector to build; ``TrainConfig`` says how to optimise, validate and run the
Lightning ``Trainer``. Values derived from the data (input channels, number of classes, sizes) are never
stored here: they are computed from the dataset (``evdet.data.describe_dataset``) and passed to
:func:`build_detector` / :class:`evdet.training.lightning_module.LightningDetectionModel` explicitly.

Both configs round-trip through plain dicts (:func:`config_to_dict`, ``ModelConfig.from_dict``) so that
checkpoints hold only primitive types and load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

__all__ = [
    "HEADS",
    "LR_SCHEDULES",
    "ModelConfig",
    "TrainConfig",
    "build_detector",
    "config_from_dict",
    "config_to_dict",
]

LR_SCHEDULES = ("cosine", "onecycle", "constant")


@dataclass(frozen=True)
class ModelConfig:
    """Which detector to build, and how it decodes boxes.

    Attributes:
        head: detection head, a key of :data:`HEADS` (``"anchor"``: anchor pyramid + BoxHead, SPEC 5).
        backbone: a key of ``evdet.models.BACKBONES`` (``"Vanilla"``, ``"Vanilla_VGG"``, ``"Vanilla_VGGRU"``).
        base: backbone base width b (channels of the first stages are multiples of it).
        cout: channels of every recurrent feature level.
        anchors: anchor list name (``"PSEE_ANCHORS"``, ``"COCO_ANCHORS"``) understood by the detector.
        anchor_size: base anchor size of the first feature level in network pixels (level l: ·2^l); 32 as
            in SPEC 5; use 16 for small inputs (e.g. 48×64) whose objects are smaller than 32 px.
        score_thresh: minimum class score kept when decoding (validation, detection, demo).
        nms_thresh: class-wise NMS IoU threshold (suppress when IoU > threshold).
        max_detections: at most this many detections per frame.
        num_queries, dec_layers, hidden_dim, nheads: set head (``head="set"``, SPEC 5): object queries per
            frame, transformer decoder layers, decoder width, attention heads.
        set_cls_loss: set-head classification loss, ``"ce"`` (DETR cross-entropy) or ``"focal"``.
        set_loss_ce, set_loss_bbox, set_loss_giou: set-head loss weights (also the matching costs).
        set_eos_coef: weight of the no-object class in the set-head cross-entropy.
        head_lr_mult: learning rate of the set head relative to the backbone (optimizer parameter groups).
        set_grad_clip: gradient-norm clip of the set head; training clips at the smaller of this and
            ``TrainConfig.gradient_clip_val`` (0 disables this one).
    """

    head: str = "anchor"
    backbone: str = "Vanilla"
    base: int = 16
    cout: int = 256
    anchors: str = "PSEE_ANCHORS"
    anchor_size: float = 32.0
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    max_detections: int = 100
    num_queries: int = 100
    dec_layers: int = 6
    hidden_dim: int = 256
    nheads: int = 8
    set_cls_loss: str = "ce"
    set_loss_ce: float = 1.0
    set_loss_bbox: float = 5.0
    set_loss_giou: float = 2.0
    set_eos_coef: float = 0.1
    head_lr_mult: float = 1.0
    set_grad_clip: float = 0.1

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"ModelConfig.head = {self.head!r}: valid heads are {sorted(HEADS)}")
        for name in ("base", "cout", "max_detections"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.score_thresh <= 1.0:
            raise ValueError(f"ModelConfig.score_thresh must be in [0, 1], got {self.score_thresh}")
        if not 0.0 < self.nms_thresh <= 1.0:
            raise ValueError(f"ModelConfig.nms_thresh must be in (0, 1], got {self.nms_thresh}")
        for name in ("num_queries", "dec_layers", "hidden_dim", "nheads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.set_cls_loss not in ("ce", "focal"):
            raise ValueError(f"ModelConfig.set_cls_loss must be 'ce' or 'focal', got {self.set_cls_loss!r}")
        if not self.head_lr_mult > 0 or self.set_grad_clip < 0:
            raise ValueError(f"ModelConfig: head_lr_mult must be > 0 and set_grad_clip >= 0, got "
                             f"{self.head_lr_mult} and {self.set_grad_clip}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, validation and Trainer options.

    Attributes:
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        lr_schedule: ``"cosine"`` (linear warm-up then cosine decay to ``min_lr_ratio · lr``),
            ``"onecycle"`` (PyTorch OneCycle shape: cosine up over ``warmup_fraction``, cosine down), or
            ``"constant"`` (warm-up then constant). Stepped every optimizer step.
        warmup_fraction: fraction of the total steps spent warming up (used when ``warmup_steps`` is None).
        warmup_steps: explicit number of warm-up steps (overrides ``warmup_fraction``).
        min_lr_ratio: final learning rate as a fraction of ``lr`` (cosine / onecycle).
        gradient_clip_val: clip the gradient norm to this value (0 disables clipping).
        max_epochs: number of epochs (``-1``: unlimited, then ``max_steps`` must be set).
        max_steps: number of optimizer steps (``-1``: follow ``max_epochs``).
        limit_train_batches / limit_val_batches / limit_test_batches: Lightning's ``limit_*_batches``
            (a fraction of the epoch, or an integer number of batches).
        precision: Lightning precision; ``"auto"`` uses ``"16-mixed"`` on CUDA and ``"32-true"`` elsewhere.
        accelerator / devices / strategy: passed to the Lightning ``Trainer``.
        seed: global seed (``lightning.seed_everything``).
        skip_nonfinite: when False (default) a NaN/inf loss stops training with an error naming the
            global step; when True that step is skipped (no weight update) and counted in the logs.
        eval_preset: box filter of the evaluation (``evdet.evaluation`` presets) or ``"auto"``: the gen1 /
            gen4 presets for their sensor sizes, otherwise the gen1 thresholds scaled by the sensor width
            over 304 (see ``evdet.evaluation.presets.eval_preset_for``).
        eval_skip_ts: override of the preset's ``skip_ts`` (µs; ignore boxes in the first part of each
            recording while the recurrent state warms up). None keeps the preset's value, except for
            ``"auto"`` on non-standard sensors where it is 200 000 µs (tiny recordings are a few seconds).
        eval_score_thresh: score threshold of the detections kept for validation/test metrics (and the
            ``--just-test`` detection files); None: the model's ``score_thresh``. Low values (0.01) give the
            usual COCO AP; the model's threshold is the one used for deployment (detect, demo).
        time_tol: evaluation time tolerance (µs, inclusive); None: the preset's (``"auto"``: half a bin,
            see ``eval_preset_for``).
        log_every_n_steps: scalar logging period (steps).
        log_images_every_n_steps: period of the detection-image callback (0 disables it).
        num_log_images: frames drawn per image log.
        check_val_every_n_epoch: validation period in epochs.
    """

    lr: float = 2e-3
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    warmup_fraction: float = 0.05
    warmup_steps: int | None = None
    min_lr_ratio: float = 0.01
    gradient_clip_val: float = 1.0
    max_epochs: int = 20
    max_steps: int = -1
    limit_train_batches: float | int = 1.0
    limit_val_batches: float | int = 1.0
    limit_test_batches: float | int = 1.0
    precision: str = "auto"
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    seed: int = 0
    skip_nonfinite: bool = False
    eval_preset: str = "auto"
    eval_skip_ts: int | None = None
    eval_score_thresh: float | None = 0.01
    time_tol: int | None = None
    log_every_n_steps: int = 10
    log_images_every_n_steps: int = 200
    num_log_images: int = 4
    check_val_every_n_epoch: int = 1

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"TrainConfig.lr_schedule = {self.lr_schedule!r}: valid are {list(LR_SCHEDULES)}"
            )
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"TrainConfig.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.max_epochs == -1 and self.max_steps == -1:
            raise ValueError("TrainConfig: set max_epochs or max_steps (both are -1)")
        if self.gradient_clip_val < 0:
            raise ValueError(f"TrainConfig.gradient_clip_val must be >= 0, got {self.gradient_clip_val}")


C = TypeVar("C", ModelConfig, TrainConfig)


def config_to_dict(config: ModelConfig | TrainConfig) -> dict[str, Any]:
    """Plain-dict copy of a config (only primitive values), for checkpoints and logs."""
    return dataclasses.asdict(config)


def config_from_dict(cls: type[C], values: Mapping[str, Any] | C | None) -> C:
    """Rebuild a config from a dict (unknown keys raise ``ValueError`` naming them); None → defaults."""
    if values is None:
        return cls()
    if isinstance(values, cls):
        return values
    if not isinstance(values, Mapping):
        raise TypeError(f"{cls.__name__}: expected a dict or {cls.__name__}, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown option(s) {unknown}; valid options are {sorted(names)}")
    return cls(**dict(values))


def _build_anchor_detector(config: ModelConfig, in_channels: int, num_classes: int) -> nn.Module:
    from evdet.models import SingleStageDetector

    return SingleStageDetector(
        feature_extractor=None,
        in_channels=in_channels,
        num_classes=num_classes,
        feature_base=config.base,
        feature_channels_out=config.cout,
        anchor_list=config.anchors,
        backbone=config.backbone,
        base_anchor_size=float(config.anchor_size),
    )


def _build_set_detector(config: ModelConfig, in_channels: int, num_classes: int) -> nn.Module:
    from evdet.models import SetDetector

    return SetDetector(
        feature_extractor=None,
        in_channels=in_channels,
        num_classes=num_classes,
        feature_base=config.base,
        feature_channels_out=config.cout,
        backbone=config.backbone,
        num_queries=config.num_queries,
        dec_layers=config.dec_layers,
        hidden_dim=config.hidden_dim,
        nheads=config.nheads,
        dim_feedforward=4 * config.hidden_dim,
        cls_loss=config.set_cls_loss,
        cost_class=config.set_loss_ce,
        cost_bbox=config.set_loss_bbox,
        cost_giou=config.set_loss_giou,
        loss_ce=config.set_loss_ce,
        loss_bbox=config.set_loss_bbox,
        loss_giou=config.set_loss_giou,
        eos_coef=config.set_eos_coef,
        top_k=max(config.max_detections, 100),
        grad_clip=config.set_grad_clip,
        head_lr_mult=config.head_lr_mult,
    )


#: Head name → builder ``(model_config, in_channels, num_classes) -> detector``; every detector follows the
#: contract in docs/architecture.md.
HEADS: dict[str, Callable[[ModelConfig, int, int], nn.Module]] = {
    "anchor": _build_anchor_detector,
    "set": _build_set_detector,
}


def build_detector(model_config: ModelConfig, in_channels: int, num_classes: int) -> nn.Module:
    """Build the detector described by ``model_config`` for inputs of ``in_channels`` channels.

    Args:
        model_config: which head/backbone/sizes.
        in_channels: channels C of the input ``Tensor[T, B, C, H, W]`` (from the data).
        num_classes: number of object classes (background excluded).

    Returns:
        an ``nn.Module`` following the detector contract (``compute_loss``, ``get_boxes``, ``reset``...).

    Raises:
        ValueError: unknown head (listing the valid ones) or non-positive sizes.
    """
    if model_config.head not in HEADS:
        raise ValueError(f"unknown head {model_config.head!r}; valid heads are {sorted(HEADS)}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"build_detector: in_channels must be a positive integer, got {in_channels!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"build_detector: num_classes must be a positive integer, got {num_classes!r}")
    return HEADS[model_config.head](model_config, in_channels, num_classes)

