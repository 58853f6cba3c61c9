"""Prophesee RAW files (EVT 2.0 / 2.1 / 3.0, SPEC 2.3): the streaming ``RawReader``.

The words after the ``%`` header are memory-mapped and decoded chunk by chunk by the decoders of
``evt2.py`` / ``evt21.py`` / ``evt3.py`` (numba kernels, or numpy for clean EVT 2.0 words); the decoder
state (time high, y, base x, polarity, ...) is carried across chunks, so reading by count or by time
window never decodes the whole file at once.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evdet.io.dtypes import EVENT_DTYPE, concatenate_events
from evdet.io.evt2 import backward_steps as evt2_backward_steps
from evdet.io.evt2 import decode_evt2, evt2_drops, new_evt2_state
from evdet.io.evt3 import EVT3_TIME_MODES, decode_evt3, evt3_drops, new_evt3_state
from evdet.io.evt3 import backward_steps as evt3_backward_steps
from evdet.io.header import RAW_MAX_SENSOR_SIDE, Header, parse_header, resolve_geometry
from evdet.io.reader import EventReader, sort_events_with_warning

DEFAULT_CHUNK_WORDS = 1 << 20


@dataclass(frozen=True)
class RawCodec:
    """How the words of one EVT version are decoded.

    Attributes:
        name: format name (``RawReader.format``, :func:`evdet.io.detect_format`).
        word_dtype: numpy dtype of one word (its itemsize is the word size).
        new_state: fresh decoder state. backward_steps(state): events decoded with ``t`` below their
            predecessor's. drops(state): ``(corrupt words skipped, first one's word, events outside the
            geometry, first one's word)``.
        decode: ``decode(words, state, source=, byte_offset=, start=, stop=, geometry=, **options)`` of
            words ``[start, stop)`` of the whole memory map ``words``.
        options: names of the reader attributes passed to ``decode`` as keyword options.
    """

    name: str
    word_dtype: type
    new_state: Callable[[], np.ndarray]
    backward_steps: Callable[[np.ndarray], int]
    drops: Callable[[np.ndarray], tuple[int, int, int, int]]
    decode: Callable[..., np.ndarray]
    options: tuple[str, ...] = ()

    @property
    def word_size(self) -> int:
        """Bytes per word."""
        return np.dtype(self.word_dtype).itemsize


def _decode_evt21(*args, **kwargs) -> np.ndarray:
    """:func:`evdet.io.evt21.decode_evt21`, imported on first use: its numba kernels are loaded only
    for EVT 2.1 files (an EVT 2.0 or 3.0 read of clean words never imports numba)."""
    from evdet.io.evt21 import decode_evt21

    return decode_evt21(*args, **kwargs)


RAW_CODECS = {
    "2.0": RawCodec("evt2", np.uint32, new_evt2_state, evt2_backward_steps, evt2_drops, decode_evt2),
    "2.1": RawCodec("evt21", np.uint64, new_evt2_state, evt2_backward_steps, evt2_drops, _decode_evt21,
                    ("legacy",)),  # EVT 2.1 shares EVT 2.0's state
    "3.0": RawCodec("evt3", np.uint16, new_evt3_state, evt3_backward_steps, evt3_drops, decode_evt3,
                    ("time_mode",)),
}
"""EVT version (as :attr:`evdet.io.header.Header.evt_version` spells it) -> its codec."""


class RawReader(EventReader):
    """Streaming reader of a Prophesee RAW file (EVT 2.0, 2.1 or 3.0, from the ``% evt`` or ``% format``
    header line).

    Attributes:
        path: the file. ``format``: ``"evt2"``, ``"evt21"`` or ``"evt3"``. ``legacy``: EVT 2.1 words in
            IMX636's swapped-halves layout (``% format EVT21;endianness=legacy``).
        height, width: sensor size (pixels); from the caller, the header (``% geometry``, ``% format
            ...;height=;width=``, ``% Height``/``% Width``), or the plugin/sensor name (e.g.
            ``hal_plugin_gen3_fx3`` -> 480x640, ``hal_plugin_gen41_evk3`` -> 720x1280); otherwise inferred
            as max coordinate + 1 by decoding the whole file on first access, with
            ``geometry_inferred = True``.
        current_time: µs, start of the next ``load_delta_t`` window; starts at 0 (windows aligned on
            absolute time), ``seek_time(t)`` sets it to ``t``, ``load_n_events`` to the last returned t.
        done: every event has been returned.

    ``seek_time`` decodes forward from the start of the file (RAW files have no index); it costs one
    decode of the skipped part. Windows split the stream at the first event with ``t >= end``, which is
    exact for time-ordered streams; a chunk found out of order raises a ``UserWarning`` once.

    Corrupt data: an EVT 2.0 / 2.1 / 3.0 time-high word with an implausible jump (the rule of
    ``time_high.py``, shared by the three decoders) is skipped, and
    events outside a known geometry (caller, header or plugin name) are dropped; both are counted
    (``skipped_corrupt``, ``dropped_outside``: over the words decoded since the last ``reset``/seek)
    and each kind is warned about once, naming the file and the byte offset of the first. The
    decoders read ahead in the memory map, so the result does not depend on ``chunk_words``.

    Args:
        chunk_words: words decoded per step (memory: ~16 bytes x events per chunk).
        time_mode: EVT3 timestamp rule, ``"spec"`` (default) or ``"expelliarmus"`` (see ``evt3.py``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the header declares no or an unsupported EVT version; while reading, a word of unknown
            type (names the byte offset).
    Warns:
        UserWarning: the file ends with a partial word (names the byte offset; complete words are read);
            when reading: corrupt time-high words skipped, events outside the geometry dropped.
    """

    def __init__(self, path: str | os.PathLike, height: int | None = None, width: int | None = None,
                 chunk_words: int = DEFAULT_CHUNK_WORDS, time_mode: str = "spec"):
        self.path = Path(path)
        header = parse_header(self.path)
        self.header: Header = header
        version = header.evt_version
        if version is None:
            raise ValueError(f"{self.path}: not a Prophesee RAW file: no '% evt' or '% format EVT' line in "
                             f"the {header.size}-byte header")
        if version not in RAW_CODECS:
            raise ValueError(f"{self.path}: unsupported EVT version {version!r} (supported: "
                             f"{', '.join(RAW_CODECS)})")
        if time_mode not in EVT3_TIME_MODES:
            raise ValueError(f"{self.path}: unknown time_mode {time_mode!r}; "
                             f"valid: {sorted(EVT3_TIME_MODES)}")
        if int(chunk_words) <= 0:
            raise ValueError(f"{self.path}: chunk_words must be positive, got {chunk_words}")
        self.codec = RAW_CODECS[version]
        self.format, self.word_size = self.codec.name, self.codec.word_size
        self.legacy = "endianness=legacy" in (header.get("format") or "").replace(" ", "").lower()
        self.time_mode = time_mode
        self.chunk_words = int(chunk_words)
        self.data_offset = header.size
        n, rest = divmod(self.path.stat().st_size - self.data_offset, self.word_size)
        if rest:
            warnings.warn(f"{self.path}: truncated {self.format.upper()} word at byte offset "
                          f"{self.data_offset + n * self.word_size} ({rest} trailing bytes ignored)",
                          UserWarning, stacklevel=2)
        self.word_count = int(n)
        dtype = self.codec.word_dtype
        if n:
            self._words = np.memmap(self.path, dtype=dtype, mode="r", offset=self.data_offset, shape=(n,))
        else:
            self._words = np.zeros(0, dtype=dtype)
        self._geometry = resolve_geometry(header, height, width, str(self.path), RAW_MAX_SENSOR_SIDE)
        self.geometry_inferred = self._geometry is None
        self._limits = self._geometry  # events outside are dropped; None (inferred) drops none
        self._warned: set[str] = set()
        self._stats: tuple[int, int, int] | None = None
        self.reset()

    # ----------------------------------------------------------------- geometry
    def _infer_geometry(self) -> tuple[int, int]:
        if self._geometry is None:
            max_x = max_y = -1
            state = self._new_state()
            for start in range(0, self.word_count, self.chunk_words):
                events = self._decode(start, state)
                if events.size:
                    max_x = max(max_x, int(events["x"].max()))
                    max_y = max(max_y, int(events["y"].max()))
            self._geometry = (max_y + 1, max_x + 1)
        return self._geometry

    # ----------------------------------------------------------------- decoding
    def _new_state(self) -> np.ndarray:
        return self.codec.new_state()

    def _backward_steps(self, state: np.ndarray) -> int:
        return self.codec.backward_steps(state)

    def _decode(self, start: int, state: np.ndarray) -> np.ndarray:
        """Decode words ``[start, start + chunk_words)`` with ``state`` (updated)."""
        options = {name: getattr(self, name) for name in self.codec.options}
        return self.codec.decode(self._words, state, source=str(self.path), byte_offset=self.data_offset,
                                 start=start, stop=start + self.chunk_words, geometry=self._limits, **options)

    def _drops(self, state: np.ndarray) -> tuple[int, int, int, int]:
        """(corrupt words skipped, first one's word index, events outside the geometry, first one's word)."""
        return self.codec.drops(state)

    def _offset(self, word: int) -> int:
        """Byte offset of word ``word`` in the file."""
        return self.data_offset + word * self.word_size

    def _warn_drops(self, state: np.ndarray, stacklevel: int) -> None:
        """Warn (once per kind and reader) about the corrupt words and outside events ``state`` counted."""
        n_skip, first_skip, n_out, first_out = self._drops(state)
        if n_skip:
            word = f"0x{int(self._words[first_skip]):0{2 * self.word_size}x}"
            name = "EV_TIME_HIGH" if self.format == "evt2" else "EVT_TIME_HIGH"
            self._warn_once("corrupt", f"{self.path}: {name} word {word} "
                            f"at byte offset {self._offset(first_skip)} is an implausible time jump (the "
                            f"stream continues from the previous time high); skipped as corrupt ({n_skip} "
                            f"such word(s) in this read)", stacklevel + 1)
        if n_out:
            self._warn_once("outside", f"{self.path}: {n_out} event(s) outside the {self.height}x"
                            f"{self.width} sensor geometry dropped in this read (the first in the word at "
                            f"byte offset {self._offset(first_out)})", stacklevel + 1)

    @property
    def skipped_corrupt(self) -> int:
        """Corrupt time-high words skipped in the words decoded since the last reset or seek."""
        return self._drops(self._state)[0]

    @property
    def dropped_outside(self) -> int:
        """Events outside the geometry dropped in the words decoded since the last reset or seek."""
        return self._drops(self._state)[2]

    def _decode_next(self) -> np.ndarray:
        events = self._decode(self._word_pos, self._state)
        self._word_pos = min(self._word_pos + self.chunk_words, self.word_count)
        if self._backward_steps(self._state):
            self._warn_once("unsorted", f"{self.path}: timestamps are not sorted in the words before byte "
                            f"offset {self._offset(self._word_pos)}; windowed reads may be inexact, use "
                            f"load_all() to get sorted events", stacklevel=4)
        self._warn_drops(self._state, stacklevel=4)
        return events

    def _append(self, parts: list[np.ndarray]) -> None:
        """Append decoded chunks to the pending events (one copy, however many chunks)."""
        self._base += self._bpos  # stream index of the first pending event
        pending = self._buf[self._bpos:]
        self._buf = concatenate_events([pending, *parts]) if pending.size else concatenate_events(parts)
        self._bpos = 0

    @property
    def _eof(self) -> bool:
        return self._word_pos >= self.word_count

    def _fill_until_time(self, t: int, max_events: int | None = None) -> None:
        """Decode until the buffer holds an event with time >= ``t``, the file ends, or (with
        ``max_events``) more than ``max_events`` events are pending. What is decoded is always kept in the
        buffer, so the read position and the decoder state stay consistent whoever stops the read."""
        if self._bpos < self._buf.size and int(self._buf["t"][-1]) >= t:
            return
        parts, have = [], self._buf.size - self._bpos
        if max_events is not None and have > max_events:
            return  # enough pending already: decoding more would grow the buffer by a chunk per piece
        while not self._eof:
            events = self._decode_next()
            parts.append(events)
            have += events.size
            if events.size and int(events["t"][-1]) >= t:
                break
            if max_events is not None and have > max_events:
                break
        if parts:
            self._append(parts)

    def _split_at_time(self, t: int) -> int:
        """Buffer index of the first pending event with time >= ``t``."""
        return self._bpos + int(np.searchsorted(self._buf["t"][self._bpos:], t, side="left"))

    # ----------------------------------------------------------------- reading API
    @property
    def done(self) -> bool:
        """True when every event has been returned."""
        if self._bpos < self._buf.size:
            return False
        while not self._eof and self._bpos >= self._buf.size:  # trailing words may hold no events
            self._append([self._decode_next()])
        return self._bpos >= self._buf.size

    def reset(self) -> None:
        """Go back to the first event; ``current_time = 0``."""
        self._state = self._new_state()
        self._word_pos = 0
        self._buf = np.zeros(0, dtype=EVENT_DTYPE)
        self._bpos = 0
        self._base = 0  # stream index of self._buf[0]
        self.current_time = 0

    def load_n_events(self, n: int) -> np.ndarray:
        """Next ``n`` events (fewer at the end): ``EVENT_DTYPE ndarray[<=n]``.

        Raises:
            ValueError: ``n < 0``.
        """
        n = self._check_n(n)
        parts, have = [], self._buf.size - self._bpos
        while not self._eof and have < n:
            parts.append(self._decode_next())
            have += parts[-1].size
        if parts:
            self._append(parts)
        stop = min(self._bpos + n, self._buf.size)
        events = self._buf[self._bpos:stop].copy()
        self._bpos = stop
        if events.size:
            self.current_time = int(events["t"][-1])
        return events

    def load_delta_t(self, delta_t: int) -> np.ndarray:
        """Pending events with ``t < current_time + delta_t`` (µs), then ``current_time += delta_t``.
        Returns ``EVENT_DTYPE ndarray[n]``.

        Raises:
            ValueError: ``delta_t <= 0``.
        """
        end = self.current_time + self._check_delta_t(delta_t)
        self._fill_until_time(end)
        stop = self._split_at_time(end)
        events = self._buf[self._bpos:stop].copy()
        self._bpos = stop
        self.current_time = end
        return events

    def _load_window(self, delta_t: int, max_events: int | None) -> np.ndarray:
        """``load_delta_t`` that stops decoding once the window holds more than ``max_events`` events; the
        refusal leaves the reader at the window start with the events decoded so far pending (usable)."""
        end = self.current_time + self._check_delta_t(delta_t)
        self._fill_until_time(end, max_events)
        stop = self._split_at_time(end)
        if max_events is not None and stop - self._bpos > max_events:
            whole = stop < self._buf.size or self._eof  # the window's end was reached
            count = stop - self._bpos if whole else f"more than {max_events}"
            raise self._window_too_large(self.current_time, delta_t, count, max_events)
        return self.load_delta_t(delta_t)

    def _delta_t_pieces(self, delta_t: int, max_events: int) -> Iterator[tuple[np.ndarray, bool]]:
        """The window's events decoded chunk by chunk and handed out ``max_events`` at a time (memory:
        the pending events, at most ``max_events`` plus one chunk, and the piece)."""
        end = self.current_time + self._check_delta_t(delta_t)
        while True:
            self._fill_until_time(end, max_events)
            stop = self._split_at_time(end)
            cut = min(stop, self._bpos + max_events)
            piece = self._buf[self._bpos:cut].copy()
            self._bpos = cut
            last = cut == stop and (stop < self._buf.size or self._eof)
            if last:
                self.current_time = end
            if last or piece.size:
                yield piece, last
            if last:
                return

    def seek_time(self, t: int) -> None:
        """Position at the first event with time >= ``t`` by decoding forward from the start of the file;
        ``current_time = t``."""
        t = int(t)
        self.reset()
        while not self._eof:
            events = self._decode_next()
            if events.size and int(events["t"][-1]) >= t:
                self._append([events])
                break
            self._base += events.size  # skipped
        self._bpos = self._split_at_time(t)
        self.current_time = t

    @property
    def position(self) -> int:
        """Index of the next event to be returned (in decoding order)."""
        return self._base + self._bpos

    def seek_event(self, n: int) -> None:
        """Position at event index ``n`` (0 <= n <= event_count) by decoding forward from the start;
        ``current_time`` = its time (or, at the end, the last time).

        Raises:
            ValueError: ``n`` out of range.
        """
        n = int(n)
        if not 0 <= n <= self.event_count:
            raise ValueError(f"{self.path}: seek_event({n}) out of range [0, {self.event_count}]")
        self.reset()
        while not self._eof and self._base + self._buf.size <= n:
            events = self._decode_next()
            if self._base + events.size > n:
                self._append([events])
                break
            self._base += events.size  # skipped
        self._bpos = n - self._base
        self.current_time = int(self._buf["t"][self._bpos]) if self._bpos < self._buf.size else self.duration

    def load_all(self) -> np.ndarray:
        """All events sorted by ``t`` (stable), without moving the read position.

        Warns:
            UserWarning: the decoded times were not sorted (they are sorted).
        """
        state = self._new_state()
        parts = [self._decode(start, state) for start in range(0, self.word_count, self.chunk_words)]
        events = concatenate_events(parts) if parts else np.zeros(0, dtype=EVENT_DTYPE)
        self._warn_drops(state, stacklevel=2)
        if self._backward_steps(state):
            events = sort_events_with_warning(events, f"{self.path}: decoded timestamps",
                                              lambda i: f"event {i}")
        return events

    def _scan(self) -> tuple[int, int, int]:
        """``(event count, smallest t, largest t)``: one decode of the file, chunk by chunk, without
        holding its events (done once, on first use)."""
        if self._stats is None:
            state, count, lo, hi = self._new_state(), 0, None, None
            for start in range(0, self.word_count, self.chunk_words):
                t = self._decode(start, state)["t"]
                if t.size:
                    count += t.size
                    lo = int(t.min()) if lo is None else min(lo, int(t.min()))
                    hi = int(t.max()) if hi is None else max(hi, int(t.max()))
            self._stats = (count, 0, 0) if lo is None else (count, lo, hi)
        return self._stats

    def time_range(self) -> tuple[int, int]:
        """``(first t, last t)`` in µs: the smallest and largest decoded time (see ``_scan``); ``(0, 0)``
        without events."""
        return self._scan()[1:]

    @property
    def event_count(self) -> int:
        """Number of events in the file (one decode of the file on first use)."""
        return self._scan()[0]

    @property
    def duration(self) -> int:
        """Time of the last event in µs (the recording length from t = 0); 0 without events."""
        return self._scan()[2]

    # ----------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Release the memory map."""
        self._words = self._words[:0].copy()
        self.word_count = 0
        self._stats = None
        self.reset()

    def __repr__(self) -> str:
        return f"RawReader({str(self.path)!r}, format={self.format}, words={self.word_count})"
