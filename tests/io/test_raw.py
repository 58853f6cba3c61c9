"""Tests of evdet.io.raw: the streaming RawReader on real samples and synthetic EVT 2.0/3.0 files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from evdet.io.dtypes import EVENT_DTYPE
from evdet.io.raw import RawReader

pytestmark = pytest.mark.usefixtures("decode_path")  # numpy paths and numba kernels alike


def write_raw(path, header_lines, words: np.ndarray, extra: bytes = b""):
    header = "".join(f"% {line}\n" for line in header_lines).encode("ascii")
    path.write_bytes(header + words.tobytes() + extra)
    return path


def evt2_stream(rng, n: int, t0: int = 100_000, span: int = 200_000):
    """Sorted random events and their EVT 2.0 words."""
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["x"] = rng.integers(0, 300, n)
    ev["y"] = rng.integers(0, 200, n)
    ev["p"] = rng.integers(0, 2, n)
    ev["t"] = np.sort(rng.integers(t0, t0 + span, n))
    words, last = [], None
    for x, y, p, t in zip(ev["x"], ev["y"], ev["p"], ev["t"], strict=True):
        high = int(t) >> 6
        if high != last:
            words.append((8 << 28) | high)
            last = high
        words.append((int(p) << 28) | ((int(t) & 63) << 22) | (int(x) << 11) | int(y))
    return ev, np.array(words, dtype=np.uint32)


def test_real_evt2(real_data):
    with RawReader(real_data / "evt2_sample.raw") as r:
        assert r.format == "evt2"
        assert (r.height, r.width) == (480, 640) and not r.geometry_inferred  # from hal_plugin_gen3_fx3
        events = r.load_all()
        assert events.size == 539_481
        assert (events["t"].min(), events["t"].max()) == (1_317_888, 1_367_888)
        assert events["x"].max() == 599 and events["y"].max() == 475
        sizes = [ev.size for _, ev in r.iter_windows(10_000, start_ts=1_310_000)]
        assert sum(sizes) == 539_481 and len(sizes) == 6


def test_real_evt3(real_data):
    reference = np.load(real_data / "evt3_sample.npy")
    with RawReader(real_data / "evt3_sample.raw", chunk_words=4096, time_mode="expelliarmus") as r:
        assert r.format == "evt3"
        assert (r.height, r.width) == (720, 1280) and not r.geometry_inferred  # from hal_plugin_gen41_evk3
        chunks = []
        while not r.done:
            chunks.append(r.load_n_events(10_000))
        events = np.concatenate(chunks, dtype=EVENT_DTYPE)
        assert events.size == 219_596
        for field in ("t", "x", "y", "p"):
            np.testing.assert_array_equal(events[field].astype(np.int64), reference[field].astype(np.int64))
    with RawReader(real_data / "evt3_sample.raw") as r:  # default: the EVT 3.0 time rule
        events = r.load_all()
        assert events.size == 219_596
        np.testing.assert_array_equal(events["x"], reference["x"])
        assert (events["t"].min(), events["t"].max()) == (11_718_656, 11_727_457)


def test_streaming_api_matches_load_all(tmp_path, rng):
    events, words = evt2_stream(rng, 3000)
    path = write_raw(tmp_path / "a.raw", ["evt 2.0", "geometry 320x240"], words)
    with RawReader(path, chunk_words=97) as r:
        assert (r.height, r.width) == (240, 320) and not r.geometry_inferred
        np.testing.assert_array_equal(r.load_all(), events)
        windows = list(r.iter_windows(9_000, start_ts=95_000))
        assert windows[0][0] == 95_000 and windows[1][0] == 104_000
        for t0, ev in windows:
            assert np.all((ev["t"] >= t0) & (ev["t"] < t0 + 9_000))
        np.testing.assert_array_equal(np.concatenate([ev for _, ev in windows]), events)
        for t in (0, 150_000, 299_999, 10**9):
            r.seek_time(t)
            start = int(np.searchsorted(events["t"], t))
            assert r.current_time == t
            np.testing.assert_array_equal(r.load_n_events(50), events[start:start + 50])
        r.reset()
        assert r.current_time == 0
        first = r.load_n_events(10)
        np.testing.assert_array_equal(first, events[:10])
        assert r.current_time == events["t"][9]
        rest = r.load_delta_t(10**9)
        np.testing.assert_array_equal(rest, events[10:])
        assert r.done
        with pytest.raises(ValueError, match="delta_t"):
            r.load_delta_t(-5)
        with pytest.raises(ValueError, match="n >= 0"):
            r.load_n_events(-1)


def test_geometry_inferred_without_header_or_plugin(tmp_path, rng):
    events, words = evt2_stream(rng, 200)
    path = write_raw(tmp_path / "b.raw", ["evt 2.0", "plugin_name unknown_cam"], words)
    with RawReader(path, chunk_words=50) as r:
        assert r.geometry_inferred
        assert (r.height, r.width) == (events["y"].max() + 1, events["x"].max() + 1)
    with RawReader(path, height=480, width=640) as r:
        assert (r.height, r.width) == (480, 640) and not r.geometry_inferred
    path = write_raw(tmp_path / "c.raw", ["format EVT3;height=720;width=1280"], np.zeros(0, np.uint16))
    with RawReader(path) as r:
        assert r.format == "evt3" and (r.height, r.width) == (720, 1280)


def test_truncated_last_word(tmp_path, rng):
    events, words = evt2_stream(rng, 100)
    path = write_raw(tmp_path / "d.raw", ["evt 2.0"], words, extra=b"\x01\x02")
    offset = len(b"% evt 2.0\n") + 4 * words.size
    with pytest.warns(UserWarning, match=f"truncated EVT2 word at byte offset {offset}"):
        r = RawReader(path)
    np.testing.assert_array_equal(r.load_all(), events)


def test_unknown_word_type_names_file_and_offset(tmp_path):
    words = np.array([(8 << 28) | 5, (1 << 28) | 7, 3 << 28], dtype=np.uint32)
    path = write_raw(tmp_path / "e.raw", ["evt 2.0"], words)
    offset = len(b"% evt 2.0\n") + 8
    with RawReader(path) as r, pytest.raises(ValueError, match=f"e.raw: unknown EVT 2.0 .* offset {offset}"):
        r.load_all()


def test_bad_headers(tmp_path):
    path = write_raw(tmp_path / "f.raw", ["Date today"], np.zeros(4, np.uint32))
    with pytest.raises(ValueError, match="f.raw: not a Prophesee RAW file"):
        RawReader(path)
    path = write_raw(tmp_path / "g.raw", ["evt 4.0"], np.zeros(4, np.uint32))
    with pytest.raises(ValueError, match="unsupported EVT version '4.0'"):
        RawReader(path)
    path = write_raw(tmp_path / "h.raw", ["evt 3.0"], np.zeros(4, np.uint16))
    with pytest.raises(ValueError, match="time_mode"):
        RawReader(path, time_mode="nope")


def test_empty_raw_file(tmp_path):
    path = write_raw(tmp_path / "i.raw", ["evt 3.0", "geometry 1280x720"], np.zeros(0, np.uint16))
    with RawReader(path) as r:
        assert r.done
        assert r.load_all().size == 0 and r.load_all().dtype == EVENT_DTYPE
        assert r.load_delta_t(1000).size == 0
        assert list(r.iter_windows(1000)) == []


def test_unsorted_stream_warns_and_load_all_sorts(tmp_path):
    # EVT3: time low goes backwards with events in between -> unsorted times
    words = np.array([(0x8 << 12) | 1, (0x6 << 12) | 100, (0x2 << 12) | 5, (0x6 << 12) | 50,
                      (0x2 << 12) | 6], dtype=np.uint16)
    path = write_raw(tmp_path / "j.raw", ["evt 3.0"], words)
    with RawReader(path) as r:
        with pytest.warns(UserWarning, match="not sorted"):
            events = r.load_all()
        assert list(events["x"]) == [6, 5]
        with pytest.warns(UserWarning, match="not sorted"):
            r.load_n_events(2)


def th2(value: int) -> int:
    return (8 << 28) | value


def cd2(x: int, y: int, p: int, t_low: int) -> int:
    return (p << 28) | (t_low << 22) | (x << 11) | y


def assert_streaming_equals(path, events: np.ndarray) -> None:
    """Every reading path and chunk size of a RawReader gives ``events`` (sorted), warning-free after
    the first read of each reader (warned once)."""
    for chunk in (1, 2, 3, 5, 1 << 20):
        with RawReader(path, chunk_words=chunk) as r:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                np.testing.assert_array_equal(r.load_all(), events)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                for n in (1, 2, 7):
                    r.reset()
                    chunks = []
                    while not r.done:
                        chunks.append(r.load_n_events(n))
                    np.testing.assert_array_equal(np.concatenate(chunks), events)
                t0 = int(events["t"][0]) - 3
                for dt in (1, 64, 10**6):
                    windows = [ev for _, ev in r.iter_windows(dt, t0)]
                    np.testing.assert_array_equal(np.concatenate(windows), events)
                for t in np.unique(np.concatenate([events["t"], events["t"] + 1])):
                    r.seek_time(int(t))
                    np.testing.assert_array_equal(r.load_delta_t(10**12), events[events["t"] >= t])


def test_evt2_corrupt_time_high_does_not_move_the_stream(tmp_path):
    # time high 1000..1003 with two CD words each; the word for 1002 is corrupted to a jump of 2^27 + 9
    # (the return to 1003 was taken for a 34-bit wrap: the rest of the stream moved by 2^34 µs)
    words, lows = [], [5, 9, 5, 9, 20, 30, 5, 9]
    for k, high in enumerate((1000, 1001, 1002, 1003)):
        words += [th2(high if high != 1002 else 1002 + (1 << 27) + 9), cd2(k, 1, 1, lows[2 * k]),
                  cd2(k, 2, 0, lows[2 * k + 1])]
    path = write_raw(tmp_path / "th.raw", ["evt 2.0", "geometry 640x480"], np.array(words, np.uint32))
    expected = np.zeros(8, dtype=EVENT_DTYPE)
    expected["x"] = [0, 0, 1, 1, 2, 2, 3, 3]
    expected["y"] = [1, 2] * 4
    expected["p"] = [1, 0] * 4
    highs = [1000, 1000, 1001, 1001, 1001, 1001, 1003, 1003]  # the corrupt word's CD words keep 1001
    expected["t"] = [(h << 6) | low for h, low in zip(highs, lows, strict=True)]
    offset = len(b"% evt 2.0\n% geometry 640x480\n") + 4 * 6
    with RawReader(path) as r:
        message = (rf"th.raw: EV_TIME_HIGH word 0x{8 << 28 | 1002 + (1 << 27) + 9:08x} at byte offset "
                   rf"{offset} .* skipped as corrupt \(1 such")
        with pytest.warns(UserWarning, match=message):
            np.testing.assert_array_equal(r.load_all(), expected)
        r.load_n_events(100)
        assert r.skipped_corrupt == 1 and r.dropped_outside == 0
    assert_streaming_equals(path, expected)


def test_events_outside_geometry_dropped_evt2_and_evt3(tmp_path):
    words = np.array([th2(7), cd2(1, 1, 1, 0), cd2(320, 5, 1, 1), cd2(2, 240, 0, 2), cd2(319, 239, 0, 3)],
                     dtype=np.uint32)
    path = write_raw(tmp_path / "out2.raw", ["evt 2.0", "geometry 320x240"], words)
    message = r"out2.raw: 2 event\(s\) outside the 240x320 sensor geometry dropped .*byte offset 37\)"
    with RawReader(path) as r, pytest.warns(UserWarning, match=message):
        events = r.load_all()
    np.testing.assert_array_equal(events["x"], [1, 319])
    assert_streaming_equals(path, events)
    # EVT3: an EVT_ADDR_X and a vector crossing the right edge, and a row below the frame
    words = np.array([0x8 << 12 | 1, 0x6 << 12 | 2, 5, 0x2 << 12 | 318, 0x2 << 12 | 320, 0x3 << 12 | 316,
                      0x4 << 12 | 0b11111, 250, 0x2 << 12 | 3], dtype=np.uint16)
    path = write_raw(tmp_path / "out3.raw", ["evt 3.0", "geometry 320x240"], words)
    message = r"out3.raw: 3 event\(s\) outside the 240x320 sensor geometry dropped .*byte offset 37\)"
    with RawReader(path) as r, pytest.warns(UserWarning, match=message):
        events = r.load_all()
    np.testing.assert_array_equal(events["x"], [318, 316, 317, 318, 319])
    assert np.all(events["y"] == 5) and np.all(events["t"] == (1 << 12) | 2)
    assert_streaming_equals(path, events)
    with RawReader(path, height=2048, width=2048) as r, warnings.catch_warnings():
        warnings.simplefilter("error")
        assert r.load_all().size == 8


def test_real_evt2_sample_with_one_corrupt_time_high(tmp_path, real_data):
    data = (real_data / "evt2_sample.raw").read_bytes()
    header = RawReader(real_data / "evt2_sample.raw").data_offset
    words = np.frombuffer(data[header:], dtype="<u4").copy()
    with RawReader(real_data / "evt2_sample.raw") as r:
        clean = r.load_all()
    highs = np.flatnonzero(words >> 28 == 8)
    k = int(highs[highs.size // 2])
    group = np.flatnonzero(words[k + 1:int(highs[highs.size // 2 + 1])] >> 28 <= 1).size
    words[k] = (8 << 28) | ((int(words[k]) + (1 << 27) + 12345) & 0xFFFFFFF)  # a far jump, as in issue 12
    path = tmp_path / "corrupt.raw"
    path.write_bytes(data[:header] + words.tobytes())
    with RawReader(path, chunk_words=4096) as r:
        with pytest.warns(UserWarning, match=f"byte offset {header + 4 * k} .* skipped as corrupt"):
            events = r.load_all()
    assert events.size == clean.size and group > 0
    changed = np.flatnonzero(events["t"] != clean["t"])  # only the corrupt word's CD events (64 µs early)
    assert changed.size <= group and np.all(clean["t"][changed] - events["t"][changed] == 64)
    for field in ("x", "y", "p"):
        np.testing.assert_array_equal(events[field], clean[field])


def test_event_count_duration_position_and_seek_event(tmp_path, rng):
    ev, words = evt2_stream(rng, 3000)
    path = write_raw(tmp_path / "s.raw", ["evt 2.0", "geometry 320x240"], words)
    with RawReader(path, chunk_words=101) as r:
        assert r.event_count == ev.size and r.duration == int(ev["t"][-1])
        assert r.position == 0
        r.load_n_events(10)
        assert r.position == 10
        r.seek_time(int(ev["t"][1500]))
        assert r.position == int(np.searchsorted(ev["t"], ev["t"][1500]))
        for n in (0, 1, 777, ev.size - 1):
            r.seek_event(n)
            assert r.position == n and r.current_time == int(ev["t"][n])
            np.testing.assert_array_equal(r.load_n_events(5), ev[n:n + 5])
        r.seek_event(ev.size)
        assert r.done and r.current_time == int(ev["t"][-1])
        with pytest.raises(ValueError, match="out of range"):
            r.seek_event(ev.size + 1)


@pytest.mark.parametrize("time_mode", ["spec", "expelliarmus"])
def test_real_evt3_sample_with_one_corrupt_time_high(tmp_path, real_data, time_mode):
    # a far backward jump used to count as a 24-bit wrap: everything after it moved by 2^24 µs
    data = (real_data / "evt3_sample.raw").read_bytes()
    header = RawReader(real_data / "evt3_sample.raw").data_offset
    words = np.frombuffer(data[header:], dtype="<u2").copy()
    with RawReader(real_data / "evt3_sample.raw", time_mode=time_mode) as r:
        clean = r.load_all()
    highs = np.flatnonzero(words >> 12 == 0x8)
    k, k_next = int(highs[highs.size // 2]), int(highs[highs.size // 2 + 1])
    words[k] = (0x8 << 12) | ((int(words[k]) - 2100) & 0xFFF)
    path = tmp_path / "corrupt3.raw"
    path.write_bytes(data[:header] + words.tobytes())
    with RawReader(path, chunk_words=1000, time_mode=time_mode) as r:
        message = (rf"corrupt3.raw: EVT_TIME_HIGH word 0x{int(words[k]):04x} at byte offset {header + 2 * k} "
                   rf".* skipped as corrupt \(1 such")
        with pytest.warns(UserWarning, match=message):
            events = r.load_all()
        r.load_n_events(10**6)
        assert r.skipped_corrupt == 1
    assert events.size == clean.size
    changed = np.flatnonzero(events["t"] != clean["t"])  # at most the events up to the next time high
    group = int(np.flatnonzero(np.isin(words[k:k_next] >> 12, [0x2, 0x4, 0x5])).size) * 12
    assert changed.size <= group
    assert np.all(np.abs(events["t"][changed] - clean["t"][changed]) <= 4096)
    for field in ("x", "y", "p"):
        np.testing.assert_array_equal(events[field], clean[field])


def test_iter_windows_refuses_a_burst_above_max_events_with_bounded_memory(tmp_path):
    # 400 000 events at one timestamp (a burst), read in chunks of 10 000 words with max_events 50 000:
    # the error names the file and the window, and the reader never joined more than ~max_events events
    import tracemalloc

    n = 400_000
    words = np.concatenate([[th2(5)], np.full(n, cd2(3, 4, 1, 7)),
                            [th2(25), cd2(1, 1, 1, 0)]]).astype(np.uint32)
    path = write_raw(tmp_path / "burst.raw", ["evt 2.0", "geometry 640x480"], words)
    with RawReader(path, chunk_words=10_000) as r:
        assert [w.size for _, w in r.iter_windows(1000, max_events=None)] == [n, 1]
        tracemalloc.start()
        with pytest.raises(ValueError,
                           match=r"burst.raw: window \[0, 1000\) µs holds more than 50000 events"):
            list(r.iter_windows(1000, max_events=50_000))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 16 * 3 * 60_000 < 16 * n  # a whole window would take 16 * n bytes
