"""Small detectors for tests: a backbone from ``BACKBONES`` composed with a head (shared test helper)."""

from __future__ import annotations

from evdet.models import AnchorHead, DetrHead, RecurrentDetector, YoloxHead, build_backbone


def anchor_detector(in_channels: int = 2, num_classes: int = 2, base: int = 4, cout: int = 8,
                    backbone: str = "Vanilla", **head_kw) -> RecurrentDetector:
    """``RecurrentDetector(build_backbone(backbone, ...), AnchorHead(..., **head_kw))``."""
    bb = build_backbone(backbone, in_channels, base, cout)
    return RecurrentDetector(bb, AnchorHead(bb.channels, bb.strides, num_classes, **head_kw))


def detr_detector(in_channels: int = 2, num_classes: int = 2, base: int = 4, cout: int = 8,
                  backbone: str = "Vanilla", **head_kw) -> RecurrentDetector:
    """``RecurrentDetector(build_backbone(backbone, ...), DetrHead(..., **head_kw))``."""
    bb = build_backbone(backbone, in_channels, base, cout)
    return RecurrentDetector(bb, DetrHead(bb.channels, bb.strides, num_classes, **head_kw))


def yolox_detector(in_channels: int = 2, num_classes: int = 2, base: int = 4, cout: int = 8,
                   backbone: str = "Vanilla", **head_kw) -> RecurrentDetector:
    """``RecurrentDetector(build_backbone(backbone, ...), YoloxHead(..., **head_kw))``."""
    bb = build_backbone(backbone, in_channels, base, cout)
    return RecurrentDetector(bb, YoloxHead(bb.channels, bb.strides, num_classes, **head_kw))
