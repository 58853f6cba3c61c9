"""What the streaming event readers share (:class:`evdet.io.DatReader`, :class:`evdet.io.RawReader`,
:class:`evdet.io.EventH5Reader`).

:class:`EventReader` is a small base class: windows over the stream (``iter_windows``) built on the
reader's ``seek_time`` / ``done`` / ``current_time`` / ``load_delta_t``, the argument checks of
``load_n_events`` / ``load_delta_t``, and context-manager methods that call ``close()``.
:func:`sort_events_with_warning` is the "sort by time, warn once naming the first offending event" step
of ``load_all`` (and of ``DatWriter.write``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

import numpy as np

from evdet.io.interrupts import check_interrupt

DEFAULT_MAX_WINDOW_EVENTS = 1 << 26
"""Default cap of ``EventReader.iter_windows``: 64 Mi events (1 GiB of ``EVENT_DTYPE``) per window."""
DEFAULT_PIECE_EVENTS = 1 << 22
"""Default piece size of ``EventReader.load_delta_t_pieces`` / ``iter_window_pieces``: 4 Mi events
(64 MiB of ``EVENT_DTYPE``)."""


def sort_events_with_warning(events: np.ndarray, what: str, locate: Callable[[int], str],
                             stacklevel: int = 3) -> np.ndarray:
    """``events`` sorted by ``t`` (stable, a new array), after a ``UserWarning``
    ``"{what} not sorted ({locate(i)} has t = … < previous); sorting them"`` naming the first event ``i``
    whose time is below its predecessor's.

    Args:
        events: ``EVENT_DTYPE ndarray[N]`` known to hold at least one backward step in ``t``.
        what: start of the message, e.g. ``"foo.dat: timestamps"``.
        locate: index -> where that event is, e.g. ``"record 17 at byte offset 180"``.
        stacklevel: of the warning, counted from this function (3: the caller of the caller).
    """
    first = int(np.flatnonzero(np.diff(events["t"]) < 0)[0]) + 1
    warnings.warn(f"{what} not sorted ({locate(first)} has t = {events['t'][first]} < previous); "
                  f"sorting them", UserWarning, stacklevel=stacklevel)
    return events[np.argsort(events["t"], kind="stable")]


class EventReader:
    """Base of the streaming readers (:class:`evdet.io.DatReader`, :class:`evdet.io.RawReader`,
    :class:`evdet.io.EventH5Reader`): the one contract every event format implements.

    Subclasses define ``path``, ``current_time`` (µs: start of the next ``load_delta_t`` window),
    ``done``, ``event_count``, ``duration`` (µs, time of the last event), ``position`` (index of the next
    event), ``load_n_events(n)``, ``load_delta_t(delta_t)``, ``load_all()``, ``seek_time(t)``,
    ``seek_event(n)``, ``reset()``, ``time_range()``, ``close()`` and ``_infer_geometry() -> (height,
    width)`` (from the caller, the header, or inferred from the events: see the subclass); this class adds
    ``height``, ``width``, ``iter_windows``, ``iter_window_pieces`` and the context manager.
    ``time_origin`` (µs) is where the recording's clock starts: 0 unless the file stores an offset (DSEC's
    ``t_offset``)."""

    time_origin: int = 0

    path: Path
    current_time: int
    event_count: int
    _warned: set[str]  # kinds of warning already given by this reader (set by the subclass constructor)

    def _warn_once(self, kind: str, message: str, stacklevel: int) -> None:
        """A ``UserWarning`` with ``message`` the first time this reader meets ``kind`` (e.g. "corrupt");
        ``stacklevel`` counted from the caller of this method."""
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)

    def _infer_geometry(self) -> tuple[int, int]:
        raise NotImplementedError

    @property
    def height(self) -> int:
        """Sensor height in pixels (see the reader's class docstring for where it comes from)."""
        return self._infer_geometry()[0]

    @property
    def width(self) -> int:
        """Sensor width in pixels."""
        return self._infer_geometry()[1]

    @property
    def done(self) -> bool:
        raise NotImplementedError

    def seek_time(self, t: int) -> None:
        raise NotImplementedError

    def load_delta_t(self, delta_t: int) -> np.ndarray:
        raise NotImplementedError

    def time_range(self) -> tuple[int, int]:
        raise NotImplementedError

    def load_n_events(self, n: int) -> np.ndarray:
        raise NotImplementedError

    def load_all(self) -> np.ndarray:
        raise NotImplementedError

    def seek_event(self, n: int) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    @property
    def duration(self) -> int:
        raise NotImplementedError

    @property
    def position(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _check_n(self, n: int) -> int:
        """``int(n)`` for ``load_n_events``; raises ValueError naming the file when ``n < 0``."""
        if int(n) < 0:
            raise ValueError(f"{self.path}: load_n_events needs n >= 0, got {n}")
        return int(n)

    def _check_delta_t(self, delta_t: int) -> int:
        """``int(delta_t)`` (µs) for ``load_delta_t``; raises ValueError naming the file when it is <= 0."""
        if int(delta_t) <= 0:
            raise ValueError(f"{self.path}: load_delta_t needs delta_t > 0 µs, got {delta_t}")
        return int(delta_t)

    def _load_window(self, delta_t: int, max_events: int | None) -> np.ndarray:
        """``load_delta_t(delta_t)``, refusing a window of more than ``max_events`` events; readers that
        can count a window before decoding it (DAT, RAW, event HDF5) override this to refuse before
        allocating. A refusal puts the read position back at the window start (``seek_time``: exact for
        the contiguous windows of a time-sorted stream)."""
        t0 = self.current_time
        events = self.load_delta_t(delta_t)
        if max_events is not None and events.size > max_events:
            self.seek_time(t0)
            raise self._window_too_large(t0, delta_t, events.size, max_events)
        return events

    def _window_too_large(self, t0: int, delta_t: int, count: int | str, max_events: int) -> ValueError:
        return ValueError(f"{self.path}: window [{t0}, {t0 + delta_t}) µs holds {count} events, more than "
                          f"max_events = {max_events} ({16 * max_events / 2**30:.2f} GiB); use a smaller "
                          f"delta_t or a larger max_events")

    def _delta_t_pieces(self, delta_t: int, max_events: int) -> Iterator[tuple[np.ndarray, bool]]:
        """:meth:`load_delta_t_pieces` after its checks. This default loads the window whole and cuts it
        (memory not bounded); DAT, RAW and event-HDF5 readers override it to read piece by piece."""
        events = self.load_delta_t(delta_t)
        starts = range(0, max(events.size, 1), max_events)
        for k, i in enumerate(starts):
            yield events[i:i + max_events], k == len(starts) - 1

    def load_delta_t_pieces(self, delta_t: int, max_events: int = DEFAULT_PIECE_EVENTS
                            ) -> Iterator[tuple[np.ndarray, bool]]:
        """The events of :meth:`load_delta_t` (``t < current_time + delta_t``, µs) in consecutive pieces of
        at most ``max_events`` events: yields ``(piece, last)`` (``EVENT_DTYPE ndarray[<= max_events]``,
        True on the last piece; at least one piece, empty for a window without events). ``current_time``
        moves to the window end just before the last piece is yielded. Memory: ~16 bytes x
        ``max_events`` (plus one decoded chunk for RAW files) in the DAT, RAW and event-HDF5 readers,
        however many events the window holds.

        Raises:
            ValueError: ``delta_t <= 0`` or ``max_events < 1`` (naming the file).
        """
        if isinstance(max_events, bool) or int(max_events) < 1:
            raise ValueError(f"{self.path}: window pieces need max_events >= 1, got {max_events}")
        self._check_delta_t(delta_t)
        return _interruptible(self._delta_t_pieces(delta_t, int(max_events)))

    def iter_window_pieces(self, delta_t: int, start_ts: int = 0,
                           max_events: int = DEFAULT_PIECE_EVENTS
                           ) -> Iterator[tuple[int, np.ndarray, bool]]:
        """The windows of :meth:`iter_windows`, each as consecutive pieces of at most ``max_events``
        events: yields ``(t0, piece, last)``, ``t0`` the start of the piece's window ``[t0, t0 + delta_t)``
        (µs) and ``last`` True on the window's last piece. Every window yields at least one piece (empty for
        a window without events); the pieces of a window, joined, are the ``events`` ``iter_windows``
        yields for it. Nothing is refused: a window of any size streams with memory bounded by
        ~16 bytes x ``max_events`` (plus one decoded chunk for RAW files) in the DAT, RAW and event-HDF5
        readers. Moves the read position; after the last piece of a window, ``current_time = t0 + delta_t``.

        Consumers that need a whole window accumulate the pieces, e.g.
        :class:`evdet.preprocessing.TensorBuilder` (bit-identical to the tensor of the joined events).

        Raises:
            ValueError: ``delta_t <= 0`` or ``max_events < 1`` (naming the file).
        """
        self.load_delta_t_pieces(delta_t, max_events)  # the checks, before moving the read position
        self.seek_time(start_ts)
        while not self.done:
            t0 = self.current_time
            for piece, last in self.load_delta_t_pieces(delta_t, max_events):
                yield t0, piece, last

    def iter_windows(self, delta_t: int, start_ts: int = 0,
                     max_events: int | None = DEFAULT_MAX_WINDOW_EVENTS) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t0, events)`` for consecutive windows ``[t0, t0 + delta_t)`` from ``start_ts`` until
        the last event (the last window is included even if partial). Moves the read position.

        Args:
            max_events: most events one window may hold (None: no limit). DAT and RAW readers check
                while reading, so memory stays below ~16 bytes x ``max_events`` plus one decoded chunk.

        Raises:
            ValueError: a window holds more than ``max_events`` events (names the file, the window and
                the count); :meth:`iter_window_pieces` streams such a window in pieces instead. After the
                error the reader is still usable: its read position is the start of the refused window
                (``position``, ``current_time``), nothing decoded is lost, and a RAW reader keeps the events
                it decoded before refusing (at most ``max_events`` plus one chunk).
        """
        self.seek_time(start_ts)
        while not self.done:
            t0 = self.current_time
            yield t0, self._load_window(delta_t, max_events)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class IndexedEventReader(EventReader):
    """Base of the readers whose events are addressed by index (DAT records, event-HDF5 rows): the read
    position ``_pos`` is an event index, and two methods of the subclass give the rest of the reading
    API (``done``, ``position``, ``load_n_events``, ``load_delta_t``, the ``max_events`` refusal counted
    before anything is decoded, and window pieces of bounded memory):

    - ``_read(stop)``: the events ``[_pos, stop)`` (``stop`` clipped to ``[_pos, event_count]``) as
      ``EVENT_DTYPE ndarray``, moving ``_pos`` to ``stop``;
    - ``_search(t)``: the index of the first event with time >= ``t`` (µs; sorted file assumed);
    - ``_time(i)``: the time of event ``i`` (µs) as a read from there returns it;

    and, when decoding carries state from event to event (DAT's time unwrapping), ``_moved()``: bring it to
    the new ``_pos`` after a seek.
    """

    _pos: int

    def _read(self, stop: int) -> np.ndarray:
        raise NotImplementedError

    def _search(self, t: int) -> int:
        raise NotImplementedError

    def _time(self, i: int) -> int:
        raise NotImplementedError

    def _moved(self) -> None:
        """Nothing to do: no decoder state."""

    def seek_time(self, t: int) -> None:
        """Position at the first event with time >= ``t`` (µs); ``current_time = t``."""
        self._pos = 0  # a search from the start of the file
        self._pos = self._search(int(t))
        self._moved()
        self.current_time = int(t)

    def seek_event(self, n: int) -> None:
        """Position at event index ``n`` (0 <= n <= event_count); ``current_time`` = its time (or, at the
        end, the last time).

        Raises:
            ValueError: ``n`` out of range.
        """
        if not 0 <= int(n) <= self.event_count:
            raise ValueError(f"{self.path}: seek_event({n}) out of range [0, {self.event_count}]")
        self._pos = int(n)
        self._moved()
        self.current_time = self._time(self._pos) if self._pos < self.event_count else self.duration

    def _window_stop(self, delta_t: int) -> tuple[int, int]:
        """``(end, stop)``: the window end ``current_time + delta_t`` (µs) and the index of its first event
        past the window (never before the read position)."""
        end = self.current_time + self._check_delta_t(delta_t)
        return end, max(self._search(end), self._pos)

    @property
    def done(self) -> bool:
        """True when every event has been returned."""
        return self._pos >= self.event_count

    @property
    def position(self) -> int:
        """Index of the next event to be returned."""
        return self._pos

    def load_n_events(self, n: int) -> np.ndarray:
        """Next ``n`` events (fewer at the end): ``EVENT_DTYPE ndarray[<=n]``; ``current_time`` = the time
        of the last one.

        Raises:
            ValueError: ``n < 0``.
        """
        events = self._read(self._pos + self._check_n(n))
        if events.size:
            self.current_time = int(events["t"][-1])
        return events

    def load_delta_t(self, delta_t: int) -> np.ndarray:
        """Events from the read position with ``t < current_time + delta_t`` (µs), then
        ``current_time += delta_t``. Returns ``EVENT_DTYPE ndarray[n]``.

        Raises:
            ValueError: ``delta_t <= 0``.
        """
        end, stop = self._window_stop(delta_t)
        events = self._read(stop)
        self.current_time = end
        return events

    def _load_window(self, delta_t: int, max_events: int | None) -> np.ndarray:
        """``load_delta_t`` that counts the window's events (``_search``) before decoding them."""
        _, stop = self._window_stop(delta_t)
        if max_events is not None and stop - self._pos > max_events:
            raise self._window_too_large(self.current_time, delta_t, stop - self._pos, max_events)
        return self.load_delta_t(delta_t)

    def _delta_t_pieces(self, delta_t: int, max_events: int) -> Iterator[tuple[np.ndarray, bool]]:
        """The window's events (counted by ``_search``) decoded ``max_events`` at a time."""
        end, stop = self._window_stop(delta_t)
        while True:
            piece = self._read(min(stop, self._pos + max_events))
            last = self._pos >= stop
            if last:
                self.current_time = end
            yield piece, last
            if last:
                return


def _interruptible(pieces: Iterator[tuple[np.ndarray, bool]]) -> Iterator[tuple[np.ndarray, bool]]:
    """``pieces``, with a Ctrl-C that Python dropped raised before each (:mod:`evdet.io.interrupts`)."""
    for item in pieces:
        check_interrupt()
        yield item
