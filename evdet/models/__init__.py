"""Detectors: recurrent backbones, anchors, box head, losses, single-stage detector."""

from evdet.models.anchors import ANCHOR_LISTS, AnchorLayer, Anchors, batched_decode, decode, encode
from evdet.models.backbones import BACKBONES, Vanilla, Vanilla_VGG, Vanilla_VGGRU, build_backbone
from evdet.models.box_head import BoxHead
from evdet.models.convrnn import ConvGRU, ConvLSTM
from evdet.models.focal_loss import smooth_l1_loss, softmax_focal_loss
from evdet.models.single_stage import SingleStageDetector

__all__ = [
    "ANCHOR_LISTS",
    "AnchorLayer",
    "Anchors",
    "BACKBONES",
    "BoxHead",
    "ConvGRU",
    "ConvLSTM",
    "SingleStageDetector",
    "Vanilla",
    "Vanilla_VGG",
    "Vanilla_VGGRU",
    "batched_decode",
    "build_backbone",
    "decode",
    "encode",
    "smooth_l1_loss",
    "softmax_focal_loss",
]
