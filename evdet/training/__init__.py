"""Training of recurrent event-camera detectors (SPEC 6): Lightning module, data module, the atomic
checkpoint writer, training options, LR schedules and the ``train`` entry used by ``evdet-train``.

The only layer of evdet that imports Lightning. Model building, checkpoints and ``load_pretrained`` live
in :mod:`evdet.inference` (re-exported here for convenience).
"""

from evdet.inference import (
    HEADS,
    CheckpointInfo,
    ModelConfig,
    build_detector,
    find_latest_checkpoint,
    load_detector,
    load_pretrained,
    transfer_weights,
)
from evdet.training.config import TrainConfig
from evdet.training.datamodule import EventDataModule
from evdet.training.lightning_module import LightningDetectionModel, NonFiniteLossError
from evdet.training.run import TrainResult, train

__all__ = [
    "HEADS",
    "CheckpointInfo",
    "EventDataModule",
    "LightningDetectionModel",
    "ModelConfig",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "build_detector",
    "find_latest_checkpoint",
    "load_detector",
    "load_pretrained",
    "train",
    "transfer_weights",
]
