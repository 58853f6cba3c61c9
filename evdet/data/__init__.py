"""Sequential multi-stream loading of event tensors and labels (SPEC 4): ``SequenceBatch``,
``DataConfig``, ``build_dataloader``, ``stream_batches``, ``describe_dataset``."""

from evdet.data.augment import Augmentation
from evdet.data.batch import SequenceBatch, VideoInfo
from evdet.data.config import SAMPLING_MODES, DataConfig
from evdet.data.dataset import EpochSampler, LabelOptions, SequenceDataset, VideoLabels
from evdet.data.info import DatasetInfo, describe_dataset, expand_recordings
from evdet.data.labels import assign_boxes_to_bins, filter_boxes_to_targets, resolve_classes
from evdet.data.loader import build_dataloader, make_dataset, stream_batches
from evdet.data.schedule import ChunkItem, plan_epoch, shard_videos
from evdet.data.sources import VideoSpec, probe_video, read_frames

__all__ = [
    "Augmentation", "ChunkItem", "DataConfig", "DatasetInfo", "EpochSampler", "LabelOptions",
    "SAMPLING_MODES", "SequenceBatch", "SequenceDataset", "VideoInfo", "VideoLabels", "VideoSpec",
    "assign_boxes_to_bins", "build_dataloader",
    "describe_dataset", "expand_recordings", "filter_boxes_to_targets", "make_dataset", "plan_epoch",
    "probe_video", "read_frames", "resolve_classes", "shard_videos", "stream_batches",
]
