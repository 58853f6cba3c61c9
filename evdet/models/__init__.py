"""Detectors: recurrent backbones and detection heads composed into one :class:`RecurrentDetector`.

Backbones (``BACKBONES``) declare their feature levels (``channels``, ``strides``) and recurrent state;
:class:`RVTBackbone` is RVT's MaxViT-RNN (``rvt-t/s/b`` in :mod:`evdet.inference.model_config`);
heads (:class:`DetectionHead`: :class:`AnchorHead`, :class:`DetrHead`, :class:`YoloxHead`,
:class:`RTDETRHead`) are built from
those levels, so any backbone combines with any head.
"""

from evdet.models.anchor_head import AnchorHead
from evdet.models.anchors import ANCHOR_LISTS, AnchorLayer, Anchors, batched_decode, decode, encode
from evdet.models.backbones import BACKBONES, Vanilla, Vanilla_VGG, Vanilla_VGGRU, build_backbone
from evdet.models.box_head import BoxHead
from evdet.models.convrnn import ConvGRU, ConvLSTM
from evdet.models.deformable_attention import MSDeformableAttention
from evdet.models.detector import RecurrentDetector
from evdet.models.detr_head import DetrHead, decode_set_predictions
from evdet.models.focal_loss import smooth_l1_loss, softmax_focal_loss
from evdet.models.head import ClassLogitLayer, DetectionHead
from evdet.models.matcher import HungarianMatcher
from evdet.models.rtdetr_head import RTDETRHead
from evdet.models.rvt_backbone import RVTBackbone, rvt_input_geometry
from evdet.models.set_criterion import SetCriterion, slot_metrics
from evdet.models.set_head import SetTransformer, sine_position_encoding
from evdet.models.simota import simota_assign
from evdet.models.yolox_decoding import yolox_postprocess
from evdet.models.yolox_head import YoloxHead
from evdet.models.yolox_loss import yolox_loss
from evdet.models.yolox_pafpn import YoloxPAFPN

__all__ = [
    "ANCHOR_LISTS",
    "AnchorHead",
    "AnchorLayer",
    "Anchors",
    "BACKBONES",
    "BoxHead",
    "ClassLogitLayer",
    "ConvGRU",
    "ConvLSTM",
    "DetectionHead",
    "DetrHead",
    "HungarianMatcher",
    "MSDeformableAttention",
    "RTDETRHead",
    "RVTBackbone",
    "RecurrentDetector",
    "SetCriterion",
    "SetTransformer",
    "Vanilla",
    "Vanilla_VGG",
    "Vanilla_VGGRU",
    "YoloxHead",
    "YoloxPAFPN",
    "batched_decode",
    "build_backbone",
    "decode",
    "decode_set_predictions",
    "encode",
    "rvt_input_geometry",
    "smooth_l1_loss",
    "slot_metrics",
    "softmax_focal_loss",
    "sine_position_encoding",
    "simota_assign",
    "yolox_loss",
    "yolox_postprocess",
]
