"""Training of recurrent event-camera detectors (SPEC 6): Lightning module, data module, the atomic
checkpoint writer, training options, LR schedules and the ``train`` entry used by ``evdet-train``.

The only layer of evdet that imports Lightning. Model building, checkpoints and ``load_pretrained`` live
in :mod:`evdet.inference` (re-exported here for convenience).
"""

from evdet._lazy import lazy_exports

# public name -> submodule defining it; imported on first use (evdet._lazy), so that light
# submodules and `--help` of the commands load no heavy dependency
_EXPORTS = {
    "CheckpointInfo": "evdet.inference.checkpoint",
    "HEADS": "evdet.inference.model_config",
    "ModelConfig": "evdet.inference.model_config",
    "build_detector": "evdet.inference.model_config",
    "find_latest_checkpoint": "evdet.inference.checkpoint",
    "load_detector": "evdet.inference.checkpoint",
    "load_pretrained": "evdet.inference.pretrained",
    "transfer_weights": "evdet.inference.pretrained",
    "TrainConfig": "config",
    "EventDataModule": "datamodule",
    "LightningDetectionModel": "lightning_module",
    "NonFiniteLossError": "lightning_module",
    "TrainResult": "run",
    "train": "run",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
