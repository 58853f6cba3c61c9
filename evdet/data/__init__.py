"""Sequential multi-stream loading of event tensors and labels (SPEC 4): ``SequenceBatch``,
``DataConfig``, ``build_dataloader``, ``stream_batches``, ``describe_dataset``."""

from evdet._lazy import lazy_exports

# public name -> submodule defining it; imported on first use (evdet._lazy), so that light
# submodules and `--help` of the commands load no heavy dependency
_EXPORTS = {
    "Augmentation": "augment",
    "SequenceBatch": "batch",
    "VideoInfo": "batch",
    "DataConfig": "config",
    "SAMPLING_MODES": "config",
    "EpochSampler": "dataset",
    "LabelOptions": "dataset",
    "SequenceDataset": "dataset",
    "VideoLabels": "dataset",
    "DatasetInfo": "info",
    "describe_dataset": "info",
    "expand_recordings": "info",
    "assign_boxes_to_bins": "labels",
    "filter_boxes_to_targets": "labels",
    "resolve_classes": "labels",
    "build_dataloader": "loader",
    "make_dataset": "loader",
    "stream_batches": "loader",
    "ChunkItem": "schedule",
    "plan_epoch": "schedule",
    "shard_videos": "schedule",
    "VideoSpec": "sources",
    "probe_video": "sources",
    "read_frames": "sources",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
