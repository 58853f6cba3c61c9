"""Start from a trained checkpoint with another class list: ``load_pretrained(checkpoint_path, classes)``
(an evdet checkpoint, or one of RVT's as released).

Every weight whose name and shape match is copied; the head's declared class-logit layers
(``DetectionHead.class_logit_layers``) are remapped by class name through the detector's
``map_cls_weights`` (background and shared classes keep their trained weights, new classes keep the
detector's initial prior, dropped classes disappear).

Note on scores: the anchor head scores classes with a softmax over background + classes, so adding or
dropping a class changes the normaliser: the shared classes' logits and boxes are identical, their
scores are those of the source model renormalised over the new class set (with a new class at its
low initial prior, the change is small).
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from evdet.inference.checkpoint import (
    CheckpointInfo,
    checkpoint_info,
    detector_state_dict,
    load_checkpoint_dict,
)
from evdet.inference.model_config import build_detector
from evdet.inference.rvt_checkpoint import is_rvt_checkpoint, load_rvt_checkpoint

__all__ = ["load_pretrained", "source_weights", "transfer_weights"]

log = logging.getLogger(__name__)


def transfer_weights(
    detector: nn.Module,
    src_state_dict: Mapping[str, torch.Tensor],
    old_classes: Sequence[str],
    new_classes: Sequence[str],
) -> list[str]:
    """Copy every weight of ``src_state_dict`` that ``detector`` has with the same shape, remapping the class
    logits by name (``detector.map_cls_weights``).

    Args:
        detector: the target :class:`evdet.models.RecurrentDetector`, built for ``new_classes``.
        src_state_dict: the source detector's weights (classes ``old_classes``).

    Returns:
        the keys of the source that were not copied (absent here or of another shape), also logged.

    Raises:
        ValueError: the number of ``new_classes`` does not match the detector, or ``old_classes`` does not
            match the source class logits (from ``map_cls_weights``).
    """
    if len(new_classes) != detector.num_classes:
        raise ValueError(f"transfer_weights: {len(new_classes)} new classes for a detector with "
                         f"{detector.num_classes} classes")
    own = detector.state_dict()
    cls_keys = {"head." + key for layer in detector.head.class_logit_layers() for key in layer.keys}
    kept, skipped = {}, []
    for key, value in src_state_dict.items():
        if key in own and (key in cls_keys or own[key].shape == value.shape):
            kept[key] = value
        else:
            skipped.append(key)
    if skipped:
        log.warning("transfer_weights: %d source tensors not copied (absent or other shape): %s",
                    len(skipped), ", ".join(skipped[:10]))
    detector.map_cls_weights(kept, list(old_classes), list(new_classes))
    return skipped


def source_weights(checkpoint_path: str | os.PathLike, map_location: Any, rvt_dataset: str | None
            ) -> tuple[CheckpointInfo, dict[str, torch.Tensor]]:
    """``(info, detector weights)`` of an evdet checkpoint, or of one of RVT's (imported on the fly;
    ``rvt_dataset`` as in :func:`load_pretrained`).

    Raises:
        FileNotFoundError: no such file. ValueError: neither a readable evdet nor an RVT checkpoint.
    """
    source = str(checkpoint_path)
    try:
        ckpt = load_checkpoint_dict(checkpoint_path, map_location)
    except ValueError as exc:  # RVT files hold pickled objects that weights_only refuses
        if not zipfile.is_zipfile(checkpoint_path):  # empty, truncated, not torch.save's: RVT cannot read it
            raise
        evdet_error: ValueError | None = exc
        ckpt = None
    else:
        evdet_error = None
        if not is_rvt_checkpoint(ckpt):
            return checkpoint_info(ckpt, source), detector_state_dict(ckpt, source)
    try:
        detector, info = load_rvt_checkpoint(checkpoint_path, rvt_dataset)
    except ValueError as exc:
        if evdet_error is not None:
            raise ValueError(f"{evdet_error} (and not an RVT checkpoint either: {exc})") from exc
        raise
    return info, detector.state_dict()


def load_pretrained(
    checkpoint_path: str | os.PathLike, classes: Sequence[str], map_location: Any = "cpu",
    rvt_dataset: str | None = None,
) -> tuple[nn.Module, CheckpointInfo]:
    """A detector with the architecture of ``checkpoint_path`` for ``classes``, initialised from its weights.

    Args:
        checkpoint_path: an evdet checkpoint (read with ``torch.load(weights_only=True)``), or one of RVT's
            checkpoints as released (read as :func:`evdet.inference.rvt_checkpoint.load_rvt_checkpoint`
            does: no pickled code runs).
        classes: the new class names, in output order (subset, superset or reordering of the checkpoint's).
        rvt_dataset: for an RVT checkpoint, ``"gen1"`` or ``"gen4"`` (its classes, input and partition
            split); None: from its number of classes (2: Gen1, 3: 1Mpx).

    Returns:
        ``(detector, info)``: the detector in train mode, and the checkpoint's :class:`CheckpointInfo` with
        ``classes`` replaced by the new ones.

    Raises:
        FileNotFoundError / ValueError: missing or unreadable checkpoint; empty or repeated class names.
    """
    classes = [str(c) for c in classes]
    if not classes:
        raise ValueError("load_pretrained: classes is empty")
    if len(set(classes)) != len(classes):
        raise ValueError(f"load_pretrained: repeated class names in {classes}")
    info, state = source_weights(checkpoint_path, map_location, rvt_dataset)
    detector = build_detector(info.config, info.in_channels, len(classes))
    transfer_weights(detector, state, info.classes, classes)
    new_info = CheckpointInfo.from_dict(dict(info.to_dict(), classes=classes))
    return detector, new_info
