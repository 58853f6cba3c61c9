"""Small detectors for tests: a backbone from ``BACKBONES`` composed with a head (shared test helper)."""

from __future__ import annotations

import torch

from evdet.models import AnchorHead, DetrHead, RecurrentDetector, RTDETRHead, YoloxHead, build_backbone


def _compose(head_cls, in_channels: int, num_classes: int, base: int, cout: int, backbone: str,
             head_kw: dict) -> RecurrentDetector:
    bb = build_backbone(backbone, in_channels, base, cout)
    return RecurrentDetector(bb, head_cls(bb.channels, bb.strides, num_classes, **head_kw))


def anchor_detector(in_channels: int = 2, num_classes: int = 2, base: int = 4, cout: int = 8,
                    backbone: str = "Vanilla", **head_kw) -> RecurrentDetector:
    """``RecurrentDetector(build_backbone(backbone, ...), AnchorHead(..., **head_kw))``."""
    return _compose(AnchorHead, in_channels, num_classes, base, cout, backbone, head_kw)


def detr_detector(in_channels: int = 2, num_classes: int = 2, base: int = 4, cout: int = 8,
                  backbone: str = "Vanilla", **head_kw) -> RecurrentDetector:
    """``RecurrentDetector(build_backbone(backbone, ...), DetrHead(..., **head_kw))``."""
    return _compose(DetrHead, in_channels, num_classes, base, cout, backbone, head_kw)


def yolox_detector(in_channels: int = 2, num_classes: int = 2, base: int = 4, cout: int = 8,
                   backbone: str = "Vanilla", **head_kw) -> RecurrentDetector:
    """``RecurrentDetector(build_backbone(backbone, ...), YoloxHead(..., **head_kw))``."""
    return _compose(YoloxHead, in_channels, num_classes, base, cout, backbone, head_kw)


RTDETR_SMALL = dict(hidden_dim=16, nheads=2, enc_ffn=32, dec_ffn=32, depth_mult=0.34, num_queries=12,
                    dec_layers=2, num_points=2, num_denoising=12, top_k=50)
"""A small RT-DETR head for tests."""


def rtdetr_detector(in_channels: int = 2, num_classes: int = 2, base: int = 4, cout: int = 8,
                    backbone: str = "Vanilla", **head_kw) -> RecurrentDetector:
    """``RecurrentDetector(build_backbone(backbone, ...), RTDETRHead(..., **RTDETR_SMALL | head_kw))`` with
    the class biases zeroed (scores near 0.5 instead of the 0.01 prior), so that an untrained detector's
    detections pass the usual test thresholds."""
    det = _compose(RTDETRHead, in_channels, num_classes, base, cout, backbone, {**RTDETR_SMALL, **head_kw})
    with torch.no_grad():
        dec = det.head.decoder
        for layer in [dec.enc_score_head, *dec.dec_score_head]:
            layer.bias.zero_()
    return det
