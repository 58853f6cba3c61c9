"""Prophesee DAT event files (SPEC 2.2): memory-mapped ``DatReader``, ``DatWriter``, ``write_dat``.

Header: ``% key value`` text lines, then the event type and size bytes (none in legacy header-less
files), then 8-byte records; the record layout and the 32-bit time unwrapping rule are in
``evdet.io.dat_records``.
"""

from __future__ import annotations

import datetime
import os
import warnings
from pathlib import Path

import numpy as np

from evdet.io.atomic import AtomicTarget, CommitOnExit
from evdet.io.dat_records import (
    DAT_RECORD_SIZE,
    HALF_TIME_WRAP,
    OUTLIER_STEP,
    TIME_WRAP,
    dat_drops,
    decode_dat_records,
    encode_dat_records,
    max_xy,
    new_dat_state,
)
from evdet.io.dtypes import as_events
from evdet.io.header import Header, parse_header, resolve_geometry
from evdet.io.reader import IndexedEventReader, sort_events_with_warning

DAT_EVENT_TYPES = {0: "Event2D", 12: "EventCD"}
"""Event types accepted in a DAT header (both are the 8-byte CD record)."""
_INDEX_STRIDE = 1 << 14  # records between two entries of the coarse time index used by seek_time


class DatReader(IndexedEventReader):
    """Memory-mapped reader of a DAT file; nothing is read until asked.

    Attributes:
        path: the file.
        height, width: sensor size (pixels); from the caller, the header (``% Height``/``% Width``), or,
            when neither gives it, inferred as max coordinate + 1 (computed on first access by scanning
            the records) with ``geometry_inferred = True``.
        current_time: µs, start of the next ``load_delta_t`` window. It starts at 0 so that windows are
            aligned on absolute time; ``seek_time(t)`` sets it to ``t``; ``load_n_events`` sets it to the
            time of the last event returned.
        event_count: number of complete records.
        duration: time of the last event (µs, unwrapped), i.e. the recording length counted from
            t = 0 (the time origin of the windows); 0 for a file without events. ``time_range`` gives
            ``(first t, last t)``.
        done: every event has been returned (the read position is at the end).

    Reading functions return ``EVENT_DTYPE`` arrays in file order, which is time order for valid files.
    A record whose time is an isolated jump of more than 2^31 µs (not a wrap: the next record does not
    continue from it) is skipped as corrupt, and events outside a known geometry (caller or header)
    are dropped; both are counted (``skipped_corrupt``, ``dropped_outside``: over the reads since the
    last ``reset``/seek) and each kind is warned about once, naming the file and the byte offset of
    the first. ``load_n_events(n)`` therefore returns n events minus the dropped ones.
    Windowed reads (``load_delta_t``, ``seek_time``) assume sorted timestamps (binary search); if a
    decoded block is found unsorted a ``UserWarning`` is raised once. ``load_all`` sorts (stable) with a
    warning.

    Raises (constructor):
        FileNotFoundError: no such file.
        ValueError: a RAW (EVT) file, an unknown event type or size in the header (names the byte
            offset), or a header-less file whose records are not DAT records.
    Warns:
        UserWarning: the file ends with a partial record (names the byte offset; the complete records
            are read); when reading: corrupt records skipped, events outside the geometry dropped.
    """

    def __init__(self, path: str | os.PathLike, height: int | None = None, width: int | None = None):
        self.path = Path(path)
        header = parse_header(self.path)
        self.header: Header = header
        if header.evt_version is not None:
            raise ValueError(f"{self.path}: not a DAT file: the header declares EVT {header.evt_version} "
                             f"(a Prophesee RAW file; use RawReader or open_events)")
        file_size = self.path.stat().st_size
        self.event_type = 0
        if header.lines:
            if file_size < header.size + 2:
                data_offset = file_size  # header only: no events
            else:
                with open(self.path, "rb") as f:
                    f.seek(header.size)
                    ev_type, ev_size = f.read(2)
                if ev_type not in DAT_EVENT_TYPES:
                    raise ValueError(f"{self.path}: unknown DAT event type {ev_type} at byte offset "
                                     f"{header.size} (supported: {sorted(DAT_EVENT_TYPES)})")
                if ev_size != DAT_RECORD_SIZE:
                    raise ValueError(f"{self.path}: unsupported DAT event size {ev_size} at byte offset "
                                     f"{header.size + 1} (expected {DAT_RECORD_SIZE})")
                self.event_type = ev_type
                data_offset = header.size + 2
        else:
            data_offset = 0
        self.data_offset = data_offset
        n, rest = divmod(file_size - data_offset, DAT_RECORD_SIZE)
        if rest:
            warnings.warn(f"{self.path}: truncated record at byte offset {data_offset + n * DAT_RECORD_SIZE} "
                          f"({rest} trailing bytes ignored; {n} complete records read)", UserWarning,
                          stacklevel=2)
        self.event_count = int(n)
        if n:
            self._records = np.memmap(self.path, dtype=np.uint32, mode="r", offset=data_offset, shape=(n, 2))
        else:
            self._records = np.zeros((0, 2), dtype=np.uint32)
        if not header.lines:
            self._check_legacy_records()
        self._geometry = resolve_geometry(header, height, width, str(self.path))
        self.geometry_inferred = self._geometry is None
        self._limits = self._geometry  # events outside are dropped; None (inferred) drops none
        self._warned: set[str] = set()
        self._index_pos: np.ndarray | None = None
        self._index_t: np.ndarray | None = None
        self.reset()

    # ----------------------------------------------------------------- geometry
    def _check_legacy_records(self) -> None:
        head = np.asarray(self._records[:1024, 1])
        bad = np.flatnonzero(head >> 29)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{self.path}: not a DAT file (no '%' header, and the packed word at byte "
                             f"offset {self.data_offset + i * DAT_RECORD_SIZE + 4} has reserved bits 29-31 "
                             f"set: 0x{int(head[i]):08x})")

    def _infer_geometry(self) -> tuple[int, int]:
        if self._geometry is None:
            if self.event_count == 0:
                self._geometry = (0, 0)
            else:
                max_x, max_y = max_xy(self._records)
                self._geometry = (int(max_y) + 1, int(max_x) + 1)
        return self._geometry

    # ----------------------------------------------------------------- time index
    def _build_index(self) -> None:
        """Coarse index: unwrapped t of every ``_INDEX_STRIDE``-th record and of the last one. A sampled
        record that is an isolated time jump (corrupt, see ``dat_records``) is replaced by its
        neighbour (the next one; the one before for the last record)."""
        if self._index_pos is not None:
            return
        n = self.event_count
        pos = np.arange(0, n, _INDEX_STRIDE, dtype=np.int64)
        if n and pos[-1] != n - 1:
            pos = np.append(pos, n - 1)

        def t(i: np.ndarray) -> np.ndarray:  # stored times of records i (clipped to the file)
            return np.asarray(self._records[np.clip(i, 0, n - 1), 0]).astype(np.int64)

        def jump(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # a step of more than 2^31 from a to b
            return np.abs(t(b) - t(a)) > HALF_TIME_WRAP

        def far(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # more than OUTLIER_STEP apart, mod 2^32
            d = np.abs(t(b) - t(a))
            return np.minimum(d, TIME_WRAP - d) > OUTLIER_STEP

        inner = (pos > 0) & (pos < n - 1)
        outlier = inner & far(pos - 1, pos) & far(pos, pos + 1) & ~far(pos - 1, pos + 1)
        corrupt = np.where(pos == 0, (n >= 3) & jump(pos, pos + 1) & ~jump(pos + 1, pos + 2),
                           outlier | (jump(pos - 1, pos) & ((pos == n - 1) | jump(pos, pos + 1))))
        pos = np.unique(np.where(corrupt, np.where(pos == n - 1, pos - 1, pos + 1), pos))
        t32 = t(pos)
        wraps = np.concatenate([[0], np.cumsum(np.diff(t32) < -HALF_TIME_WRAP)]) if t32.size else t32
        self._index_pos = pos
        self._index_t = t32 + wraps * TIME_WRAP
        back = np.flatnonzero(np.diff(self._index_t) < 0)
        if back.size:  # seen without decoding: seeks, windows and the duration rest on sorted times
            i = int(pos[back[0] + 1])
            self._warn_once("unsorted", f"{self.path}: timestamps are not sorted (record {i}, byte offset "
                            f"{self._offset(i)}, is earlier than record {int(pos[back[0]])}); windowed "
                            "reads, seeks and the duration are inexact, use load_all() to get sorted events",
                            stacklevel=4)

    def _decode_from_index(self, k: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Decode records ``[index_pos[k], stop)`` with the wrap state known at entry ``k``: one event per
        record (dropped ones marked ``p = -1``, see ``decode_dat_records``) and the state after them."""
        t_k = int(self._index_t[k])
        state = new_dat_state()
        state[:2] = t_k - (t_k & 0xFFFFFFFF), t_k & 0xFFFFFFFF
        events, _ = decode_dat_records(self._records, state, int(self._index_pos[k]), stop, self._limits,
                                       keep_dropped=True)
        return events, state

    def _state_before(self, pos: int) -> np.ndarray:
        """Decoder state for starting at record ``pos`` (no drops counted yet)."""
        if pos <= 0:
            return new_dat_state()
        self._build_index()
        k = int(np.searchsorted(self._index_pos, pos - 1, side="right")) - 1
        state = self._decode_from_index(k, pos)[1]
        state[2:] = new_dat_state()[2:]
        return state

    def _search(self, t: int) -> int:
        """Index of the first record with unwrapped time >= ``t`` (sorted file assumed)."""
        if self.event_count == 0:
            return 0
        self._build_index()
        k = int(np.searchsorted(self._index_t, t, side="left")) - 1
        if k < 0:
            return 0
        stop = int(self._index_pos[k + 1]) + 1 if k + 1 < self._index_pos.size else self.event_count
        seg = self._decode_from_index(k, stop)[0]["t"]
        return int(self._index_pos[k]) + int(np.searchsorted(seg, t, side="left"))

    def time_range(self) -> tuple[int, int]:
        """``(first t, last t)`` in µs (unwrapped); ``(0, 0)`` without events."""
        if self.event_count == 0:
            return 0, 0
        self._build_index()
        return int(self._index_t[0]), int(self._index_t[-1])

    @property
    def duration(self) -> int:
        """Time of the last event in µs (recording length from t = 0); 0 without events."""
        return self.time_range()[1]

    # ----------------------------------------------------------------- reading
    def _read(self, stop: int) -> np.ndarray:
        stop = min(max(stop, self._pos), self.event_count)
        events, backward = decode_dat_records(self._records, self._state, self._pos, stop, self._limits)
        if backward:
            self._warn_once("unsorted", f"{self.path}: timestamps are not sorted near record {self._pos} "
                            f"(byte offset {self._offset(self._pos)}); windowed reads may be inexact, use "
                            f"load_all() to get sorted events", stacklevel=3)
        self._warn_drops(self._state, stacklevel=3)
        self._pos = stop
        return events

    def _offset(self, record: int) -> int:
        """Byte offset of record ``record`` in the file."""
        return self.data_offset + record * DAT_RECORD_SIZE

    def _warn_drops(self, state: np.ndarray, stacklevel: int) -> None:
        """Warn (once per kind and reader) about the corrupt records and outside events ``state`` counted."""
        n_jump, first_jump, n_out, first_out = dat_drops(state)
        if n_jump:
            t32, prev = int(self._records[first_jump, 0]), int(self._records[max(first_jump - 1, 0), 0])
            self._warn_once("corrupt", f"{self.path}: record {first_jump} at byte offset "
                            f"{self._offset(first_jump)} has time word 0x{t32:08x} after 0x{prev:08x}: an "
                            f"isolated jump of more than 2^31 µs (not a wrap: the next record does not "
                            f"continue from it); skipped as corrupt ({n_jump} such record(s) in this read)",
                            stacklevel + 1)
        if n_out:
            w = int(self._records[first_out, 1])
            self._warn_once("outside", f"{self.path}: {n_out} event(s) outside the {self.height}x"
                            f"{self.width} sensor geometry dropped in this read (first: record {first_out} "
                            f"at byte offset {self._offset(first_out)}, x = {w & 0x3FFF}, "
                            f"y = {(w >> 14) & 0x3FFF})", stacklevel + 1)

    @property
    def skipped_corrupt(self) -> int:
        """Corrupt records (isolated time jumps) skipped by the reads since the last reset or seek."""
        return dat_drops(self._state)[0]

    @property
    def dropped_outside(self) -> int:
        """Events outside the geometry dropped by the reads since the last reset or seek."""
        return dat_drops(self._state)[2]

    def reset(self) -> None:
        """Go back to the first event; ``current_time = 0``."""
        self._pos = 0
        self._state = new_dat_state()
        self.current_time = 0

    def _moved(self) -> None:
        """The unwrapping state at the new read position (seeks: a binary search over the mapped records)."""
        self._state = self._state_before(self._pos)

    def _time(self, i: int) -> int:
        """Unwrapped time (µs) of record ``i`` (decoded from the state before it, the reader's own at the
        read position; corrupt ones included)."""
        state = self._state.copy() if i == self._pos else self._state_before(i)
        return int(decode_dat_records(self._records, state, i, i + 1, keep_dropped=True)[0]["t"][0])

    def load_all(self) -> np.ndarray:
        """All events, sorted by ``t`` (stable), without moving the read position.

        Warns:
            UserWarning: the file's timestamps were not sorted (names the first offending record); corrupt
                records skipped, events outside the geometry dropped (see the class docstring).
        """
        state = new_dat_state()
        events, backward = decode_dat_records(self._records, state, geometry=self._limits)
        self._warn_drops(state, stacklevel=2)
        if backward:
            events = sort_events_with_warning(
                events, f"{self.path}: timestamps",
                lambda i: f"record {i} at byte offset {self.data_offset + i * DAT_RECORD_SIZE}")
        return events

    # ----------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Release the memory map."""
        self._records = np.zeros((0, 2), dtype=np.uint32)
        self.event_count = 0
        self._pos = 0

    def __repr__(self) -> str:
        return f"DatReader({str(self.path)!r}, events={self.event_count}, position={self._pos})"


class DatWriter(CommitOnExit):
    """Appendable DAT writer (type 12 EventCD, size 8).

    Data go to a temporary name, renamed to ``path`` by ``close()`` (:mod:`evdet.io.atomic`); leaving a
    ``with`` block by an exception removes the temporary file, so an interrupted write never looks complete.

    Args:
        path: destination ``.dat`` file.
        height, width: sensor size in pixels written to the header (1..16384).

    Raises:
        ValueError: bad geometry; in ``write``: coordinates outside the frame, ``p`` not 0/1, negative
            ``t``, times earlier than already written ones, or a gap of >= 2^31 µs between consecutive
            events (it could not be unwrapped).
    """

    def __init__(self, path: str | os.PathLike, height: int, width: int):
        self.path = Path(path)
        if not (0 < int(height) <= 1 << 14 and 0 < int(width) <= 1 << 14):
            raise ValueError(f"{self.path}: DAT geometry must be within 1..16384, got {height}x{width}")
        self.height, self.width = int(height), int(width)
        self._target = AtomicTarget(self.path)
        self._file = open(self._target.tmp, "wb")
        now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        text = f"% Date {now}\n% Version 2\n% Height {self.height}\n% Width {self.width}\n"
        self._file.write(text.encode("ascii") + bytes([12, DAT_RECORD_SIZE]))
        self._last_t: int | None = None
        self.count = 0

    def write(self, events: np.ndarray) -> None:
        """Append events (any layout accepted by ``as_events``); unsorted input is sorted with a warning."""
        if self._file is None:
            raise ValueError(f"{self.path}: writer is closed")
        events = as_events(np.asarray(events).reshape(-1), source=str(self.path))
        if events.size == 0:
            return
        src = str(self.path)
        for name, limit in (("x", self.width), ("y", self.height)):
            bad = np.flatnonzero(events[name] >= limit)
            if bad.size:
                raise ValueError(f"{src}: event {self.count + bad[0]} has {name} = {events[name][bad[0]]} "
                                 f">= {'width' if name == 'x' else 'height'} {limit}")
        bad = np.flatnonzero((events["p"] != 0) & (events["p"] != 1))
        if bad.size:
            raise ValueError(f"{src}: event {self.count + bad[0]} has p = {events['p'][bad[0]]} "
                             f"(expected 0 or 1)")
        bad = np.flatnonzero(events["t"] < 0)
        if bad.size:
            raise ValueError(f"{src}: event {self.count + bad[0]} has negative t = {events['t'][bad[0]]}")
        steps = np.diff(events["t"])
        if np.any(steps < 0):
            events = sort_events_with_warning(events, f"{src}: events to write are",
                                              lambda i: f"event {self.count + i}")
            steps = np.diff(events["t"])
        if self._last_t is not None and int(events["t"][0]) < self._last_t:
            raise ValueError(f"{src}: event {self.count} has t = {events['t'][0]} earlier than the last "
                             f"written t = {self._last_t}")
        gaps = np.concatenate([[0 if self._last_t is None else int(events["t"][0]) - self._last_t], steps])
        bad = np.flatnonzero(gaps >= HALF_TIME_WRAP)
        if bad.size:
            raise ValueError(f"{src}: event {self.count + bad[0]} follows a gap of {gaps[bad[0]]} µs >= "
                             f"2^31 µs, which the 32-bit DAT time cannot represent")
        encode_dat_records(events).tofile(self._file)
        self._last_t = int(events["t"][-1])
        self.count += int(events.size)

    def close(self) -> None:
        """Finish the file: flush and rename the temporary file to ``path``."""
        if self._file is None:
            return
        self._file.close()
        self._file = None
        self._target.commit()

    def abort(self) -> None:
        """Discard everything written (removes the temporary file)."""
        if self._file is None:
            return
        self._file.close()
        self._file = None
        self._target.abort()


def write_dat(path: str | os.PathLike, events: np.ndarray, height: int, width: int) -> None:
    """Write a complete DAT file atomically (temporary name + rename).

    Args:
        events: ``EVENT_DTYPE`` (or convertible) ``ndarray[N]``; times >= 2^32 µs are written wrapped.
        height, width: sensor size in pixels.

    Raises:
        ValueError: see ``DatWriter``.
    """
    with DatWriter(path, height, width) as writer:
        writer.write(events)
