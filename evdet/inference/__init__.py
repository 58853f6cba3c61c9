"""Inference below training: the checkpoint format, building and loading detectors, streaming detection
over recordings, and the conversion of a batch's detections into label-file rows.

Importing ``evdet.inference`` never imports Lightning: a trained model runs with torch alone.
"""

from evdet.inference.checkpoint import (
    DETECTOR_PREFIX,
    CheckpointInfo,
    atomic_torch_save,
    checkpoint_info,
    detector_state_dict,
    find_latest_checkpoint,
    load_checkpoint_dict,
    load_detector,
    save_detector_checkpoint,
)
from evdet.inference.config_dict import config_from_dict, config_to_dict
from evdet.inference.label_rows import VideoRows, batch_label_rows
from evdet.inference.model_config import (
    BACKBONES,
    HEADS,
    AnchorHeadConfig,
    DetrHeadConfig,
    ModelConfig,
    VanillaConfig,
    build_detector,
)
from evdet.inference.pretrained import load_pretrained, transfer_weights
from evdet.inference.streaming import (
    check_recordings,
    class_ids_for,
    data_config_for,
    detect_recording,
    detect_recordings,
    iter_detections,
)

__all__ = [
    "BACKBONES",
    "DETECTOR_PREFIX",
    "HEADS",
    "AnchorHeadConfig",
    "CheckpointInfo",
    "DetrHeadConfig",
    "ModelConfig",
    "VanillaConfig",
    "VideoRows",
    "atomic_torch_save",
    "batch_label_rows",
    "build_detector",
    "check_recordings",
    "checkpoint_info",
    "class_ids_for",
    "config_from_dict",
    "config_to_dict",
    "data_config_for",
    "detect_recording",
    "detect_recordings",
    "detector_state_dict",
    "find_latest_checkpoint",
    "iter_detections",
    "load_checkpoint_dict",
    "load_detector",
    "load_pretrained",
    "save_detector_checkpoint",
    "transfer_weights",
]
