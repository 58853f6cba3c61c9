"""Import RVT's own code from a checkout, for the parity checks ``check_rvt_*.py`` (not part of evdet).

RVT's model code needs three things it does not use for the computation being compared; after
:func:`import_rvt` they are served by stand-ins in ``sys.modules``, so nothing beyond torch is needed:

- ``omegaconf``: RVT reads its configs by attribute and turns some into dicts with
  ``OmegaConf.to_container``. :class:`Config` (a nested dict with attribute access) plays ``DictConfig``
  and :class:`_OmegaConf` has ``to_container`` (a deep copy into plain dicts). Always the stand-in, even
  when omegaconf is installed, so the configs built here are what RVT receives.
- ``data.utils.types``: RVT's module imports its label classes (and einops); only four type aliases are
  used by the model code, provided here (only when not already importable under that name).
- ``torchvision``: RVT's ``postprocess`` calls ``torchvision.ops.batched_nms`` (and its module imports
  torchvision at the top). torchvision's compiled ops do not load on every machine, so the stand-in is
  always used: :func:`reference_nms` / :func:`reference_batched_nms` / :func:`reference_box_iou`, a plain
  greedy NMS in torch written for this check (independently of ``evdet.ops``), with torchvision's
  documented semantics: xyxy boxes, a box is suppressed by a higher-scoring kept box of the same group
  when their IoU is > the threshold, kept indices returned in decreasing score order.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
from torch import Tensor


class Config(dict):
    """omegaconf.DictConfig stand-in: nested dict with attribute access."""

    def __init__(self, values: dict):
        super().__init__({k: Config(v) if isinstance(v, dict) else v for k, v in values.items()})

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


class _OmegaConf:
    """omegaconf.OmegaConf stand-in: only ``to_container`` (plain nested dicts and lists)."""

    @staticmethod
    def to_container(cfg, resolve: bool = True, throw_on_missing: bool = True):
        if isinstance(cfg, dict):
            return {k: _OmegaConf.to_container(v) for k, v in cfg.items()}
        if isinstance(cfg, (list, tuple)):
            return [_OmegaConf.to_container(v) for v in cfg]
        return cfg


def reference_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU ``Tensor[N, M]`` of xyxy boxes ``Tensor[N, 4]`` and ``Tensor[M, 4]``."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])  # [N, M, 2]
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)  # [N, M]
    return inter / (area1[:, None] + area2[None, :] - inter)


def reference_nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS: visit boxes by decreasing score, keep a box unless a kept one overlaps it with
    IoU > ``iou_threshold``. Returns the kept indices ``Tensor[K]`` (int64), highest score first."""
    order = torch.argsort(scores, descending=True)
    iou = reference_box_iou(boxes[order], boxes[order])  # [N, N] in visiting order
    suppressed = torch.zeros(order.numel(), dtype=torch.bool)
    kept = []
    for i in range(order.numel()):
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(kept, dtype=torch.int64)]


def reference_batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """:func:`reference_nms` within each group of equal ``idxs``; kept indices by decreasing score."""
    kept = []
    for value in torch.unique(idxs):
        group = (idxs == value).nonzero()[:, 0]
        kept.append(group[reference_nms(boxes[group], scores[group], iou_threshold)])
    if not kept:
        return torch.zeros(0, dtype=torch.int64)
    keep = torch.cat(kept)
    return keep[torch.argsort(scores[keep], descending=True)]


def import_rvt(rvt_dir: Path) -> None:
    """Put the stand-ins of the module docstring in ``sys.modules`` and RVT's checkout on ``sys.path``;
    then ``from models.detection... import ...`` imports RVT's code."""
    if not (rvt_dir / "models" / "detection").is_dir():
        raise FileNotFoundError(f"{rvt_dir} is not a checkout of uzh-rpg/RVT (no models/detection)")
    sys.modules["omegaconf"] = types.SimpleNamespace(DictConfig=Config, OmegaConf=_OmegaConf)
    rvt_types = types.ModuleType("data.utils.types")
    rvt_types.FeatureMap = torch.Tensor
    rvt_types.BackboneFeatures = dict
    rvt_types.LstmState = tuple
    rvt_types.LstmStates = list
    sys.modules.setdefault("data.utils.types", rvt_types)
    ops = types.ModuleType("torchvision.ops")
    ops.nms = reference_nms
    ops.batched_nms = reference_batched_nms
    ops.box_iou = reference_box_iou
    torchvision = types.ModuleType("torchvision")
    torchvision.ops = ops
    sys.modules["torchvision"] = torchvision
    sys.modules["torchvision.ops"] = ops
    sys.path.insert(0, str(rvt_dir))


def backbone_config(embed_dim: int, dim_head: int, partition_size: tuple[int, int], dws_conv: bool = False,
                    only_hidden: bool = True) -> Config:
    """RVT's ``config/model/maxvit_yolox/default.yaml`` backbone section, sizes and partitions set."""
    return Config(dict(
        name="MaxViTRNN", input_channels=20, enable_masking=False, embed_dim=embed_dim,
        dim_multiplier=[1, 2, 4, 8], num_blocks=[1, 1, 1, 1], T_max_chrono_init=[4, 8, 16, 32],
        stem=dict(patch_size=4),
        stage=dict(downsample=dict(type="patch", overlap=True, norm_affine=True),
                   attention=dict(use_torch_mha=False, partition_size=partition_size, dim_head=dim_head,
                                  attention_bias=True, mlp_activation="gelu", mlp_gated=False, mlp_bias=True,
                                  mlp_ratio=4, drop_mlp=0, drop_path=0, ls_init_value=1e-5),
                   lstm=dict(dws_conv=dws_conv, dws_conv_only_hidden=only_hidden, dws_conv_kernel_size=3,
                             drop_cell_update=0))))


def detector_config(embed_dim: int, dim_head: int, partition_size: tuple[int, int],
                    padded_hw: tuple[int, int], num_classes: int, fpn_depth: float) -> Config:
    """RVT's ``model`` config of a ``YoloXDetector`` (``maxvit_yolox/default.yaml`` + ``rnndet.yaml``):
    the backbone of :func:`backbone_config`, the PAFPN on stages 2-4, the YOLOX head, postprocess 0.1 /
    0.45. ``padded_hw``: RVT's ``backbone.in_res_hw`` (the padded input size)."""
    backbone = backbone_config(embed_dim, dim_head, partition_size)
    backbone["in_res_hw"] = list(padded_hw)
    return Config(dict(
        name="rnndet", backbone=backbone,
        fpn=dict(name="PAFPN", depth=fpn_depth, in_stages=[2, 3, 4], depthwise=False, act="silu"),
        head=dict(name="YoloX", num_classes=num_classes, depthwise=False, act="silu"),
        postprocess=dict(confidence_threshold=0.1, nms_threshold=0.45)))
