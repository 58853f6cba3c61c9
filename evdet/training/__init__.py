"""Training of recurrent event-camera detectors (SPEC 6): Lightning module, data module, checkpoints,
configs, LR schedules, pretrained-weight transfer and the ``train`` entry used by ``evdet-train``.

The only layer of evdet that imports Lightning.
"""

from evdet.training.checkpoint import CheckpointInfo, find_latest_checkpoint, load_detector
from evdet.training.config import HEADS, ModelConfig, TrainConfig, build_detector
from evdet.training.datamodule import EventDataModule
from evdet.training.lightning_module import LightningDetectionModel, NonFiniteLossError
from evdet.training.pretrained import load_pretrained, transfer_weights
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
