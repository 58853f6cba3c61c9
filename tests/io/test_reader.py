"""evdet.io.reader: the EventReader base (windows, argument checks, context manager) and the sort step."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from evdet.io.dtypes import EVENT_DTYPE
from evdet.io.reader import EventReader, sort_events_with_warning


def _events(ts) -> np.ndarray:
    ev = np.zeros(len(ts), dtype=EVENT_DTYPE)
    ev["t"] = ts
    ev["x"] = np.arange(len(ts))
    return ev


class _MemReader(EventReader):
    """In-memory reader following the subclass contract."""

    def __init__(self, events: np.ndarray, path: str = "mem.dat") -> None:
        self.events = events
        self.path = Path(path)
        self.current_time = 0
        self.closed = False

    def _infer_geometry(self) -> tuple[int, int]:
        return 5, 7

    @property
    def done(self) -> bool:
        return self.events.size == 0 or self.current_time > int(self.events["t"][-1])

    def seek_time(self, t: int) -> None:
        self.current_time = int(t)

    def load_delta_t(self, delta_t: int) -> np.ndarray:
        delta_t = self._check_delta_t(delta_t)
        t = self.events["t"]
        sel = (t >= self.current_time) & (t < self.current_time + delta_t)
        self.current_time += delta_t
        return self.events[sel]

    def close(self) -> None:
        self.closed = True


def test_iter_windows_covers_every_event_once():
    ev = _events([0, 3, 10, 11, 25, 47])
    reader = _MemReader(ev)
    windows = list(reader.iter_windows(10))
    assert [t0 for t0, _ in windows] == [0, 10, 20, 30, 40]  # last window partial but included
    assert [w.size for _, w in windows] == [2, 2, 1, 0, 1]
    np.testing.assert_array_equal(np.concatenate([w for _, w in windows]), ev)
    for t0, w in windows:
        assert np.all((w["t"] >= t0) & (w["t"] < t0 + 10))


def test_iter_windows_start_ts_and_empty_stream():
    reader = _MemReader(_events([0, 3, 10, 11, 25]))
    windows = list(reader.iter_windows(10, start_ts=5))
    assert [t0 for t0, _ in windows] == [5, 15, 25]
    assert [w["t"].tolist() for _, w in windows] == [[10, 11], [], [25]]
    assert list(_MemReader(_events([])).iter_windows(10)) == []


def test_argument_checks_name_the_file():
    reader = _MemReader(_events([1]), path="some/rec.raw")
    assert reader._check_n(3) == 3 and reader._check_n(0) == 0
    assert reader._check_delta_t(1) == 1
    with pytest.raises(ValueError, match=r"some/rec.raw: load_n_events needs n >= 0, got -1"):
        reader._check_n(-1)
    with pytest.raises(ValueError, match=r"some/rec.raw: load_delta_t needs delta_t > 0 µs, got 0"):
        reader._check_delta_t(0)
    with pytest.raises(ValueError, match="got -5"):
        list(reader.iter_windows(-5))


def test_geometry_and_context_manager():
    reader = _MemReader(_events([1]))
    assert (reader.height, reader.width) == (5, 7)
    with reader as r:
        assert r is reader and not reader.closed
    assert reader.closed
    with pytest.raises(NotImplementedError):
        _ = EventReader().height


def test_sort_events_with_warning_names_first_backward_step():
    ev = _events([5, 7, 6, 9, 2])
    with pytest.warns(UserWarning, match=r"^f.dat: timestamps not sorted "
                                         r"\(record 2 at X has t = 6 < previous\); sorting them$"):
        out = sort_events_with_warning(ev, "f.dat: timestamps", lambda i: f"record {i} at X")
    assert out["t"].tolist() == [2, 5, 6, 7, 9]
    assert out["x"].tolist() == [4, 0, 2, 1, 3]
    assert ev["t"].tolist() == [5, 7, 6, 9, 2]  # input not mutated


def test_sort_events_with_warning_is_stable():
    ev = _events([3, 1, 1, 3, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = sort_events_with_warning(ev, "w", str)
    assert len(caught) == 1 and "1 has t = 1" in str(caught[0].message)
    assert out["x"].tolist() == [1, 2, 4, 0, 3]
