"""HDF5 event-tensor files (SPEC 2.7): a crash-safe appending writer and a lazy, picklable reader.

File layout: one dataset ``data`` of shape ``[N, C, H, W]``, ``maxshape (None, C, H, W)``, one time slice
per chunk, float32 (or uint8 with ``store_as_uint8``). Frame ``k`` holds the events with
``t`` in ``[start_ts + k·delta_t, start_ts + (k + 1)·delta_t)`` µs. Attributes on ``data``:
``events_to_tensor`` (representation name), ``delta_t`` (µs), ``event_input_width``,
``event_input_height`` (sensor size, pixels), ``shape`` (C, H, W), ``mode`` (``"delta_t"``),
``start_ts`` (µs), ``store_as_uint8``, ``uint8_scale`` (stored values are ``round(uint8_scale · x)``:
255 for values in ``[0, 1]``, 1 for counts), ``downsampling_factor``, and each representation
parameter under its own name (e.g. ``max_incr_per_pixel``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from evdet.io.atomic import AtomicTarget, CommitOnExit

_REQUIRED = ("events_to_tensor", "delta_t", "event_input_width", "event_input_height", "shape")
_RESERVED = set(_REQUIRED) | {"mode", "start_ts", "store_as_uint8", "uint8_scale", "downsampling_factor"}


class H5TensorWriter(CommitOnExit):
    """Append frames ``[n, C, H, W]`` to a new HDF5 tensor file; the file appears under ``path`` only
    when :meth:`close` is called after a successful write (written under a temporary name and renamed,
    :mod:`evdet.io.atomic`).

    Args:
        path: final file name (``.h5``); an existing file there is replaced on ``close()``.
        shape: ``(C, H, W)`` of one frame (``H, W`` after downsampling).
        representation: representation name (attribute ``events_to_tensor``).
        delta_t: frame length (µs).
        sensor_size: ``(height, width)`` of the sensor (pixels, before downsampling).
        start_ts: time of the start of frame 0 (µs).
        params: representation parameters, each stored as an attribute (numbers, bools, strings).
        downsampling_factor: ``d`` used to build the frames.
        compression: ``"gzip"`` (default), ``"lzf"`` or ``None``.
        store_as_uint8: store ``round(uint8_scale · x)`` as uint8.
        uint8_scale: 255 for values in ``[0, 1]``, 1 for counts.
        source: ``(file name, size in bytes)`` of the recording the frames come from, stored as the file
            attributes ``source_recording`` and ``source_bytes`` (the converter's resume test); None: not
            stored.

    Use as a context manager: on an exception inside the ``with`` block the temporary file is removed
    and nothing appears under ``path``.

    Raises:
        ValueError: bad shape, ``delta_t``, compression, a parameter name clashing with a reserved
            attribute; on :meth:`write`, frames of the wrong shape or values that do not fit uint8.
    """

    def __init__(self, path: str | os.PathLike, shape: tuple[int, int, int], *, representation: str,
                 delta_t: int, sensor_size: tuple[int, int], start_ts: int = 0,
                 params: dict[str, Any] | None = None, downsampling_factor: int = 0,
                 compression: str | None = "gzip", store_as_uint8: bool = False, uint8_scale: float = 255.0,
                 source: tuple[str, int] | None = None):
        self.path = Path(path)
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"{self.path}: frame shape must be (C, H, W) with positive sizes, got {shape}")
        if int(delta_t) != delta_t or delta_t <= 0:
            raise ValueError(f"{self.path}: delta_t must be a positive integer (µs), got {delta_t!r}")
        if compression not in ("gzip", "lzf", None):
            raise ValueError(f"{self.path}: compression must be 'gzip', 'lzf' or None, got {compression!r}")
        params = dict(params or {})
        clash = sorted(set(params) & _RESERVED)
        if clash:
            raise ValueError(f"{self.path}: parameter name(s) {clash} clash with reserved attributes")
        self.shape = shape
        self.store_as_uint8 = bool(store_as_uint8)
        self.uint8_scale = float(uint8_scale)
        self.num_frames = 0
        self._target = AtomicTarget(self.path)
        self._file: h5py.File | None = h5py.File(self._target.tmp, "w")
        try:
            self._data = self._file.create_dataset(
                "data", shape=(0, *shape), maxshape=(None, *shape), chunks=(1, *shape),
                dtype=np.uint8 if self.store_as_uint8 else np.float32, compression=compression)
            attrs = self._data.attrs
            attrs["events_to_tensor"] = str(representation)
            attrs["delta_t"] = int(delta_t)
            attrs["event_input_height"] = int(sensor_size[0])
            attrs["event_input_width"] = int(sensor_size[1])
            attrs["shape"] = np.asarray(shape, dtype=np.int64)
            attrs["mode"] = "delta_t"
            attrs["start_ts"] = int(start_ts)
            attrs["store_as_uint8"] = self.store_as_uint8
            attrs["uint8_scale"] = self.uint8_scale
            attrs["downsampling_factor"] = int(downsampling_factor)
            for key, value in params.items():
                attrs[key] = value
            if source is not None:
                self._file.attrs["source_recording"] = str(source[0])
                self._file.attrs["source_bytes"] = int(source[1])
        except BaseException:
            self.abort()
            raise

    def write(self, frames: np.ndarray) -> None:
        """Append ``frames``: ``ndarray[n, C, H, W]`` (or one ``[C, H, W]`` frame), float values.

        Raises:
            ValueError: wrong frame shape; with ``store_as_uint8``, values outside ``[0, 255 / uint8_scale]``.
            RuntimeError: the writer is closed.
        """
        if self._file is None:
            raise RuntimeError(f"{self.path}: writer is closed")
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.shape[1:] != self.shape:
            raise ValueError(f"{self.path}: frames have shape {frames.shape[1:]}, expected {self.shape}")
        if frames.shape[0] == 0:
            return
        if self.store_as_uint8:
            scaled = np.rint(frames.astype(np.float32) * np.float32(self.uint8_scale))
            low, high = float(scaled.min()), float(scaled.max())
            if low < 0 or high > 255:
                lo, hi = low / self.uint8_scale, high / self.uint8_scale
                raise ValueError(f"{self.path}: store_as_uint8 needs values in "
                                 f"[0, {255 / self.uint8_scale}], got [{lo}, {hi}]")
            frames = scaled.astype(np.uint8)
        else:
            frames = frames.astype(np.float32, copy=False)
        n = self.num_frames
        self._data.resize(n + frames.shape[0], axis=0)
        self._data[n:] = frames
        self.num_frames = n + frames.shape[0]

    def resize(self, num_frames: int) -> None:
        """Set the number of frames: truncate, or pad with zero frames."""
        if self._file is None:
            raise RuntimeError(f"{self.path}: writer is closed")
        self._data.resize(int(num_frames), axis=0)
        self.num_frames = int(num_frames)

    def close(self) -> Path:
        """Finish the file and rename it to ``path``; returns ``path``."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._target.commit()
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file; nothing appears under ``path``."""
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None
                self._target.abort()



def _attr(attrs: Any, name: str, path: Path) -> Any:
    if name not in attrs:
        raise ValueError(f"{path}: dataset 'data' lacks attribute '{name}' (not an evdet HDF5 tensor file?)")
    value = attrs[name]
    return value.decode() if isinstance(value, bytes) else value


def _int_attr(attrs: Any, name: str, path: Path, default: int | None = None) -> int:
    """An attribute that must hold a whole number (``delta_t``, sizes, ``start_ts``): ``50000`` or
    ``50000.0`` are fine, ``50000.5``, ``nan``, ``True`` or text are an error naming the file."""
    if name not in attrs and default is not None:
        return default
    value = _plain(_attr(attrs, name, path))
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise ValueError(f"{path}: attribute '{name}' = {value!r} is not a whole number")
    return int(value)


def decode_frames(raw: np.ndarray, uint8_scale: float | None, out: np.ndarray | None = None) -> np.ndarray:
    """Stored frames as ``float32 ndarray[n, C, H, W]``: uint8 storage divided by ``uint8_scale``
    (``float32(x) / float32(scale)``), other dtypes cast. The one conversion of every HDF5 reading path
    (:class:`H5TensorReader`, the training loader). ``out``: write there instead (same shape, float32).

    Raises:
        ValueError: uint8 values without a scale (``uint8_scale`` None).
    """
    if raw.dtype == np.uint8:
        if uint8_scale is None:
            raise ValueError("uint8 frames need their uint8_scale")
        return np.divide(raw, np.float32(uint8_scale), out=out, dtype=np.float32)
    if out is None:
        return np.ascontiguousarray(raw, dtype=np.float32)
    np.copyto(out, raw, casting="unsafe")
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class H5TensorReader:
    """Read frames of an HDF5 tensor file (SPEC 2.7).

    Attributes are read when the object is created (the file is opened, read and closed); the frame
    data is opened lazily on the first :meth:`read` and kept open until :meth:`close`. The object
    pickles without its h5py handle, so it can be sent to DataLoader worker processes.

    Attributes:
        path: the file.
        num_frames: ``N``.
        shape: ``(C, H, W)`` of one frame.
        delta_t: frame length (µs).
        start_ts: start of frame 0 (µs); frame ``k`` covers
            ``[start_ts + k·delta_t, start_ts + (k+1)·delta_t)``.
        representation: name of the representation.
        params: representation parameters (dict).
        sensor_size: ``(height, width)`` of the sensor (pixels).
        downsampling_factor: ``d``.
        store_as_uint8: values are stored as uint8 (read back divided by ``uint8_scale``).
        uint8_scale: 255 for values in ``[0, 1]``, 1 for counts.
        dtype: numpy dtype of the stored data.
        source: ``(file name, size in bytes)`` of the recording converted, None when not stored.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not HDF5, no ``data`` dataset, a required attribute missing, the data shape does not
            match the ``shape`` attribute, ``delta_t``/sizes/``start_ts`` not whole numbers, or uint8 data
            whose ``store_as_uint8`` attribute says otherwise (or the reverse); the message names the
            file and attribute.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"HDF5 tensor file not found: {self.path}")
        self._file: h5py.File | None = None
        try:
            f = h5py.File(self.path, "r")
        except OSError as exc:
            raise ValueError(f"{self.path}: not a readable HDF5 file ({exc})") from exc
        with f:
            if "data" not in f or not isinstance(f["data"], h5py.Dataset):
                raise ValueError(f"{self.path}: no dataset 'data'")
            data = f["data"]
            attrs = data.attrs
            self.source = None
            if "source_recording" in f.attrs and "source_bytes" in f.attrs:
                self.source = (str(_plain(f.attrs["source_recording"])), int(f.attrs["source_bytes"]))
            self.representation = str(_attr(attrs, "events_to_tensor", self.path))
            self.delta_t = _int_attr(attrs, "delta_t", self.path)
            self.sensor_size = (_int_attr(attrs, "event_input_height", self.path),
                                _int_attr(attrs, "event_input_width", self.path))
            shape = tuple(int(s) for s in np.atleast_1d(_attr(attrs, "shape", self.path)))
            if len(shape) != 3 or data.ndim != 4 or tuple(data.shape[1:]) != shape:
                raise ValueError(f"{self.path}: attribute 'shape' = {shape} does not match dataset 'data' "
                                 f"of shape {data.shape} (expected [N, C, H, W])")
            mode = _plain(attrs.get("mode", "delta_t"))
            if mode != "delta_t":
                raise ValueError(f"{self.path}: attribute 'mode' = {mode!r}; only 'delta_t' is supported")
            if self.delta_t <= 0:
                raise ValueError(f"{self.path}: attribute 'delta_t' = {self.delta_t} must be > 0")
            self.shape = shape
            self.num_frames = int(data.shape[0])
            self.start_ts = _int_attr(attrs, "start_ts", self.path, default=0)
            self.downsampling_factor = _int_attr(attrs, "downsampling_factor", self.path, default=0)
            self.dtype = data.dtype
            is_uint8 = data.dtype == np.uint8
            self.store_as_uint8 = bool(_plain(attrs.get("store_as_uint8", is_uint8)))
            if self.store_as_uint8 != is_uint8:
                raise ValueError(f"{self.path}: dataset 'data' holds {data.dtype} values but attribute "
                                 f"'store_as_uint8' = {_plain(attrs['store_as_uint8'])!r}: the file "
                                 "contradicts itself (convert the recording again)")
            self.uint8_scale = float(_plain(attrs.get("uint8_scale", 255.0)))
            if is_uint8 and not (np.isfinite(self.uint8_scale) and self.uint8_scale > 0):
                raise ValueError(f"{self.path}: attribute 'uint8_scale' = {self.uint8_scale!r} must be a "
                                 "finite number > 0")
            self.params = {k: _plain(v) for k, v in attrs.items() if k not in _RESERVED}

    def __len__(self) -> int:
        return self.num_frames

    def _dataset(self) -> h5py.Dataset:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file["data"]

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``start`` to ``stop`` (exclusive) as ``float32 ndarray[n, C, H, W]``.

        Indices are clamped to ``[0, num_frames]`` (so a range past the end returns fewer frames);
        uint8 storage is divided by ``uint8_scale``.

        Raises:
            ValueError: negative ``start`` or ``stop < start``.
        """
        stop = self.num_frames if stop is None else int(stop)
        start = int(start)
        if start < 0 or stop < start:
            raise ValueError(f"{self.path}: bad frame range [{start}, {stop})")
        start, stop = min(start, self.num_frames), min(stop, self.num_frames)
        return decode_frames(self._dataset()[start:stop], self.scale)

    @property
    def scale(self) -> float | None:
        """Divisor of the stored values (``uint8_scale`` for uint8 storage, None for float storage)."""
        return self.uint8_scale if self.store_as_uint8 else None

    def close(self) -> None:
        """Close the h5py handle (reopened by the next :meth:`read`)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> H5TensorReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
