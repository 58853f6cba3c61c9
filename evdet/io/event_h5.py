"""Event HDF5 files (SPEC 2.8): RVT's download mirror of Gen1 / 1Mpx and DSEC's ``events.h5``.

Both layouts keep the events as four 1-D datasets ``events/{x, y, p, t}`` (any integer dtypes; ``p``
either 0/1 or -1/+1, ``p > 0`` is ON):

- RVT mirror (``<name>_td.dat.h5`` for Gen1, ``<name>_td.h5`` for 1Mpx): ``t`` in µs, scalars
  ``events/height``, ``events/width`` (and ``events/divider``), Blosc-compressed (HDF5 filter 32001,
  registered by :mod:`hdf5plugin`).
- DSEC (``events.h5``): ``t`` in µs relative to the scalar ``t_offset`` (µs, added to every ``t``), and
  ``ms_to_idx[m]``, the index of the first event with ``t >= 1000·m``, used to seek without searching.

:class:`EventH5Reader` streams these files by slices: a time seek is a binary search on ``t`` that reads
a few elements (or ``ms_to_idx``), a window reads only its own rows, so nothing reads the whole file
except :meth:`EventH5Reader.load_all`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from evdet.io.blosc_chunks import blosc_chunks, read_threads
from evdet.io.dtypes import empty_events
from evdet.io.header import Header, checked_geometry, resolve_geometry
from evdet.io.reader import IndexedEventReader, sort_events_with_warning

DSEC_EVENTS_NAME = "events.h5"
"""File name of every DSEC event file: ``<sequence>/events/left/events.h5`` (labels in
``<sequence>/object_detections/left/tracks.npy``) or, flattened, ``<sequence>/events.h5`` (labels in
``<sequence>/tracks.npy``). The recording is named after its sequence folder."""
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
"""First 8 bytes of every HDF5 file (at offset 0 when the file has no user block)."""
EVENT_FIELDS = ("x", "y", "p", "t")
_LINEAR_SEARCH = 1 << 16  # rows read at the read position before falling back to a binary search
_SLICE_SEARCH = 1 << 12  # a binary search reads the last rows in one slice
_READ_BLOCK = 1 << 18  # rows read per dataset slice
_PARALLEL_ROWS = 1 << 20  # reads of at least this many rows of Blosc datasets use several threads


def dsec_label_path(events_file: str | os.PathLike) -> tuple[str, Path] | None:
    """``(sequence name, tracks.npy path)`` of a DSEC ``events.h5`` (see ``DSEC_EVENTS_NAME``); None for
    any other file name."""
    path = Path(events_file)
    if path.name != DSEC_EVENTS_NAME:
        return None
    camera = path.parent
    if camera.parent.name == "events" and camera.name in ("left", "right"):
        sequence = camera.parent.parent
        return sequence.name, sequence / "object_detections" / camera.name / "tracks.npy"
    return camera.name, camera / "tracks.npy"


def dsec_events_file(sequence: str | os.PathLike) -> Path | None:
    """``<sequence>/events/left/events.h5`` when that file exists (a DSEC sequence folder), else None."""
    path = Path(sequence) / "events" / "left" / DSEC_EVENTS_NAME
    return path if path.is_file() else None


def has_hdf5_signature(path: str | os.PathLike) -> bool:
    """True when ``path`` starts with the HDF5 signature (content, not extension)."""
    with open(path, "rb") as f:
        return f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE


def event_h5_layout(path: str | os.PathLike) -> str | None:
    """``"dsec"``, ``"rvt"`` (an ``events`` group with ``x, y, p, t``; DSEC when ``t_offset`` or
    ``ms_to_idx`` is at the root) or None for an HDF5 file without events (e.g. an evdet tensor file)."""
    import h5py

    with h5py.File(path, "r") as f:
        group = f.get("events")
        if not isinstance(group, h5py.Group) or not all(isinstance(group.get(k), h5py.Dataset)
                                                         for k in EVENT_FIELDS):
            return None
        return "dsec" if ("t_offset" in f or "ms_to_idx" in f) else "rvt"


def is_event_h5(path: str | os.PathLike) -> bool:
    """True when ``path`` is an HDF5 file holding ``events/{x, y, p, t}`` (h5py is imported only for files
    with the HDF5 signature)."""
    return has_hdf5_signature(path) and event_h5_layout(path) is not None


class EventH5Reader(IndexedEventReader):
    """Streaming reader of an event HDF5 file (see the module docstring for the layouts).

    Attributes:
        path: the file. layout: ``"rvt"`` or ``"dsec"``.
        event_count: number of events. time_origin: ``t_offset`` (DSEC, µs) or 0: where the recording's
            clock starts (raw recordings are binned from it, :func:`evdet.data.sources.probe_video`).
        height, width: from the caller, else the file's ``events/height``/``events/width``, else
            ``max + 1`` of the coordinates (read once, on first use; ``geometry_inferred = True``;
            ``(0, 0)`` without events).
        current_time: µs; the time up to which events were returned.

    Raises (constructor):
        FileNotFoundError: no such file. ValueError: not an HDF5 file with ``events/{x, y, p, t}``,
        datasets of different lengths or not 1-D, a non-integer field, a filter that is not available
        (names the file), only one of ``height``/``width``.
    """

    def __init__(self, path: str | os.PathLike, height: int | None = None, width: int | None = None):
        import h5py
        import hdf5plugin  # noqa: F401  (registers the Blosc filter RVT's files use)

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"event file not found: {self.path}")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise ValueError(f"{self.path}: not a readable HDF5 file ({exc})") from None
        self._fd = os.open(self.path, os.O_RDONLY)  # compressed chunks are read with pread
        try:
            self._open(height, width)
        except BaseException:
            self.close()
            raise
        self.geometry_inferred = self._geometry is None
        self.reset()

    def _open(self, height: int | None, width: int | None) -> None:
        import h5py

        f = self._file
        group = f.get("events")
        if not isinstance(group, h5py.Group) or not all(isinstance(group.get(k), h5py.Dataset)
                                                         for k in EVENT_FIELDS):
            raise ValueError(f"{self.path}: HDF5 file without an 'events' group holding x, y, p, t "
                             f"datasets (an evdet tensor file is a dataset recording, not an event file)")
        self._ds = {k: group[k] for k in EVENT_FIELDS}
        lengths = {k: ds.shape for k, ds in self._ds.items()}
        if any(len(s) != 1 for s in lengths.values()) or len({s[0] for s in lengths.values()}) != 1:
            raise ValueError(f"{self.path}: events/x, y, p, t must be 1-D of one length, got {lengths}")
        for k, ds in self._ds.items():
            if ds.dtype.kind not in "iub":
                raise ValueError(f"{self.path}: events/{k} must hold integers, got dtype {ds.dtype}")
            for fid in (ds.id.get_create_plist().get_filter(i)[0]
                        for i in range(ds.id.get_create_plist().get_nfilters())):
                if not h5py.h5z.filter_avail(fid):
                    raise ValueError(f"{self.path}: events/{k} needs HDF5 filter {fid}, which is not "
                                     f"available (Blosc is 32001: pip install hdf5plugin)")
        self.event_count = int(lengths["t"][0])
        chunks = {k: blosc_chunks(ds, self._fd, str(self.path)) for k, ds in self._ds.items()}
        self._chunks = chunks if all(c is not None for c in chunks.values()) else None
        self.layout = "dsec" if ("t_offset" in f or "ms_to_idx" in f) else "rvt"
        self.time_origin = int(np.asarray(f["t_offset"][()]).reshape(-1)[0]) if "t_offset" in f else 0
        self._ms_to_idx = f["ms_to_idx"] if "ms_to_idx" in f else None
        self._geometry = resolve_geometry(Header(), height, width, str(self.path))
        if self._geometry is None and "height" in group and "width" in group:
            geometry = (int(np.asarray(group["height"][()]).reshape(-1)[0]),
                        int(np.asarray(group["width"][()]).reshape(-1)[0]))
            if min(geometry) <= 0:
                raise ValueError(f"{self.path}: events/height and events/width must be positive, got "
                                 f"{geometry[0]}x{geometry[1]}")
            self._geometry = checked_geometry(geometry, str(self.path), "in the file")

    def _infer_geometry(self) -> tuple[int, int]:
        if self._geometry is None:
            self._geometry = ((0, 0) if self.event_count == 0 else
                              (int(self._ds["y"][:].max()) + 1, int(self._ds["x"][:].max()) + 1))
        return self._geometry

    # ----------------------------------------------------------------- rows and times
    def _rows(self, start: int, stop: int, check_order: bool = False) -> tuple[np.ndarray, bool]:
        """``(events, ordered)``: the events of rows ``[start, stop)`` as ``EVENT_DTYPE ndarray[stop -
        start]`` (times absolute) and, with ``check_order``, whether no time is below its predecessor's
        (checked on the way; True without ``check_order``).

        A range of at least ``_PARALLEL_ROWS`` rows of Blosc datasets (:mod:`evdet.io.blosc_chunks`) is
        decoded without HDF5, split over :func:`~evdet.io.blosc_chunks.read_threads` threads; smaller
        ranges (windows, whose consecutive reads share chunks in HDF5's chunk cache) and other layouts
        are read through h5py. Either way the rows go through block buffers of ``_READ_BLOCK`` rows, so a
        whole-file read touches the memory of its result once instead of that of four whole-file
        temporaries as well."""
        out = empty_events(max(stop - start, 0))
        threads = read_threads() if self._chunks is not None and stop - start >= _PARALLEL_ROWS else 0
        if threads <= 1:
            return out, self._fill(out, start, stop, threads == 1, check_order)
        bounds = [start + (stop - start) * i // threads for i in range(threads + 1)]
        from concurrent.futures import ThreadPoolExecutor  # 5 ms of import that other cold reads skip

        with ThreadPoolExecutor(threads) as pool:
            jobs = [pool.submit(self._fill, out[a - start:b - start], a, b, True, check_order)
                    for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
            ordered = all([job.result() for job in jobs])
        if check_order:
            ordered = ordered and all(out["t"][b - start - 1] <= out["t"][b - start] for b in bounds[1:-1])
        return out, ordered

    def _fill(self, out: np.ndarray, start: int, stop: int, chunks: bool, check_order: bool) -> bool:
        """``out[:] = rows [start, stop)``, block by block (one thread's share of :meth:`_rows`), decoded by
        ``_chunks`` or, without ``chunks``, read through h5py. Returns, with ``check_order``, whether their
        times never decrease (checked on the contiguous blocks, cheaper than on ``out``), else True."""
        buffers: dict[str, np.ndarray] = {}
        ordered, last = True, None
        for a in range(start, stop, _READ_BLOCK):
            b = min(a + _READ_BLOCK, stop)
            block = out[a - start:b - start]
            if not chunks:
                try:
                    x, y, p, t = (self._ds[k][a:b] for k in EVENT_FIELDS)
                except OSError as exc:  # a corrupt chunk, seen by HDF5's filter
                    raise ValueError(f"{self.path}: cannot read the events of rows [{a}, {b}) "
                                     f"({exc})") from None
            else:
                for k in EVENT_FIELDS:
                    if k not in buffers:
                        buffers[k] = np.empty(min(_READ_BLOCK, stop - start), self._ds[k].dtype)
                    self._chunks[k].read(a, b, buffers[k])
                x, y, p, t = (buffers[k][:b - a] for k in EVENT_FIELDS)
            block["x"] = x
            block["y"] = y
            np.greater(p, 0, out=block["p"], casting="unsafe")
            block["t"] = t
            if self.time_origin:
                block["t"] += self.time_origin
            if check_order and ordered and t.size:
                ordered = (last is None or last <= t[0]) and not bool(np.any(t[1:] < t[:-1]))
                last = t[-1]
        return ordered

    def _times(self, start: int, stop: int) -> np.ndarray:
        """Absolute times (µs, int64) of rows ``[start, stop)``."""
        t = self._ds["t"][start:stop]
        return t.astype(np.int64) + self.time_origin if self.time_origin or t.dtype != np.int64 else t

    def _time(self, i: int) -> int:
        """Absolute time (µs) of row ``i``."""
        return int(self._ds["t"][i]) + self.time_origin

    def _search(self, t: int) -> int:
        """Index of the first event with time >= ``t`` (µs, absolute; sorted file assumed): the rows just
        after the read position first (streaming), else ``ms_to_idx`` (DSEC) or a binary search."""
        n = self.event_count
        head = self._times(self._pos, min(self._pos + _LINEAR_SEARCH, n))
        if head.size and (head[-1] >= t or self._pos + head.size == n) and (self._pos == 0 or head[0] < t):
            return self._pos + int(np.searchsorted(head, t, side="left"))
        lo, hi = 0, n
        if self._ms_to_idx is not None and self._ms_to_idx.shape[0]:
            m = (t - self.time_origin) // 1000  # rows of millisecond m start at ms_to_idx[m]
            count = self._ms_to_idx.shape[0]
            lo = int(self._ms_to_idx[min(max(m, 0), count - 1)]) if m >= 0 else 0
            hi = int(self._ms_to_idx[m + 1]) if 0 <= m + 1 < count else n
            lo, hi = min(lo, n), min(max(hi, lo), n)
            if not ((lo == 0 or self._time(lo - 1) < t) and (hi == n or self._time(hi) >= t)):
                lo, hi = 0, n  # an index that does not bracket t: search the whole file
        while hi - lo > _SLICE_SEARCH:
            mid = (lo + hi) // 2
            if self._time(mid) < t:
                lo = mid + 1
            else:
                hi = mid
        return lo + int(np.searchsorted(self._times(lo, hi), t, side="left"))

    def time_range(self) -> tuple[int, int]:
        """``(first t, last t)`` in µs (absolute); ``(0, 0)`` without events."""
        if self.event_count == 0:
            return 0, 0
        return int(self._times(0, 1)[0]), int(self._times(self.event_count - 1, self.event_count)[0])

    @property
    def duration(self) -> int:
        """Time of the last event in µs (absolute, like ``current_time``); 0 without events."""
        return self.time_range()[1]

    # ----------------------------------------------------------------- reading
    def reset(self) -> None:
        """Go back to the first event; ``current_time = time_origin``."""
        self._pos = 0
        self.current_time = self.time_origin

    def _read(self, stop: int) -> np.ndarray:
        stop = min(max(stop, self._pos), self.event_count)
        events = self._rows(self._pos, stop)[0]
        self._pos = stop
        return events

    def load_all(self) -> np.ndarray:
        """All events, sorted by ``t`` (stable), without moving the read position.

        Warns:
            UserWarning: the file's timestamps were not sorted (names the first offending event).
        """
        events, ordered = self._rows(0, self.event_count, check_order=True)
        if not ordered:
            events = sort_events_with_warning(events, f"{self.path}: timestamps", lambda i: f"event {i}")
        return events

    # ----------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Close the HDF5 file."""
        if self._file.id.valid:
            self._file.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __repr__(self) -> str:
        return f"EventH5Reader({str(self.path)!r}, layout={self.layout!r}, events={self.event_count})"
