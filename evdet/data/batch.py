"""``SequenceBatch``: one step of B streams over T time bins (SPEC 4), and ``VideoInfo`` per column."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from evdet.data.shared_memory import Lease, free_when_dropped, lease_of


@dataclass(frozen=True)
class VideoInfo:
    """Where a column of a batch comes from.

    Attributes:
        path: the recording or HDF5 file; ``""`` for a padding column.
        start_ts: start of the chunk (µs, recording clock).
        delta_t: bin length (µs).
        duration: duration of the whole video (µs): number of frames × ``delta_t``.
        sensor_size: ``(height, width)`` of the sensor (pixels of the label files).
        scale: ``(sy, sx)``: multiply network-pixel y/x by these to get sensor pixels (before any
            augmentation; augmentation is undone with ``hflip`` / ``zoom``).
        first_chunk: this chunk starts a video (or a sub-sequence): the state was reset.
        num_valid_bins: bins holding data; the rest of the chunk (the tail of a video) is zero padding.
        hflip: the column was flipped horizontally (training augmentation).
        zoom: ``(z, y0, x0)``: zoom factor (1 = none, > 1 zoom in, < 1 zoom out) and the network-pixel
            offset of the zoomed window; ``(1.0, 0.0, 0.0)`` when not zoomed.
        video_index: index of the video in its split (-1 for padding).
        bin_end_ts: end time (µs) of each bin of the chunk when the bins are not contiguous (datasets that
            store a time stamp per bin, e.g. RVT's preprocessed folders); None: bins are contiguous.

    Bin k ends at :meth:`bin_end` (``start_ts + (k + 1) * delta_t`` for contiguous bins): labels,
    detections and displays of bin k are stamped with that time.
    """

    path: str
    start_ts: int
    delta_t: int
    duration: int
    sensor_size: tuple[int, int] = (0, 0)
    scale: tuple[float, float] = (1.0, 1.0)
    first_chunk: bool = False
    num_valid_bins: int = 0
    hflip: bool = False
    zoom: tuple[float, float, float] = (1.0, 0.0, 0.0)
    video_index: int = -1
    bin_end_ts: tuple[int, ...] | None = None

    def bin_end(self, k: int) -> int:
        """End time (µs) of bin ``k`` of the chunk."""
        if self.bin_end_ts is not None:
            return int(self.bin_end_ts[k])
        return int(self.start_ts) + (int(k) + 1) * int(self.delta_t)


@dataclass
class SequenceBatch:
    """A batch of B stream columns over T bins.

    Attributes:
        inputs: ``Tensor[T, B, C, H, W]`` at network resolution: float32, or, for videos stored as uint8
            (see ``DataConfig.uint8_inputs``), the stored bytes: uint8 whose values are
            ``inputs / input_scale`` (a quarter of the bytes to load, send between processes and copy to
            the accelerator; a uint8 tensor may be a transposed view of ``[B, T, C, H, W]`` memory).
            :meth:`float_inputs` and :meth:`to` give the float32 values.
        labels: T × B list of ``Tensor[n, 5]`` float32 rows ``(x1, y1, x2, y2, class_idx)``: xyxy in
            network pixels (0 ≤ x1 < x2 ≤ W), ``class_idx`` in 0..C−1 (order of ``DataConfig.classes``).
        mask_keep_memory: ``Tensor[B]`` float32: 0 at the first chunk of a video and for padding
            columns (reset the recurrent state), else 1.
        frame_is_labeled: ``Tensor[T, B]`` bool: the bin has an annotation instant (or an interpolated one).
        video_infos: B × :class:`VideoInfo`.
        padding: ``Tensor[B]`` bool: the column is padding (its stream ran out); all-zero, unlabelled.
        input_scale: divisor of uint8 ``inputs`` (1.0 for float32 inputs).
    """

    inputs: Tensor
    labels: list[list[Tensor]]
    mask_keep_memory: Tensor
    frame_is_labeled: Tensor
    video_infos: list[VideoInfo]
    padding: Tensor
    input_scale: float = 1.0

    @property
    def num_tbins(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.inputs.shape[1])

    def float_inputs(self) -> Tensor:
        """``Tensor[T, B, C, H, W]`` float32 (contiguous) on the device of ``inputs``: ``inputs`` itself
        when float32, else ``float32(inputs) / input_scale`` in one pass (bit-identical on CPU and GPU)."""
        if self.inputs.dtype == torch.float32:
            return self.inputs
        if self.inputs.dtype != torch.uint8:
            raise TypeError(f"SequenceBatch.inputs must be float32 or uint8, got {self.inputs.dtype}")
        if self.inputs.device.type == "cpu":  # numpy: 3x faster than torch's CPU uint8 division
            out = np.empty(tuple(self.inputs.shape), dtype=np.float32)
            np.divide(self.inputs.numpy(), np.float32(self.input_scale), out=out, dtype=np.float32)
            return torch.from_numpy(out)
        out = torch.empty(self.inputs.shape, dtype=torch.float32, device=self.inputs.device)
        return torch.div(self.inputs, self.input_scale, out=out)

    def __reduce__(self):
        """Compact pickling (DataLoader workers): labels travel as one packed array and the small tensors
        as numpy arrays, so only ``inputs`` needs shared memory (hundreds of tiny shared-memory tensors
        per batch would cost more than reading the data). Unpickled labels are views of one tensor. Inputs
        in a worker's reused buffer carry its lease: the receiving process frees the buffer for the worker
        once it drops the inputs (:mod:`evdet.data.shared_memory`)."""
        tensors = [self.inputs, self.mask_keep_memory, self.frame_is_labeled, self.padding]
        flat = [lab for row in self.labels for lab in row]
        if any(x.device.type != "cpu" for x in tensors + flat):
            return (SequenceBatch, (self.inputs, self.labels, self.mask_keep_memory, self.frame_is_labeled,
                                    self.video_infos, self.padding, self.input_scale))
        counts = [int(x.shape[0]) for x in flat]
        packed = torch.cat(flat).numpy() if flat else np.zeros((0, 5), dtype=np.float32)
        return (_rebuild_batch, (self.inputs, packed, counts, len(self.labels), self.mask_keep_memory.numpy(),
                                 self.frame_is_labeled.numpy(), self.video_infos, self.padding.numpy(),
                                 self.input_scale, lease_of(self.inputs)))

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SequenceBatch:
        """A copy with every tensor (labels included) on ``device`` and float32 inputs: uint8 inputs are
        converted after the transfer (on the accelerator, with a quarter of the bytes to copy)."""
        moved = replace(
            self,
            inputs=self.inputs.to(device, non_blocking=non_blocking),
            labels=[[b.to(device, non_blocking=non_blocking) for b in row] for row in self.labels],
            mask_keep_memory=self.mask_keep_memory.to(device, non_blocking=non_blocking),
            frame_is_labeled=self.frame_is_labeled.to(device, non_blocking=non_blocking),
            padding=self.padding.to(device, non_blocking=non_blocking),
        )
        return replace(moved, inputs=moved.float_inputs(), input_scale=1.0)

    def pin_memory(self) -> SequenceBatch:
        """A copy in page-locked memory (called by ``DataLoader(pin_memory=True)``); inputs keep their
        dtype."""
        return replace(
            self,
            inputs=self.inputs.pin_memory(),
            labels=[[b.pin_memory() for b in row] for row in self.labels],
            mask_keep_memory=self.mask_keep_memory.pin_memory(),
            frame_is_labeled=self.frame_is_labeled.pin_memory(),
            padding=self.padding.pin_memory(),
        )


def _rebuild_batch(inputs: Tensor, packed: np.ndarray, counts: list[int], num_tbins: int,
                   keep: np.ndarray, labeled: np.ndarray, infos: list[VideoInfo], padding: np.ndarray,
                   input_scale: float, lease: Lease | None = None) -> SequenceBatch:
    if lease is not None:
        free_when_dropped(inputs, lease)
    parts = torch.from_numpy(packed).split(counts) if counts else ()
    width = len(counts) // num_tbins if num_tbins else 0
    labels = [list(parts[k * width:(k + 1) * width]) for k in range(num_tbins)]
    return SequenceBatch(inputs, labels, torch.from_numpy(keep), torch.from_numpy(labeled), infos,
                         torch.from_numpy(padding), input_scale)


def empty_labels(num_tbins: int, batch_size: int) -> list[list[Tensor]]:
    """T × B lists of empty ``Tensor[0, 5]``."""
    return [[torch.zeros((0, 5), dtype=torch.float32) for _ in range(batch_size)] for _ in range(num_tbins)]
