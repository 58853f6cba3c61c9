"""RVT's released checkpoints (uzh-rpg/RVT) as evdet checkpoints, and evdet RVT models in RVT's layout.

An RVT checkpoint is a PyTorch Lightning ``.ckpt`` of RVT's training module: the weights of its
``YoloXDetector`` under ``state_dict`` with the prefix ``mdl.`` (``mdl.backbone.*``, ``mdl.fpn.*``,
``mdl.yolox_head.*``; ``_orig_mod.`` segments when a part was ``torch.compile``-d), no model config, and
pickled Python objects besides (OmegaConf config, optimizer and scheduler state). It is read with
:func:`evdet.inference.foreign_checkpoint.read_foreign_checkpoint` (no pickled code runs; neither
Lightning nor omegaconf is needed) and its tensors land on the CPU.

The model is inferred from the weight shapes (:func:`rvt_model_config`):

* backbone: ``embed_dim`` = stage-1 width, ``dim_multiplier`` = stage widths / ``embed_dim``,
  ``num_blocks`` = attention block pairs per stage, stem patch size and ``overlap`` from the stem kernel
  (odd ``2f − 1``: overlapping, even ``f``: not), ``mlp_ratio`` from the MLP width, LayerScale, biases,
  affine norms and the depthwise ConvLSTM options from the presence (and shape) of their weights.
  ``dim_head`` is not visible in any weight (the attention projections are ``dim × 3·dim`` whatever the
  head count): it is RVT's for the stage-1 width (32 → ``rvt-t``, 48 → ``rvt-s``, 64 → ``rvt-b``), other
  widths need it given;
* the PAFPN on stages 2-4 (RVT's ``in_stages``), its depth from the number of CSP bottlenecks
  (``round(3·depth)``: 1 → 0.33, 2 → 0.67), depthwise convolutions from the presence of ``dconv``
  weights, the number of classes from ``cls_preds``;
* the dataset (``gen1`` / ``gen4``) gives what the weights do not: RVT's partition split (1 on Gen1,
  2 on 1Mpx), the classes (:data:`evdet.data.rvt.RVT_LABEL_MAPS`), the input (``rvt_stacked_histogram``,
  50 ms, 10 micro-bins per polarity; 240×304, or 360×640 from the 720×1280 1Mpx sensor) and RVT's
  decoding (score 0.1, NMS 0.45; RVT caps nothing, evdet keeps at most 1000 boxes per frame).
  The activation (SiLU) is RVT's only choice in its released configs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evdet.data.rvt import RVT_LABEL_MAPS, RVT_REPRESENTATION
from evdet.inference.checkpoint import (
    CheckpointInfo,
    atomic_torch_save,
    check_finite_weights,
    load_weights,
    save_detector_checkpoint,
)
from evdet.inference.config_dict import config_to_dict
from evdet.inference.foreign_checkpoint import read_foreign_checkpoint
from evdet.inference.model_config import RVT_SIZES, ModelConfig, RVTConfig, YoloxHeadConfig, build_detector
from evdet.io.output_paths import check_output, record_output

__all__ = [
    "RVT_DATASETS",
    "RVT_PREFIX",
    "evdet_state_dict_from_rvt",
    "import_rvt_checkpoint",
    "is_rvt_checkpoint",
    "load_rvt_checkpoint",
    "rvt_model_config",
    "rvt_state_dict",
    "save_rvt_checkpoint",
]

#: Prefix of the detector's weights in RVT's Lightning checkpoints.
RVT_PREFIX = "mdl."

#: What an RVT dataset fixes that the weights do not: partition split, (sensor, network) sizes
#: ``(height, width)``, training sequence length (RVT's ``config/experiment/*/default.yaml``).
RVT_DATASETS: dict[str, dict[str, Any]] = {
    "gen1": {"partition_split_32": 1, "sensor_size": (240, 304), "network_size": (240, 304),
             "sequence_length": 21},
    "gen4": {"partition_split_32": 2, "sensor_size": (720, 1280), "network_size": (360, 640),
             "sequence_length": 5},
}

_PARTS = {"backbone.": "backbone.", "fpn.": "head.fpn.", "yolox_head.": "head.yolox_head."}
_RVT_DECODING = {"score_thresh": 0.1, "nms_thresh": 0.45, "max_detections": 1000}


def _rvt_weights(ckpt: Any, source: str) -> dict[str, torch.Tensor]:
    """The ``mdl.*`` tensors of a loaded RVT checkpoint, prefix and ``_orig_mod.`` segments removed."""
    state = ckpt.get("state_dict") if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping):
        raise ValueError(f"{source}: no 'state_dict' (not a Lightning checkpoint of RVT)")
    out = {}
    for key, value in state.items():
        if isinstance(key, str) and key.startswith(RVT_PREFIX) and isinstance(value, torch.Tensor):
            out[key[len(RVT_PREFIX):].replace("_orig_mod.", "")] = value
    if not out:
        raise ValueError(f"{source}: no tensors with prefix {RVT_PREFIX!r} in its state_dict (not an RVT "
                         "checkpoint)")
    check_finite_weights(out, source)
    return out


def evdet_state_dict_from_rvt(rvt_weights: Mapping[str, torch.Tensor], source: str = "RVT checkpoint"
                              ) -> dict[str, torch.Tensor]:
    """RVT's ``YoloXDetector`` weight names (``mdl.`` removed) → evdet's :class:`RecurrentDetector` names
    (``backbone.*`` → ``backbone.*``, ``fpn.*`` → ``head.fpn.*``,
    ``yolox_head.*`` → ``head.yolox_head.*``).

    Raises:
        ValueError: a weight of another part (names the first ones).
    """
    out, unknown = {}, []
    for key, value in rvt_weights.items():
        part = next((p for p in _PARTS if key.startswith(p)), None)
        if part is None:
            unknown.append(key)
        else:
            out[_PARTS[part] + key[len(part):]] = value
    if unknown:
        raise ValueError(f"{source}: weights of no known RVT part (backbone, fpn, yolox_head): {unknown[:5]}")
    return out


def rvt_state_dict(detector: nn.Module) -> dict[str, torch.Tensor]:
    """Inverse of :func:`evdet_state_dict_from_rvt` with RVT's ``mdl.`` prefix: an evdet ``rvt*`` + ``yolox``
    detector's weights as RVT's training module names them (CPU copies)."""
    inverse = {v: k for k, v in _PARTS.items()}
    out = {}
    for key, value in detector.state_dict().items():
        part = next((p for p in inverse if key.startswith(p)), None)
        if part is None:
            raise ValueError(f"rvt_state_dict: {key!r} is not part of an RVT + YOLOX detector")
        out[RVT_PREFIX + inverse[part] + key[len(part):]] = value.detach().cpu().clone()
    return out


def _stage_indices(weights: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in weights if (m := rx.match(k))})


def _shape(weights: Mapping[str, torch.Tensor], key: str, source: str, ndim: int = 4) -> tuple[int, ...]:
    """The shape of ``weights[key]``, which must have ``ndim`` dimensions (4: a convolution, 2: a linear
    layer)."""
    if key not in weights:
        raise ValueError(f"{source}: weight {key!r} is missing (not an RVT MaxViT-RNN + YOLOX checkpoint?)")
    shape = tuple(weights[key].shape)
    if len(shape) != ndim:
        raise ValueError(f"{source}: weight {key!r} has shape {list(shape)}, expected {ndim} dimensions "
                         "(a damaged or edited checkpoint?)")
    return shape


def rvt_model_config(rvt_weights: Mapping[str, torch.Tensor], dataset: str, *, dim_head: int | None = None,
                     source: str = "RVT checkpoint") -> tuple[ModelConfig, int, int]:
    """The evdet model of RVT weights (module docstring).

    Args:
        rvt_weights: RVT's ``YoloXDetector`` weights (``mdl.`` removed).
        dataset: ``"gen1"`` or ``"gen4"`` (partition split).
        dim_head: attention head width; None: RVT's for the stage-1 width (32, 48, 64).

    Returns:
        ``(model_config, in_channels, num_classes)``.

    Raises:
        ValueError: unknown dataset, missing weights, or a stage-1 width without a known ``dim_head``.
    """
    if dataset not in RVT_DATASETS:
        raise ValueError(f"unknown RVT dataset {dataset!r}: valid are {sorted(RVT_DATASETS)}")
    w = rvt_weights
    stages = _stage_indices(w, r"backbone\.stages\.(\d+)\.")
    if not stages:
        raise ValueError(f"{source}: no backbone.stages.* weights (not an RVT MaxViT-RNN checkpoint)")
    stem = _shape(w, "backbone.stages.0.downsample_cf2cl.conv.weight", source)
    embed_dim, in_channels, kernel = stem[0], stem[1], stem[2]
    overlap = kernel % 2 == 1
    patch = (kernel + 1) // 2 if overlap else kernel
    dims = [_shape(w, f"backbone.stages.{s}.downsample_cf2cl.conv.weight", source)[0] for s in stages]
    if any(d % embed_dim for d in dims):
        raise ValueError(f"{source}: stage widths {dims} are not multiples of the first ({embed_dim})")
    blocks = [len(_stage_indices(w, rf"backbone\.stages\.{s}\.att_blocks\.(\d+)\.")) for s in stages]
    block0 = "backbone.stages.0.att_blocks.0.att_window."
    mlp_ratio = _shape(w, block0 + "mlp.net.0.0.weight", source, ndim=2)[0] // embed_dim
    sizes = {e: (name, h) for name, (e, h) in RVT_SIZES.items() if name != "rvt"}
    if dim_head is None:
        if embed_dim not in sizes:
            raise ValueError(f"{source}: stage-1 width {embed_dim} is none of RVT's sizes "
                             f"({ {n: e for e, (n, _) in sizes.items()} }); give dim_head (--dim-head)")
        backbone, dim_head = sizes[embed_dim]
    else:
        backbone = "rvt"
    dws_key = "backbone.stages.0.lstm.conv3x3_dws.weight"
    dws = dws_key in w
    dws_shape = w[dws_key].shape if dws else None
    rvt = RVTConfig(
        embed_dim=embed_dim if backbone == "rvt" else None, dim_head=dim_head if backbone == "rvt" else None,
        dim_multiplier=tuple(d // embed_dim for d in dims), num_blocks=tuple(blocks), stem_patch_size=patch,
        overlap=overlap, norm_affine="backbone.stages.0.downsample_cf2cl.norm.weight" in w,
        partition_split_32=RVT_DATASETS[dataset]["partition_split_32"], mlp_ratio=mlp_ratio,
        ls_init_value=1e-5 if block0 + "ls1.gamma" in w else 0.0,
        attention_bias=block0 + "self_attn.qkv.bias" in w, mlp_bias=block0 + "mlp.net.0.0.bias" in w,
        lstm_dws_conv=dws, lstm_dws_conv_only_hidden=not dws or dws_shape[0] == embed_dim,
        lstm_dws_conv_kernel_size=int(dws_shape[-1]) if dws else 3)
    bottlenecks = len(_stage_indices(w, r"fpn\.C3_p4\.m\.(\d+)\."))
    if bottlenecks == 0:
        raise ValueError(f"{source}: no fpn.C3_p4.m.* weights (not an RVT checkpoint with the YOLOX PAFPN)")
    depth = {1: 0.33, 2: 0.67}.get(bottlenecks, bottlenecks / 3)
    depthwise = any(".dconv." in k for k in w if k.startswith("fpn."))
    num_classes = _shape(w, "yolox_head.cls_preds.0.weight", source)[0]
    # RVT's PAFPN reads stages 2-4 (``in_stages: [2, 3, 4]``): strides 8, 16, 32 with the usual stem of 4
    in_strides = None if patch == 4 else (2 * patch, 4 * patch, 8 * patch)
    config = ModelConfig(backbone=backbone, head="yolox", rvt=rvt,
                         yolox=YoloxHeadConfig(in_strides=in_strides, depth=depth, depthwise=depthwise),
                         **_RVT_DECODING)
    return config, int(in_channels), int(num_classes)


def is_rvt_checkpoint(ckpt: Any) -> bool:
    """True for a loaded checkpoint dict whose ``state_dict`` holds RVT's ``mdl.*`` weights and no evdet
    info."""
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("state_dict"), Mapping):
        return False
    hparams = ckpt.get("hyper_parameters")
    if isinstance(hparams, Mapping) and "info" in hparams:
        return False
    return any(isinstance(k, str) and k.startswith(RVT_PREFIX) for k in ckpt["state_dict"])


def _rvt_info(config: ModelConfig, in_channels: int, dataset: str, num_classes: int, source: str
              ) -> CheckpointInfo:
    label_map = dict(RVT_LABEL_MAPS[dataset])
    if num_classes != len(label_map):
        raise ValueError(f"{source}: the model predicts {num_classes} classes, RVT's {dataset} has "
                         f"{len(label_map)} ({list(label_map.values())}); check --dataset")
    d = RVT_DATASETS[dataset]
    return CheckpointInfo(
        classes=tuple(label_map[k] for k in sorted(label_map)), label_map=label_map,
        representation=RVT_REPRESENTATION, representation_params={"num_utbins": 10, "max_count": 10},
        delta_t=50_000, num_tbins=d["sequence_length"], in_channels=in_channels, sensor_size=d["sensor_size"],
        network_size=d["network_size"], model_config=config_to_dict(config), stored_size=d["network_size"],
        **_RVT_DECODING)


def load_rvt_checkpoint(path: str | os.PathLike, dataset: str | None = None, *, dim_head: int | None = None
                        ) -> tuple[nn.Module, CheckpointInfo]:
    """An RVT checkpoint as an evdet detector (eval mode, state reset) and its :class:`CheckpointInfo`.

    Args:
        path: RVT's Lightning ``.ckpt``.
        dataset: ``"gen1"`` / ``"gen4"``; None: from the number of classes (2: Gen1, 3: 1Mpx).
        dim_head: see :func:`rvt_model_config`.

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable or not an RVT checkpoint, unknown dataset,
            a class count that does not fit it, or weights that do not fit the inferred model.
    """
    source = str(path)
    weights = _rvt_weights(read_foreign_checkpoint(path), source)
    if dataset is None:
        n = _shape(weights, "yolox_head.cls_preds.0.weight", source)[0]
        by_count = {len(m): name for name, m in RVT_LABEL_MAPS.items()}
        if n not in by_count:
            raise ValueError(f"{source}: {n} classes is neither RVT's gen1 (2) nor gen4 (3); give the "
                             "dataset")
        dataset = by_count[n]
    config, in_channels, num_classes = rvt_model_config(weights, dataset, dim_head=dim_head, source=source)
    info = _rvt_info(config, in_channels, dataset, num_classes, source)
    detector = build_detector(config, in_channels, num_classes)
    load_weights(detector, evdet_state_dict_from_rvt(weights, source),
                 f"{source}: RVT weights do not fit the inferred model {config.backbone} + yolox")
    detector.eval()
    detector.reset_all()
    return detector, info


def import_rvt_checkpoint(rvt_ckpt: str | os.PathLike, out_ckpt: str | os.PathLike, dataset: str, *,
                          dim_head: int | None = None, overwrite: bool = False) -> CheckpointInfo:
    """Write RVT checkpoint ``rvt_ckpt`` as an evdet checkpoint ``out_ckpt`` (atomic; the output-path policy
    of :mod:`evdet.io.output_paths`: never over the input, never over a file evdet did not write).

    Returns:
        the written checkpoint's :class:`CheckpointInfo`.

    Raises:
        see :func:`load_rvt_checkpoint`; :class:`evdet.io.output_paths.OutputPathError` for the output.
    """
    check_output(out_ckpt, inputs=[rvt_ckpt], overwrite=overwrite, tool="evdet-import-rvt")
    detector, info = load_rvt_checkpoint(rvt_ckpt, dataset, dim_head=dim_head)
    save_detector_checkpoint(out_ckpt, detector, info,
                             extra_hparams={"imported_from": {"format": "rvt", "file": Path(rvt_ckpt).name,
                                                              "dataset": dataset}})
    record_output(out_ckpt, "evdet-import-rvt")
    return info


def save_rvt_checkpoint(path: str | os.PathLike, detector: nn.Module, *, overwrite: bool = False) -> None:
    """Write an evdet ``rvt*`` + ``yolox`` detector in RVT's checkpoint layout (``state_dict`` with the
    ``mdl.`` prefix, as RVT's ``--resume``-free weight loading reads it); atomic, output-path policy."""
    check_output(path, overwrite=overwrite)
    atomic_torch_save({"state_dict": rvt_state_dict(detector), "pytorch-lightning_version": "1.8.6",
                       "epoch": 0, "global_step": 0}, path)
    record_output(path, "evdet")
