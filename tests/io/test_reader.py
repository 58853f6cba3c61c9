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


def assert_pieces_join_to_windows(open_reader, delta_t: int, max_events: int, start_ts: int = 0) -> int:
    """``iter_window_pieces`` cuts exactly the windows of ``iter_windows`` (max_events None) into pieces of
    at most ``max_events`` events, the last flagged; returns the largest piece."""
    with open_reader() as r:
        windows = list(r.iter_windows(delta_t, start_ts, max_events=None))
    with open_reader() as r:
        pieces = list(r.iter_window_pieces(delta_t, start_ts, max_events=max_events))
        assert r.done
    groups, current = [], []
    for t0, piece, last in pieces:
        assert piece.size <= max_events and piece.dtype == EVENT_DTYPE
        current.append((t0, piece))
        if last:
            assert len({t for t, _ in current}) == 1
            groups.append((t0, np.concatenate([p for _, p in current])))
            current = []
    assert current == []  # the stream ends with a last piece
    assert [t0 for t0, _ in groups] == [t0 for t0, _ in windows]
    for (_, got), (_, want) in zip(groups, windows, strict=True):
        np.testing.assert_array_equal(got, want)
    largest = max(p.size for _, p, _ in pieces)
    assert largest == min(max_events, max(w.size for _, w in windows))  # pieces are as full as allowed
    return largest


def test_window_pieces_default_cuts_the_loaded_window():
    ev = _events([0, 1, 2, 3, 4, 11, 25])
    assert assert_pieces_join_to_windows(lambda: _MemReader(ev), 10, 2) == 2
    got = [(t0, list(p["t"]), last) for t0, p, last in _MemReader(ev).iter_window_pieces(10, max_events=2)]
    assert got == [(0, [0, 1], False), (0, [2, 3], False), (0, [4], True), (10, [11], True), (20, [25], True)]
    with pytest.raises(ValueError, match=r"mem.dat: window pieces need max_events >= 1, got 0"):
        next(_MemReader(ev).iter_window_pieces(10, max_events=0))


@pytest.mark.parametrize("fmt", ["dat", "evt2", "evt21", "h5"])
@pytest.mark.parametrize("delta_t, max_events, start_ts", [(10_000, 700, 0), (1000, 1, 50_000),
                                                            (200_000, 4096, 0), (7_000, 3000, 3)])
def test_window_pieces_of_bursts_join_to_the_windows(burst_recording, fmt, delta_t, max_events, start_ts):
    from evdet.io.read import open_events

    events, paths = burst_recording
    assert_pieces_join_to_windows(lambda: open_events(paths[fmt]), delta_t, max_events, start_ts)
    with open_events(paths[fmt]) as r:  # the same reader serves iter_windows again after the pieces
        list(r.iter_window_pieces(delta_t, max_events=max_events))
        again = [w for _, w in r.iter_windows(delta_t, max_events=None)]
        np.testing.assert_array_equal(np.concatenate(again), events)


@pytest.mark.parametrize("name, max_events", [("sample_ncars.dat", 97), ("evt2_sample.raw", 997),
                                              ("evt3_sample.raw", 997)])
def test_window_pieces_join_to_the_windows_on_real_recordings(real_data, name, max_events):
    from evdet.io.read import open_events

    path = real_data / name
    with open_events(path) as r:
        t0 = r.time_range()[0] // 1000 * 1000
    assert assert_pieces_join_to_windows(lambda: open_events(path), 5_000, max_events, t0) == max_events


@pytest.mark.parametrize("fmt", ["dat", "evt2", "evt21", "h5"])
def test_reader_stays_usable_after_the_max_events_error(burst_recording, fmt):
    from evdet.io.raw import RawReader
    from evdet.io.read import open_events

    events, paths = burst_recording
    # RAW: small chunks, so that the reader stops decoding inside the burst (before the window's end)
    with (RawReader(paths[fmt], chunk_words=500) if fmt.startswith("evt") else open_events(paths[fmt])) as r:
        windows = r.iter_windows(1000, max_events=2000)
        with pytest.raises(ValueError, match=r"window \[0, 1000\) µs holds (3\d{3}|more than 2000) events"):
            next(windows)
        # the read position is the start of the refused window and nothing decoded was lost
        assert (r.position, r.current_time) == (0, 0)
        np.testing.assert_array_equal(r.load_n_events(events.size), events)



def test_default_refusal_rewinds_to_the_window_start():
    ev = _events([0, 1, 2, 3, 14, 15])
    r = _MemReader(ev)
    windows = r.iter_windows(10, max_events=3)
    with pytest.raises(ValueError, match=r"mem.dat: window \[0, 10\) µs holds 4 events, more than "
                                         r"max_events = 3"):
        next(windows)
    assert r.current_time == 0
    np.testing.assert_array_equal(r.load_delta_t(10), ev[:4])  # the refused window is still there


@pytest.mark.parametrize("fmt", ["dat", "evt2"])
def test_window_pieces_of_a_huge_burst_stay_within_bounded_memory(tmp_path, fmt):
    # 600 000 events at one timestamp (9.6 MB as one window), streamed in pieces of 20 000 events with
    # RAW chunks of 10 000 words: the traced peak stays within a few pieces, whatever the window size
    import tracemalloc

    from evdet.io.dat import DatReader, write_dat
    from evdet.io.raw import RawReader

    n, max_events = 600_000, 20_000
    if fmt == "dat":
        events = np.zeros(n + 1, dtype=EVENT_DTYPE)
        events["x"], events["y"], events["p"], events["t"] = 3, 4, 1, 7
        events["t"][-1] = 5000
        write_dat(tmp_path / "b.dat", events, height=10, width=10)
        open_reader = lambda: DatReader(tmp_path / "b.dat")  # noqa: E731
    else:
        words = np.full(n + 3, (1 << 28) | (7 << 22) | (3 << 11) | 4, dtype=np.uint32)
        words[0], words[-2], words[-1] = 8 << 28, (8 << 28) | 78, (1 << 28) | (8 << 22)  # last at 5000 µs
        (tmp_path / "b.raw").write_bytes(b"% evt 2.0\n% geometry 10x10\n% end\n" + words.tobytes())
        open_reader = lambda: RawReader(tmp_path / "b.raw", chunk_words=10_000)  # noqa: E731
    with open_reader() as r:
        r.load_n_events(10)  # index, numba kernels: loaded outside the traced part
        r.seek_time(0)
        tracemalloc.start()
        pieces = r.iter_window_pieces(1000, max_events=max_events)
        sizes = [(t0, piece.size, last) for t0, piece, last in pieces]
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert sum(size for t0, size, _ in sizes if t0 == 0) == n
    assert sizes[-1] == (5000, 1, True) and max(size for _, size, _ in sizes) == max_events
    assert peak < 16 * 4 * (max_events + 10_000) < 16 * n / 4
