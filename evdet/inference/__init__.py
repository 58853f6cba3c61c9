"""Inference below training: the checkpoint format, building and loading detectors, streaming detection
over recordings, and the conversion of a batch's detections into label-file rows.

Importing ``evdet.inference`` never imports Lightning: a trained model runs with torch alone.
"""

from evdet._lazy import lazy_exports

# public name -> submodule defining it; imported on first use (evdet._lazy), so that light
# submodules and `--help` of the commands load no heavy dependency
_EXPORTS = {
    "CheckpointInfo": "checkpoint",
    "DETECTOR_PREFIX": "checkpoint",
    "atomic_torch_save": "checkpoint",
    "checkpoint_info": "checkpoint",
    "detector_state_dict": "checkpoint",
    "find_latest_checkpoint": "checkpoint",
    "load_checkpoint_dict": "checkpoint",
    "load_detector": "checkpoint",
    "save_detector_checkpoint": "checkpoint",
    "with_class_score_only": "checkpoint",
    "config_from_dict": "config_dict",
    "config_to_dict": "config_dict",
    "VideoRows": "label_rows",
    "batch_label_rows": "label_rows",
    "AnchorHeadConfig": "model_config",
    "BACKBONES": "model_config",
    "DetrHeadConfig": "model_config",
    "HEADS": "model_config",
    "ModelConfig": "model_config",
    "RTDetrHeadConfig": "model_config",
    "RVTConfig": "model_config",
    "RVT_SIZES": "model_config",
    "VanillaConfig": "model_config",
    "YoloxHeadConfig": "model_config",
    "build_detector": "model_config",
    "load_pretrained": "pretrained",
    "source_weights": "pretrained",
    "UnreadableObject": "foreign_checkpoint",
    "read_foreign_checkpoint": "foreign_checkpoint",
    "RVT_DATASETS": "rvt_checkpoint",
    "import_rvt_checkpoint": "rvt_checkpoint",
    "load_rvt_checkpoint": "rvt_checkpoint",
    "rvt_model_config": "rvt_checkpoint",
    "save_rvt_checkpoint": "rvt_checkpoint",
    "transfer_weights": "pretrained",
    "check_recordings": "streaming",
    "class_ids_for": "streaming",
    "data_config_for": "streaming",
    "detect_recording": "streaming",
    "detect_recordings": "streaming",
    "iter_detections": "streaming",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
