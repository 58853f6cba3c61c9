"""Detectors: recurrent backbones, anchors, box head, losses, single-stage and set-prediction detectors."""

from evdet.models.anchors import ANCHOR_LISTS, AnchorLayer, Anchors, batched_decode, decode, encode
from evdet.models.backbones import BACKBONES, Vanilla, Vanilla_VGG, Vanilla_VGGRU, build_backbone
from evdet.models.box_head import BoxHead
from evdet.models.convrnn import ConvGRU, ConvLSTM
from evdet.models.focal_loss import smooth_l1_loss, softmax_focal_loss
from evdet.models.matcher import HungarianMatcher
from evdet.models.set_criterion import SetCriterion, slot_metrics
from evdet.models.set_detector import SetDetector, decode_set_predictions
from evdet.models.set_head import SetHead, sine_position_encoding
from evdet.models.single_stage import SingleStageDetector

__all__ = [
    "ANCHOR_LISTS",
    "AnchorLayer",
    "Anchors",
    "BACKBONES",
    "BoxHead",
    "ConvGRU",
    "ConvLSTM",
    "HungarianMatcher",
    "SetCriterion",
    "SetDetector",
    "SetHead",
    "SingleStageDetector",
    "Vanilla",
    "Vanilla_VGG",
    "Vanilla_VGGRU",
    "batched_decode",
    "build_backbone",
    "decode",
    "decode_set_predictions",
    "encode",
    "smooth_l1_loss",
    "slot_metrics",
    "softmax_focal_loss",
    "sine_position_encoding",
]
