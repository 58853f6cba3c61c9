"""Video sources: HDF5 tensor files (fast path, SPEC 2.7), RVT's preprocessed sequence folders (SPEC 2.8,
:mod:`evdet.data.rvt`) and raw recordings (.dat/.raw converted on the fly with an ``evdet.preprocessing``
representation), all giving float32 ``[n, C, H, W]`` frames for a range of bins, resized to the network
size..

One preprocessing, whatever the source (:func:`read_frames`): the representation is computed at the
*stored size* (the sensor size ``>> d``: for HDF5 files the ``d`` they were converted with, for raw
recordings 0, i.e. the full sensor resolution, exactly as ``evdet-generate-hdf5`` does by default), then
area-resized to the network size (:func:`resize_frames`). A raw recording and its HDF5 conversion
therefore give bit-identical network inputs (float32 storage; uint8 storage rounds to 1/255); RVT folders
are delivered as stored."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from evdet.io.event_h5 import is_event_h5
from evdet.io.files import require_regular_file
from evdet.io.layout import H5_SUFFIXES, RECORDING_SUFFIXES
from evdet.io.reader import DEFAULT_PIECE_EVENTS

DEFAULT_RAW_DELTA_T = 50_000
DEFAULT_RAW_REPRESENTATION = "histo"
H5_KINDS = ("h5", "rvt")
"""Video kinds whose frames are the ``data`` dataset of an HDF5 file (``VideoSpec.tensor_file``)."""


@dataclass(frozen=True)
class VideoSpec:
    """What the loader needs to know about one video (picklable; items reopen the file).

    Attributes:
        path: the file (an RVT sequence: its folder). kind: ``"h5"``, ``"rvt"`` or ``"raw"``.
        num_frames: number of bins of ``delta_t`` µs. start_ts: time of the start of frame 0 (µs).
        channels: C. sensor_size, stored_size: ``(height, width)`` of the sensor (label pixels) and of the
            stored/computed frames (``sensor >> d`` for HDF5 files written downsampled).
        representation, params: event-to-tensor representation and its parameters.
        uint8_scale: HDF5 values stored as uint8 are divided by this (None: stored as floats).
        tensor_path: the HDF5 file holding ``data`` when it is not ``path`` (kind ``"rvt"``).
        bin_end_ts: int64 ``[num_frames]`` end time (µs) of every frame when frames are not contiguous
            (kind ``"rvt"``: RVT's ``timestamps_us.npy``); None: frame k ends at
            ``start_ts + (k + 1) * delta_t``.
    """

    path: str
    kind: str
    num_frames: int
    start_ts: int
    delta_t: int
    channels: int
    sensor_size: tuple[int, int]
    stored_size: tuple[int, int]
    representation: str
    params: Mapping[str, Any] = field(default_factory=dict)
    uint8_scale: float | None = None
    tensor_path: str | None = None
    bin_end_ts: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def duration(self) -> int:
        """Video duration (µs): ``num_frames * delta_t``; with stored bin end times, from the start of the
        first bin to the end of the last."""
        if self.bin_end_ts is not None and len(self.bin_end_ts):
            return int(self.bin_end_ts[-1]) - int(self.start_ts)
        return self.num_frames * self.delta_t

    @property
    def tensor_file(self) -> str:
        """The HDF5 file holding the frames (``tensor_path``, else ``path``)."""
        return self.tensor_path or self.path

    def chunk_start(self, start_frame: int) -> int:
        """Start time (µs) of frame ``start_frame`` (its end minus ``delta_t`` for stored end times)."""
        if self.bin_end_ts is not None and start_frame < len(self.bin_end_ts):
            return int(self.bin_end_ts[start_frame]) - int(self.delta_t)
        return int(self.start_ts) + int(start_frame) * int(self.delta_t)

    def bin_end(self, frame: int) -> int:
        """End time (µs) of frame ``frame``: the stored one, else ``start_ts + (frame + 1) * delta_t``."""
        if self.bin_end_ts is not None:
            return self.bin_ends(frame, 1)[0]
        return int(self.start_ts) + (int(frame) + 1) * int(self.delta_t)

    def frame_ending_at(self, t_end: int) -> int | None:
        """Index of the frame that ends at ``t_end`` (µs), or None when no frame of the video does."""
        if self.bin_end_ts is not None:
            k = int(np.searchsorted(self.bin_end_ts, int(t_end)))
            return k if k < len(self.bin_end_ts) and int(self.bin_end_ts[k]) == int(t_end) else None
        k, rest = divmod(int(t_end) - int(self.start_ts), int(self.delta_t))
        return k - 1 if rest == 0 and 1 <= k <= self.num_frames else None

    def bin_ends(self, start_frame: int, count: int) -> tuple[int, ...] | None:
        """Stored end times (µs) of frames ``start_frame .. start_frame + count - 1`` (frames past the video
        continue ``delta_t`` apart), or None when frames are contiguous."""
        if self.bin_end_ts is None:
            return None
        ends = [int(v) for v in self.bin_end_ts[start_frame:start_frame + count]]
        last = ends[-1] if ends else self.chunk_start(start_frame)
        ends += [last + (i + 1) * int(self.delta_t) for i in range(count - len(ends))]
        return tuple(ends)


def _h5_reader_class():
    from evdet.io.h5 import H5TensorReader
    return H5TensorReader


def decode_frames(raw: np.ndarray, uint8_scale: float | None, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`evdet.io.h5.decode_frames` (imported when first used: h5py loads lazily)."""
    from evdet.io.h5 import decode_frames as decode
    return decode(raw, uint8_scale, out)


def _event_reader(path: str):
    from evdet.io.read import open_events
    return open_events(path)


def probe_video(path: str | os.PathLike, *, delta_t: int | None = None, representation: str | None = None,
                params: Mapping[str, Any] | None = None) -> VideoSpec:
    """Read the metadata of a recording (HDF5 attributes, or raw header and last timestamp).

    Raw recordings (``.dat``, ``.raw``, and ``.h5`` files that hold events: RVT's mirror, DSEC) start at
    the reader's ``time_origin`` (0, DSEC's ``t_offset``: frames aligned on the recording clock, like the
    HDF5 converter) and last up to their last event. An ``.h5`` file is an evdet tensor file unless its
    content is an event file.

    An RVT sequence folder (``<sequence>/event_representations_v2/...``) is read by
    :func:`evdet.data.rvt.probe_rvt_sequence`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unknown suffix; HDF5 attributes missing or shape mismatch (from the reader); a
            ``delta_t`` different from the one stored in an HDF5 file; a bad RVT sequence (names the file).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"recording not found: {path}")
    if path.is_dir():
        from evdet.data.rvt import probe_rvt_sequence

        return probe_rvt_sequence(path, delta_t=delta_t)
    require_regular_file(path, "recording")
    name = path.name.lower()
    if name.endswith(H5_SUFFIXES) and not is_event_h5(path):
        with _h5_reader_class()(path) as reader:
            if delta_t is not None and int(delta_t) != int(reader.delta_t):
                raise ValueError(f"{path}: stored delta_t = {reader.delta_t} µs but the config asks "
                                 f"{delta_t} µs (regenerate the HDF5 files or set delta_t=None)")
            c, h, w = (int(v) for v in reader.shape)
            return VideoSpec(str(path), "h5", int(reader.num_frames), int(reader.start_ts),
                             int(reader.delta_t), c, tuple(int(v) for v in reader.sensor_size), (h, w),
                             str(reader.representation), dict(reader.params), uint8_scale=reader.scale)
    if name.endswith(RECORDING_SUFFIXES):  # .dat / .raw, and event HDF5 files (RVT mirror, DSEC)
        from evdet.preprocessing import get_representation
        rep_name = representation or DEFAULT_RAW_REPRESENTATION
        rep = get_representation(rep_name)
        resolved = rep.resolve_params(params)
        dt = int(delta_t or DEFAULT_RAW_DELTA_T)
        with _event_reader(str(path)) as reader:
            origin = int(reader.time_origin)
            last = int(reader.time_range()[1])
            size = (int(reader.height), int(reader.width))
        if min(size) <= 0:  # an empty file without a header: no geometry to build frames of
            raise ValueError(f"{path}: no sensor size (an empty recording without a header, "
                             f"{path.stat().st_size} bytes)")
        return VideoSpec(str(path), "raw", max(last - origin, 0) // dt + 1, origin, dt,
                         rep.channels(**resolved), size, size, rep_name, resolved)
    raise ValueError(f"{path}: not a recording (expected one of {list(RECORDING_SUFFIXES)} or an RVT "
                     f"sequence folder)")


_H5_FILES: dict[str, Any] = {}  # path -> (h5py.File, its "data" dataset), least recently used first
_H5_PID = [0]
_H5_MAX_OPEN = 128


def _h5_data(path: str):
    """The ``data`` dataset of an HDF5 file, kept open per process (h5py handles must not cross a fork;
    at most 128 files open, least recently used closed first). Attributes were validated by
    ``H5TensorReader`` in :func:`probe_video`."""
    import h5py

    if _H5_PID[0] != os.getpid():
        _H5_FILES.clear()
        _H5_PID[0] = os.getpid()
    entry = _H5_FILES.pop(path, None)
    if entry is None:
        if len(_H5_FILES) >= _H5_MAX_OPEN:
            _H5_FILES.pop(next(iter(_H5_FILES)))[0].close()
        # no chunk cache: every chunk is read once per epoch (a cache would only add a copy, and make
        # benchmarks on small datasets look faster than a real epoch)
        f = h5py.File(path, "r", rdcc_nbytes=0)
        entry = (f, f["data"])
    _H5_FILES[path] = entry  # re-inserted: most recently used last
    return entry[1]


def _tensor_data(spec: VideoSpec):
    """The ``data`` dataset of an HDF5-backed video (RVT's Blosc files: the filter is registered first, also
    in freshly spawned worker processes)."""
    if spec.kind == "rvt":
        from evdet.preprocessing.rvt_format import require_blosc

        require_blosc(spec.tensor_file)
    return _h5_data(spec.tensor_file)


def read_frames_into(spec: VideoSpec, start: int, out: torch.Tensor) -> None:
    """Write frames ``start .. start + len(out) - 1`` into ``out: Tensor[n, C, h, w]`` float32 (may be a
    strided view of a batch). HDF5 files at the network size take the fast path: one uint8 read,
    converted and scaled straight into ``out``. Same values as :func:`read_frames`."""
    stop = start + out.shape[0]
    fast = spec.kind in H5_KINDS and tuple(out.shape[-2:]) == spec.stored_size
    if fast and 0 <= start < stop <= spec.num_frames:
        # out.numpy() shares memory; numpy: single-threaded, no OpenMP spin under contention
        decode_frames(_tensor_data(spec)[start:stop], spec.uint8_scale, out=out.numpy())
        return
    out.copy_(read_frames(spec, start, stop, tuple(out.shape[-2:])))


def stored_as_uint8(spec: VideoSpec, network_size: tuple[int, int]) -> bool:
    """True when frames of ``spec`` at ``network_size`` are exactly ``float32(stored uint8) / uint8_scale``
    (HDF5, uint8 storage, no resize), so that :func:`read_uint8_into` can hand the stored bytes over."""
    return (spec.kind in H5_KINDS and spec.uint8_scale is not None and tuple(network_size) == spec.stored_size
            and _tensor_data(spec).dtype == np.uint8)


def read_uint8_into(spec: VideoSpec, start: int, out: np.ndarray) -> None:
    """Read the stored uint8 frames ``start .. start + len(out) - 1`` straight into
    ``out: ndarray[n, C, H, W]`` uint8, C-contiguous (one h5py read, no intermediate array). Only for
    videos where :func:`stored_as_uint8` holds.

    Raises:
        ValueError: the range is outside the video.
    """
    stop = start + out.shape[0]
    if not 0 <= start < stop <= spec.num_frames:
        raise ValueError(f"{spec.path}: frames [{start}, {stop}) outside the video of "
                         f"{spec.num_frames} frames")
    _tensor_data(spec).read_direct(out, np.s_[start:stop])


_EVENT_READERS: dict[str, Any] = {}
_EVENT_PID = [0]


def _cached_event_reader(path: str):
    """An open event reader for this process (at most 8), so that a stream of consecutive chunks reads
    the file once instead of seeking from the start for every chunk."""
    if _EVENT_PID[0] != os.getpid():
        _EVENT_READERS.clear()
        _EVENT_PID[0] = os.getpid()
    reader = _EVENT_READERS.get(path)
    if reader is None:
        if len(_EVENT_READERS) >= 8:
            old = _EVENT_READERS.pop(next(iter(_EVENT_READERS)))
            if hasattr(old, "close"):
                old.close()
        reader = _EVENT_READERS[path] = _event_reader(path)
    return reader


def power_of_two_factor(src: tuple[int, int], dst: tuple[int, int]) -> int | None:
    """``d`` with ``dst == (src[0] >> d, src[1] >> d)`` and ``src`` divisible by ``2**d``, else None."""
    for d in range(0, 8):
        if src[0] % (1 << d) == 0 and src[1] % (1 << d) == 0 and (src[0] >> d, src[1] >> d) == tuple(dst):
            return d
    return None


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area resize of ``frames: Tensor[n, C, H, W]`` to ``size = (height, width)`` (identity if equal)."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    return F.interpolate(frames, size=tuple(size), mode="area")  # [n, C, h, w]


def read_frames(spec: VideoSpec, start: int, stop: int, network_size: tuple[int, int],
                piece_events: int = DEFAULT_PIECE_EVENTS) -> torch.Tensor:
    """Frames ``start .. stop-1`` (clipped to the video) as ``Tensor[n, C, h, w]`` float32 at the
    network size ``(h, w)``: the one preprocessing of every source (module docstring): frames at the
    stored size (HDF5 values decoded by :func:`evdet.io.h5.decode_frames`; raw events turned into the
    representation at ``sensor >> d``, read in pieces of at most ``piece_events`` events and accumulated
    by :class:`evdet.preprocessing.TensorBuilder`, so a burst of any size costs ~16 bytes x
    ``piece_events`` beyond the frames), then :func:`resize_frames`.

    Raises:
        ValueError: ``start`` outside the video.
    """
    stop = min(stop, spec.num_frames)
    if not 0 <= start < stop:
        raise ValueError(f"{spec.path}: frames [{start}, {stop}) outside the video of "
                         f"{spec.num_frames} frames")
    if spec.kind in H5_KINDS:
        frames = torch.from_numpy(decode_frames(_tensor_data(spec)[start:stop], spec.uint8_scale))
        return resize_frames(frames, network_size)
    if spec.kind == "raw":
        from evdet.preprocessing import TensorBuilder
        d = power_of_two_factor(spec.sensor_size, spec.stored_size)  # 0: raw videos are stored at sensor size
        if d is None:
            raise ValueError(f"{spec.path}: stored size {spec.stored_size} is not the sensor size "
                             f"{spec.sensor_size} divided by a power of two")
        t0 = spec.start_ts + start * spec.delta_t
        reader = _cached_event_reader(spec.path)
        if reader.current_time != t0:  # sequential chunks continue where the last one ended
            reader.seek_time(t0)
        h, w = spec.sensor_size
        builder = TensorBuilder(spec.representation, stop - start, h, w, spec.delta_t, start_ts=t0,
                                downsampling_factor=d, **dict(spec.params))
        for piece, _ in reader.load_delta_t_pieces((stop - start) * spec.delta_t, piece_events):
            builder.add(piece)
        return resize_frames(torch.from_numpy(builder.result()), network_size)
    raise ValueError(f"{spec.path}: unknown video kind {spec.kind!r}")


def num_chunks(spec: VideoSpec, num_tbins: int) -> int:
    """Chunks of ``num_tbins`` bins covering the video (the last one padded)."""
    return math.ceil(spec.num_frames / num_tbins)
