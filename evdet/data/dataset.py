"""The torch side of the pipeline: a map-style dataset whose "index" is a whole batch plan (a list of
B :class:`~evdet.data.schedule.ChunkItem`), and the sampler that yields the plans of an epoch in a fixed
order. Items are stateless (files are reopened per process), so the worker count never changes results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info

from evdet.data.augment import augment_boxes, augment_tensor
from evdet.data.batch import SequenceBatch, VideoInfo
from evdet.data.labels import (
    assign_boxes_flat,
    detect_label_period,
    filter_boxes_to_targets,
    has_real_track_ids,
)
from evdet.data.schedule import AugmentationParams, ChunkItem, plan_epoch
from evdet.data.shared_memory import release, shared_tensor
from evdet.data.sources import VideoSpec, read_frames, read_frames_into, read_uint8_into, stored_as_uint8


@dataclass(frozen=True)
class LabelOptions:
    """Label settings of a dataset (from :class:`~evdet.data.config.DataConfig`; see SPEC 4.1).

    Attributes:
        class_lookup: original class id -> output index (other ids and "empty" dropped).
        interpolate: interpolate per track to bin ends. max_interp_gap: µs; None -> 2 × label period of
            each video. clip, min_box_side, min_box_diag_network: filters (see ``filter_boxes_to_targets``).
    """

    class_lookup: Mapping[int, int]
    interpolate: bool = False
    max_interp_gap: int | None = None
    clip: bool = True
    min_box_side: float = 2.0
    min_box_diag_network: float = 0.0


@dataclass(frozen=True)
class VideoLabels:
    """Boxes of one video (``BBOX_DTYPE`` sorted by t, sensor pixels), whether track ids are real, and the
    interpolation gap (µs) used for it."""

    boxes: np.ndarray
    real_track_ids: bool
    max_interp_gap: int

    @classmethod
    def from_boxes(cls, boxes: np.ndarray, max_interp_gap: int | None) -> VideoLabels:
        if max_interp_gap is None:
            period = detect_label_period(boxes)
            max_interp_gap = 0 if period is None else 2 * period
        return cls(boxes, has_real_track_ids(boxes), int(max_interp_gap))

    def labeled_frames(self, spec: VideoSpec) -> np.ndarray:
        """Indices of the frames holding an annotation instant (bin ``(start + kΔ, start + (k+1)Δ]``;
        frame 0 also takes t = start)."""
        t = np.unique(self.boxes["t"]) - spec.start_ts
        k = np.maximum(-(-t // spec.delta_t) - 1, 0)
        return np.unique(k[(t >= 0) & (k < spec.num_frames)]).astype(np.int64)


@dataclass(frozen=True)
class FrameLabels:
    """Boxes attached to frames by index rather than by time (RVT's preprocessed folders, where label frame j
    belongs to representation ``objframe_idx_2_repr_idx[j]``; see :mod:`evdet.data.rvt`).

    Attributes:
        boxes: ``BBOX_DTYPE [n]`` in stored-frame pixels (already cropped as the source format does),
            ``t`` = the end time of their frame.
        frames: int64 ``[n]`` frame index of each box, non-decreasing.
        labeled: int64 ``[m]`` the labelled frames, sorted (frames with at least one box).
    """

    boxes: np.ndarray
    frames: np.ndarray
    labeled: np.ndarray

    def labeled_frames(self, spec: VideoSpec) -> np.ndarray:
        """Indices of the labelled frames (``spec`` unused: frames are stored by index)."""
        return self.labeled

    def chunk(self, start: int, valid: int, num_tbins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(boxes, bin index, labeled[T])`` of frames ``start .. start + valid - 1`` (no interpolation)."""
        lo, hi = np.searchsorted(self.frames, [start, start + valid])
        labeled = np.zeros(num_tbins, dtype=bool)
        k0, k1 = np.searchsorted(self.labeled, [start, start + valid])
        labeled[self.labeled[k0:k1] - start] = True
        return self.boxes[lo:hi], self.frames[lo:hi] - start, labeled


class SequenceDataset(Dataset):
    """``dataset[plan] -> SequenceBatch`` for a plan of B :class:`ChunkItem` (see ``EpochSampler``).

    Args:
        videos: the split's videos. labels: per video, its :class:`VideoLabels` (boxes by time),
            :class:`FrameLabels` (boxes by frame) or None (unlabelled).
        num_tbins: T. network_size: ``(height, width)`` of the inputs. options: label settings.
        uint8_inputs: when every video is stored as uint8 at the network size (same ``uint8_scale``),
            batches without zoomed columns keep their inputs as the stored bytes
            (``SequenceBatch.input_scale``); else float32.
    """

    def __init__(self, videos: Sequence[VideoSpec], labels: Sequence[VideoLabels | FrameLabels | None],
                 num_tbins: int, network_size: tuple[int, int], options: LabelOptions,
                 uint8_inputs: bool = True):
        if len(videos) != len(labels):
            raise ValueError(f"{len(videos)} videos but {len(labels)} label entries")
        self.videos = list(videos)
        self.labels = list(labels)
        self.num_tbins = int(num_tbins)
        self.network_size = (int(network_size[0]), int(network_size[1]))
        self.options = options
        channels = {v.channels for v in self.videos}
        self.channels = channels.pop() if len(channels) == 1 else 0
        self.delta_t = self.videos[0].delta_t if self.videos else 0
        self.uint8_scale = self._common_uint8_scale() if uint8_inputs else None

    def __len__(self) -> int:
        return len(self.videos)

    def _column_labels(self, item: ChunkItem, spec: VideoSpec, chunk_start: int, valid: int
                       ) -> tuple[list[torch.Tensor], np.ndarray]:
        t = self.num_tbins
        labels = self.labels[item.video]
        if labels is None:
            return [torch.zeros((0, 5)) for _ in range(t)], np.zeros(t, dtype=bool)
        if isinstance(labels, FrameLabels):  # boxes by frame, in stored pixels, already cropped
            flat, bins, labeled = labels.chunk(item.start_frame, valid, t)
            frame_size, clip, min_side = spec.stored_size, False, 0.0
        else:
            flat, bins, labeled = assign_boxes_flat(
                labels.boxes, chunk_start, spec.delta_t, t, num_valid_bins=valid,
                include_start=item.start_frame == 0, interpolate=self.options.interpolate,
                max_interp_gap=labels.max_interp_gap, real_track_ids=labels.real_track_ids)
            frame_size, clip, min_side = spec.sensor_size, self.options.clip, self.options.min_box_side
        h, w = self.network_size
        targets, index = filter_boxes_to_targets(
            flat, sensor_size=frame_size, class_lookup=self.options.class_lookup,
            network_size=self.network_size, clip=clip, min_box_side=min_side,
            min_box_diag_network=self.options.min_box_diag_network, return_index=True)
        bounds = np.searchsorted(bins[index], np.arange(1, t))
        out = [torch.from_numpy(augment_boxes(part, item.aug, h, w)) for part in np.split(targets, bounds)]
        return out, labeled

    def _common_uint8_scale(self) -> float | None:
        """The ``uint8_scale`` of every video when all of them are stored as uint8 at the network size with
        the same scale (see ``stored_as_uint8``), else None."""
        scales = {v.uint8_scale if stored_as_uint8(v, self.network_size) else None for v in self.videos}
        return scales.pop() if len(scales) == 1 else None

    def __getitem__(self, plan: Sequence[ChunkItem]) -> SequenceBatch:
        t, b = self.num_tbins, len(plan)
        h, w = self.network_size
        # zoomed columns are resized (not integers any more); a flip is applied to the stored bytes
        scale = self.uint8_scale if all(item.aug.zoom == 1.0 for item in plan) else None
        # Inputs: uint8 [B, T, C, H, W] memory (each column's frames contiguous: one h5py read_direct each)
        # seen as [T, B, ...], or float32 [T, B, ...]. In a DataLoader worker they live in shared memory, so
        # the batch reaches the main process without a copy.
        dtype = torch.float32 if scale is None else torch.uint8
        shape = (t, b, self.channels, h, w) if scale is None else (b, t, self.channels, h, w)
        in_worker = get_worker_info() is not None
        inputs = _new_tensor(shape, dtype, shared=in_worker)
        if scale is not None:
            inputs = inputs.transpose(0, 1)
        try:
            return self._fill(plan, inputs, scale)
        except BaseException:
            if in_worker:
                release(inputs)
            raise

    def _fill(self, plan: Sequence[ChunkItem], inputs: torch.Tensor, scale: float | None) -> SequenceBatch:
        """The batch of ``plan`` with its frames read into ``inputs: Tensor[T, B, C, H, W]`` (uint8 stored
        bytes when ``scale`` is set, else float32)."""
        t, b = self.num_tbins, len(plan)
        h, w = self.network_size
        labels: list[list[torch.Tensor]] = [[torch.zeros((0, 5)) for _ in range(b)] for _ in range(t)]
        keep = torch.zeros(b, dtype=torch.float32)
        labeled = torch.zeros((t, b), dtype=torch.bool)
        padding = torch.zeros(b, dtype=torch.bool)
        infos = []
        for col, item in enumerate(plan):
            if item.is_padding:
                padding[col] = True
                inputs[:, col].numpy().fill(0)  # numpy: no intra-op threads for a plain fill
                infos.append(VideoInfo("", 0, self.delta_t, 0, num_valid_bins=0))
                continue
            spec = self.videos[item.video]
            valid = min(t, spec.num_frames - item.start_frame)
            if scale is not None:
                raw = inputs[:valid, col].numpy()  # C-contiguous [valid, C, H, W] in the [B, T] memory
                read_uint8_into(spec, item.start_frame, raw)
                if item.aug.hflip:  # the same values as augment_tensor's flip of the converted frames
                    flip_rows(raw)
            elif item.aug.is_identity:
                read_frames_into(spec, item.start_frame, inputs[:valid, col])
            else:
                frames = read_frames(spec, item.start_frame, item.start_frame + valid, self.network_size)
                inputs[:valid, col] = augment_tensor(frames, item.aug)
            if valid < t:
                inputs[valid:, col].numpy().fill(0)
            chunk_start = spec.chunk_start(item.start_frame)
            col_labels, col_labeled = self._column_labels(item, spec, chunk_start, valid)
            for k in range(t):
                labels[k][col] = col_labels[k]
            labeled[:, col] = torch.from_numpy(col_labeled)
            keep[col] = 0.0 if item.first_chunk else 1.0
            sh, sw = spec.sensor_size
            infos.append(VideoInfo(spec.path, chunk_start, spec.delta_t, spec.duration, spec.sensor_size,
                                   (sh / h, sw / w), item.first_chunk, valid, item.aug.hflip,
                                   (item.aug.zoom, item.aug.pos_y, item.aug.pos_x), item.video,
                                   spec.bin_ends(item.start_frame, t)))
        return SequenceBatch(inputs, labels, keep, labeled, infos, padding, 1.0 if scale is None else scale)


def flip_rows(frames: np.ndarray) -> None:
    """Reverse the last axis of the C-contiguous ``frames: ndarray[..., W]`` uint8 in place (OpenCV's
    row flip: 20x faster than numpy's reversed-stride copy, which also needs a temporary)."""
    import cv2

    rows = frames.reshape(-1, frames.shape[-1])  # a view: frames is contiguous
    cv2.flip(rows, 1, dst=rows)


def _new_tensor(shape: tuple[int, ...], dtype: torch.dtype, *, shared: bool) -> torch.Tensor:
    """An uninitialised contiguous tensor: in a DataLoader worker (``shared``), in one of the worker's
    reused shared-memory buffers (passed to the main process as a file descriptor, not copied; see
    :mod:`evdet.data.shared_memory`), else from numpy's allocator (fewer page faults than torch's for large
    short-lived buffers)."""
    if shared:
        return shared_tensor(shape, dtype)
    return torch.from_numpy(np.empty(shape, dtype=np.uint8 if dtype == torch.uint8 else np.float32))


class EpochSampler(Sampler):
    """Yields the batch plans of one epoch (for one DDP rank), in a fixed order.

    ``set_epoch(e)`` (called by Lightning's fit loop on the DataLoader's sampler at each epoch) makes the
    next iteration use the plan of epoch ``e``: videos reshuffled between streams and ranks, new
    augmentation and random clips, all from ``seed + e``. ``resume_at(e, k)`` makes the next iteration of
    epoch ``e`` start at its batch ``k`` (a run resumed from a mid-epoch checkpoint); ``len`` stays the
    epoch's.
    """

    def __init__(self, num_frames: Sequence[int], num_tbins: int, batch_size: int, *, mode: str = "stream",
                 seed: int = 0, shuffle: bool = False, rank: int = 0, world_size: int = 1,
                 max_consecutive: int | None = None, labeled_frames: Sequence[np.ndarray] | None = None,
                 augmentation: AugmentationParams | None = None, epoch: int = 0):
        self.kwargs = dict(num_tbins=num_tbins, batch_size=batch_size, mode=mode, seed=seed, shuffle=shuffle,
                           rank=rank, world_size=world_size, max_consecutive=max_consecutive,
                           labeled_frames=labeled_frames, augmentation=augmentation)
        self.num_frames = list(num_frames)
        self.epoch = int(epoch)
        self._cache: tuple[int, list[list[ChunkItem]]] | None = None
        self._resume: tuple[int, int] | None = None  # (epoch, first batch) of the next iteration
        self.plan()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume_at(self, epoch: int, batch: int) -> None:
        """The next iteration, if it is of epoch ``epoch``, skips that epoch's first ``batch`` batches."""
        self._resume = (int(epoch), int(batch))

    def plan(self) -> list[list[ChunkItem]]:
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, plan_epoch(self.num_frames, epoch=self.epoch, **self.kwargs))
        return self._cache[1]

    def __iter__(self):
        resume, self._resume = self._resume, None
        start = resume[1] if resume is not None and resume[0] == self.epoch else 0
        return iter(self.plan()[start:])

    def __len__(self) -> int:
        return len(self.plan())
