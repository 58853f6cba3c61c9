"""Tests of evdet.io.dat: DatReader, DatWriter, write_dat (the record codec: test_dat_records.py)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import evdet.io.dat as dat_module
from evdet.io.atomic import is_temporary
from evdet.io.dat import DatReader, DatWriter, write_dat
from evdet.io.dat_records import encode_dat_records
from evdet.io.dtypes import EVENT_DTYPE

pytestmark = pytest.mark.usefixtures("decode_path")  # numpy path and numba kernels alike

WRAP = 1 << 32


def random_events(rng, n: int, height: int = 480, width: int = 640, t0: int = 0, span: int = 1_000_000):
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["x"] = rng.integers(0, width, n)
    ev["y"] = rng.integers(0, height, n)
    ev["p"] = rng.integers(0, 2, n)
    ev["t"] = np.sort(rng.integers(t0, t0 + span, n))
    return ev


def test_real_ncars(real_data):
    with DatReader(real_data / "sample_ncars.dat") as r:
        assert r.event_count == 2009
        assert r.data_offset == 93
        assert r.event_type == 0
        assert r.time_range() == (0, 99952)
        assert r.duration == 99952
        assert r.geometry_inferred
        assert (r.height, r.width) == (42, 78)
        events = r.load_all()
        assert events["x"].max() == 77 and events["y"].max() == 41
        assert set(np.unique(events["p"])) == {0, 1}
        assert r.load_delta_t(10_000).size == 229
        assert r.current_time == 10_000
        r.seek_time(50_000)
        window = r.load_delta_t(20_000)
        assert window.size == 404
        assert (window["t"].min(), window["t"].max()) == (50_022, 69_985)
        sizes = [ev.size for _, ev in r.iter_windows(10_000)]
        assert sizes[0] == 229 and sum(sizes) == 2009 and len(sizes) == 10
    with DatReader(real_data / "sample_ncars.dat", height=240, width=304) as r:
        assert (r.height, r.width) == (240, 304) and not r.geometry_inferred


def test_write_read_roundtrip(tmp_path, rng):
    events = random_events(rng, 5000)
    path = tmp_path / "rec_td.dat"
    write_dat(path, events, 480, 640)
    assert not [p for p in tmp_path.iterdir() if is_temporary(p)]
    with DatReader(path) as r:
        assert (r.height, r.width) == (480, 640) and not r.geometry_inferred
        assert r.event_type == 12
        assert r.event_count == 5000
        np.testing.assert_array_equal(r.load_all(), events)
        text = path.read_bytes()[:200]
        assert b"% Version 2\n" in text and b"% Height 480\n" in text and b"% Width 640\n" in text


def test_reading_api_consistency(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(dat_module, "_INDEX_STRIDE", 64)  # exercise the coarse index on a small file
    events = random_events(rng, 3000, t0=12_345, span=500_000)
    path = tmp_path / "a.dat"
    write_dat(path, events, 480, 640)
    with DatReader(path) as r:
        chunks = []
        while not r.done:
            chunks.append(r.load_n_events(333))
        assert [c.size for c in chunks][:-1] == [333] * 9
        np.testing.assert_array_equal(np.concatenate(chunks), events)
        assert r.current_time == events["t"][-1]
        windows = list(r.iter_windows(7_000, start_ts=10_000))
        for t0, ev in windows:
            assert np.all((ev["t"] >= t0) & (ev["t"] < t0 + 7_000))
        assert windows[0][0] == 10_000 and windows[1][0] == 17_000
        np.testing.assert_array_equal(np.concatenate([ev for _, ev in windows]), events)
        for t in (0, 12_345, 100_000, 400_001, 10**9):
            r.seek_time(t)
            expected = int(np.searchsorted(events["t"], t))
            assert r.position == expected
            assert r.current_time == t
            np.testing.assert_array_equal(r.load_n_events(5), events[expected:expected + 5])
        r.seek_event(1234)
        assert r.current_time == events["t"][1234]
        np.testing.assert_array_equal(r.load_n_events(3), events[1234:1237])
        r.seek_event(3000)
        assert r.done
        with pytest.raises(ValueError, match="out of range"):
            r.seek_event(3001)
        with pytest.raises(ValueError, match="delta_t"):
            r.load_delta_t(0)
        with pytest.raises(ValueError, match="n >= 0"):
            r.load_n_events(-1)
        r.reset()
        assert r.position == 0 and r.current_time == 0


def test_32bit_wrap_roundtrip(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(dat_module, "_INDEX_STRIDE", 16)
    events = random_events(rng, 400, t0=WRAP - 200_000, span=2_000_000)
    events["t"][-50:] += WRAP  # a jump of ~2^32 µs between two events
    path = tmp_path / "wrap.dat"
    # gap of ~2^32 between the blocks is too large: writer must refuse it
    with pytest.raises(ValueError, match="2\\^31"):
        write_dat(path, events, 480, 640)
    assert not path.exists() and not [p for p in tmp_path.iterdir() if is_temporary(p)]
    # a steady stream crossing two wraps (neither between its first two nor its last two records: there a
    # wrap cannot be told from a corrupt record, see test_isolated_time_jump_is_skipped)
    t = np.linspace(WRAP - 10**8, 2 * WRAP + 10**8, 600).astype(np.int64)
    events = random_events(rng, 600)
    events["t"] = t
    write_dat(path, events, 480, 640)
    with DatReader(path) as r:  # stored times really are wrapped to 32 bits
        assert int(np.asarray(r._records[:, 0]).max()) < WRAP and r._records[-1, 0] == t[-1] - 2 * WRAP
    with DatReader(path) as r:
        np.testing.assert_array_equal(r.load_all(), events)
        assert r.duration == t[-1]
        assert r.time_range() == (t[0], t[-1])
        target = int(t[400]) - 1
        r.seek_time(target)
        assert r.position == 400
        np.testing.assert_array_equal(r.load_n_events(10), events[400:410])
        r.seek_event(450)
        np.testing.assert_array_equal(r.load_delta_t(10**9), events[(t >= t[450]) & (t < t[450] + 10**9)])


def test_writer_append_and_validation(tmp_path, rng):
    events = random_events(rng, 1000)
    path = tmp_path / "b.dat"
    with DatWriter(path, 480, 640) as w:
        w.write(events[:400])
        assert not path.exists()  # only the temporary file exists while writing
        w.write(events[400:])
        with pytest.raises(ValueError, match="earlier than the last"):
            w.write(events[:1])
    with DatReader(path) as r:
        np.testing.assert_array_equal(r.load_all(), events)
    bad = events.copy()
    bad["x"][7] = 640
    with pytest.raises(ValueError, match="event 7 has x = 640"):
        write_dat(tmp_path / "c.dat", bad, 480, 640)
    bad = events.copy()
    bad["p"][3] = 2
    with pytest.raises(ValueError, match="event 3 has p = 2"):
        write_dat(tmp_path / "c.dat", bad, 480, 640)
    bad = events.copy()
    bad["t"][0] = -1
    with pytest.raises(ValueError, match="negative t"):
        write_dat(tmp_path / "c.dat", bad, 480, 640)
    with pytest.raises(ValueError, match="geometry"):
        DatWriter(tmp_path / "d.dat", 0, 640)
    assert not (tmp_path / "c.dat").exists() and not (tmp_path / "c.dat.tmp").exists()


def test_writer_interrupted_leaves_nothing(tmp_path, rng):
    path = tmp_path / "e.dat"
    with pytest.raises(RuntimeError), DatWriter(path, 480, 640) as w:
        w.write(random_events(rng, 10))
        raise RuntimeError("interrupted")
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def test_writer_sorts_unsorted_with_warning(tmp_path, rng):
    events = random_events(rng, 100)
    shuffled = events[rng.permutation(100)]
    with pytest.warns(UserWarning, match="not sorted"):
        write_dat(tmp_path / "f.dat", shuffled, 480, 640)
    with DatReader(tmp_path / "f.dat") as r:
        np.testing.assert_array_equal(r.load_all()["t"], events["t"])


def test_unsorted_file_load_all_sorts_with_warning(tmp_path, rng):
    events = random_events(rng, 50)
    records = encode_dat_records(events[::-1])  # file in decreasing time order
    path = tmp_path / "g.dat"
    path.write_bytes(b"% Version 2\n" + bytes([12, 8]) + records.tobytes())
    with DatReader(path) as r:
        with pytest.warns(UserWarning, match="record 1 at byte offset 22"):
            out = r.load_all()
        np.testing.assert_array_equal(out["t"], events["t"])
        with pytest.warns(UserWarning, match="not sorted"):
            r.load_n_events(10)


def test_unsorted_file_warns_before_any_read(tmp_path, rng):
    # before: the duration (the last record's time) and seeks trusted sorted times without a word, so
    # evdet-detect processed 1 bin of a reversed 1 s recording and said nothing
    events = random_events(rng, 50)
    records = encode_dat_records(events[::-1])
    path = tmp_path / "r.dat"
    path.write_bytes(b"% Version 2\n" + bytes([12, 8]) + records.tobytes())
    with DatReader(path) as r:
        with pytest.warns(UserWarning, match=r"r\.dat: timestamps are not sorted \(record 49, byte "
                                             r"offset \d+, is earlier than record 0\); windowed reads, seeks "
                                             "and the duration are inexact"):
            r.time_range()
    write_dat(tmp_path / "s.dat", events, 480, 640)
    with DatReader(tmp_path / "s.dat") as r, warnings.catch_warnings():
        warnings.simplefilter("error")
        assert r.time_range() == (int(events["t"][0]), int(events["t"][-1]))


def test_truncated_last_record(tmp_path, rng):
    events = random_events(rng, 20)
    path = tmp_path / "h.dat"
    write_dat(path, events, 480, 640)
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\x01\x02\x03")
    with pytest.warns(UserWarning, match=f"truncated record at byte offset {size}"):
        r = DatReader(path)
    assert r.event_count == 20
    np.testing.assert_array_equal(r.load_all(), events)


def test_unknown_event_type_and_size(tmp_path):
    header = b"% Version 2\n"
    path = tmp_path / "i.dat"
    path.write_bytes(header + bytes([5, 8]) + bytes(16))
    with pytest.raises(ValueError, match=f"i.dat: unknown DAT event type 5 at byte offset {len(header)}"):
        DatReader(path)
    path.write_bytes(header + bytes([12, 16]) + bytes(32))
    with pytest.raises(ValueError, match=f"event size 16 at byte offset {len(header) + 1}"):
        DatReader(path)


def test_non_dat_files(tmp_path):
    raw = tmp_path / "j.dat"
    raw.write_bytes(b"% evt 3.0\n" + bytes(8))
    with pytest.raises(ValueError, match="not a DAT file.*EVT 3.0"):
        DatReader(raw)
    junk = tmp_path / "k.dat"
    junk.write_bytes(np.full(16, 0xFFFFFFFF, dtype=np.uint32).tobytes())
    with pytest.raises(ValueError, match="not a DAT file.*byte offset 4"):
        DatReader(junk)
    with pytest.raises(FileNotFoundError):
        DatReader(tmp_path / "missing.dat")


def test_legacy_headerless_file(tmp_path, rng):
    events = random_events(rng, 30, height=100, width=200)
    path = tmp_path / "legacy.dat"
    path.write_bytes(encode_dat_records(events).tobytes())
    with DatReader(path) as r:
        assert r.data_offset == 0 and r.event_type == 0
        np.testing.assert_array_equal(r.load_all(), events)
        assert r.geometry_inferred
        assert r.width == events["x"].max() + 1 and r.height == events["y"].max() + 1


@pytest.mark.parametrize("content", [b"", b"% Version 2\n% Height 10\n% Width 20\n",
                                     b"% Version 2\n" + bytes([12, 8])])
def test_empty_files(tmp_path, content):
    path = tmp_path / "empty.dat"
    path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with DatReader(path) as r:
            assert r.event_count == 0 and r.done
            assert r.load_all().size == 0 and r.load_all().dtype == EVENT_DTYPE
            assert r.load_delta_t(1000).size == 0
            assert r.load_n_events(10).size == 0
            assert list(r.iter_windows(1000)) == []
            assert r.duration == 0
            r.seek_time(5)
            assert r.position == 0


def write_records(path, times, words, geometry: tuple[int, int] | None = (480, 640)) -> int:
    """A DAT file of hand-made records (time words, packed x/y/p words); returns its data offset."""
    header = b"% Version 2\n" + (b"" if geometry is None else
                                 f"% Height {geometry[0]}\n% Width {geometry[1]}\n".encode())
    records = np.stack([np.asarray(times, dtype=np.uint32), np.asarray(words, dtype=np.uint32)], axis=1)
    path.write_bytes(header + bytes([12, 8]) + records.tobytes())
    return len(header) + 2


def assert_streaming_equals(r: DatReader, events: np.ndarray) -> None:
    """Every reading path of ``r`` gives ``events`` (sorted) across the corrupt records."""
    for n in (1, 2, 3, 7):
        r.reset()
        chunks = []
        while not r.done:
            chunks.append(r.load_n_events(n))
        np.testing.assert_array_equal(np.concatenate(chunks), events)
    t0 = int(events["t"][0]) - 5
    for dt in (1, 500, 1000, 10**6):
        np.testing.assert_array_equal(np.concatenate([ev for _, ev in r.iter_windows(dt, t0)]), events)
    for t in np.unique(np.concatenate([events["t"], events["t"] + 1, [0]])):
        r.seek_time(int(t))
        np.testing.assert_array_equal(r.load_delta_t(10**12), events[events["t"] >= t])


def test_isolated_time_jump_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(dat_module, "_INDEX_STRIDE", 2)  # the coarse index samples the corrupt record
    times = [1000, 2000, 0xF0000000, 3000, 4000, 5000]
    words = [1, 2, 3, 4, 5, 6]  # x = 1..6, y = 0, p = 0
    path = tmp_path / "jump.dat"
    offset = write_records(path, times, words)
    expected = np.zeros(5, dtype=EVENT_DTYPE)
    expected["x"] = [1, 2, 4, 5, 6]
    expected["t"] = [1000, 2000, 3000, 4000, 5000]
    with DatReader(path) as r:
        with pytest.warns(UserWarning, match=rf"jump.dat: record 2 at byte offset {offset + 16} has time "
                                             r"word 0xf0000000 .*skipped as corrupt \(1 such record"):
            np.testing.assert_array_equal(r.load_all(), expected)
        assert r.time_range() == (1000, 5000) and r.duration == 5000  # was 2^32 + 5000
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # warned once per reader
            assert_streaming_equals(r, expected)
            r.reset()
            r.load_n_events(4)
            assert r.skipped_corrupt == 1
            r.seek_event(3)
            assert r.current_time == 3000 and r.skipped_corrupt == 0
            np.testing.assert_array_equal(r.load_n_events(10), expected[2:])


@pytest.mark.parametrize("where", ["first", "last"])
def test_jump_at_either_end_is_corrupt(tmp_path, monkeypatch, where):
    monkeypatch.setattr(dat_module, "_INDEX_STRIDE", 2)
    times = [1000, 2000, 3000, 4000, 5000]
    times[0 if where == "first" else -1] = 0xF0000000 if where == "first" else 0xF0000005
    path = tmp_path / "end.dat"
    write_records(path, times, [1, 2, 3, 4, 5])
    with DatReader(path) as r:
        with pytest.warns(UserWarning, match="skipped as corrupt"):
            events = r.load_all()
        kept = [2000, 3000, 4000, 5000] if where == "first" else [1000, 2000, 3000, 4000]
        np.testing.assert_array_equal(events["t"], kept)
        assert r.time_range() == (kept[0], kept[-1])
        assert_streaming_equals(r, events)


def test_wrap_is_kept_when_times_continue(tmp_path, monkeypatch):
    monkeypatch.setattr(dat_module, "_INDEX_STRIDE", 2)
    times = [WRAP - 3000, WRAP - 2000, WRAP - 1000, 500, 1500, 2500]
    path = tmp_path / "wrap2.dat"
    write_records(path, times, [1, 2, 3, 4, 5, 6])
    with DatReader(path) as r, warnings.catch_warnings():
        warnings.simplefilter("error")
        events = r.load_all()
        np.testing.assert_array_equal(events["t"], [WRAP - 3000, WRAP - 2000, WRAP - 1000, WRAP + 500,
                                                     WRAP + 1500, WRAP + 2500])
        assert r.duration == WRAP + 2500
        assert_streaming_equals(r, events)


def test_events_outside_geometry_are_dropped(tmp_path, monkeypatch):
    monkeypatch.setattr(dat_module, "_INDEX_STRIDE", 2)
    xy = [(1, 1), (640, 1), (2, 2), (3, 480), (639, 479), (5000, 9000)]
    words = [x | (y << 14) for x, y in xy]
    times = [100, 200, 300, 400, 500, 600]
    path = tmp_path / "outside.dat"
    offset = write_records(path, times, words)
    with DatReader(path) as r:
        message = (rf"outside.dat: 3 event\(s\) outside the 480x640 sensor geometry dropped .*record 1 at "
                   rf"byte offset {offset + 8}, x = 640, y = 1")
        with pytest.warns(UserWarning, match=message):
            events = r.load_all()
        np.testing.assert_array_equal(events["x"], [1, 2, 639])
        np.testing.assert_array_equal(events["t"], [100, 300, 500])
        assert_streaming_equals(r, events)
        r.reset()
        r.load_n_events(6)
        assert r.dropped_outside == 3
    with DatReader(path, height=10_000, width=6000) as r, warnings.catch_warnings():
        warnings.simplefilter("error")
        assert r.load_all().size == 6  # inside the caller's geometry
    write_records(path, times, words, geometry=None)
    with DatReader(path) as r, warnings.catch_warnings():
        warnings.simplefilter("error")
        assert r.geometry_inferred and r.load_all().size == 6  # inferred geometry holds every event


def test_real_ncars_with_one_corrupt_record(tmp_path, real_data):
    data = bytearray((real_data / "sample_ncars.dat").read_bytes())
    with DatReader(real_data / "sample_ncars.dat") as r:
        clean, offset = r.load_all(), r.data_offset
    data[offset + 8 * 1000:offset + 8 * 1000 + 4] = np.uint32(0xF0000000).tobytes()
    path = tmp_path / "corrupt.dat"
    path.write_bytes(bytes(data))
    with DatReader(path) as r:
        message = f"record 1000 at byte offset {offset + 8000} .* skipped as corrupt"
        with pytest.warns(UserWarning, match=message):
            np.testing.assert_array_equal(r.load_all(), np.delete(clean, 1000))
        assert r.duration == 99952


def test_real_ncars_with_one_outlier_record(tmp_path, real_data):
    # 0x7FFFFFFF among times below 0.1 s is less than 2^31 away (no jump) but an outlier: before, the
    # recording stretched to 35.8 min and its conversion wrote 42 950 frames
    from evdet.preprocessing.convert import generate_hdf5

    data = bytearray((real_data / "sample_ncars.dat").read_bytes())
    with DatReader(real_data / "sample_ncars.dat") as r:
        clean, offset = r.load_all(), r.data_offset
    data[offset + 8 * 1000:offset + 8 * 1000 + 4] = np.uint32(0x7FFFFFFF).tobytes()
    path = tmp_path / "outlier_td.dat"
    path.write_bytes(bytes(data))
    with DatReader(path) as r:
        with pytest.warns(UserWarning, match=f"record 1000 at byte offset {offset + 8000} .* skipped"):
            np.testing.assert_array_equal(r.load_all(), np.delete(clean, 1000))
        assert r.duration == 99952
    with pytest.warns(UserWarning, match="skipped as corrupt"):
        out = generate_hdf5(path, tmp_path / "h5", delta_t=10_000, progress=False)
    import h5py

    with h5py.File(out[0], "r") as f:
        assert f["data"].shape[0] == 10


def test_iter_windows_refuses_a_window_above_max_events_before_decoding(tmp_path):
    events = np.zeros(3000, dtype=EVENT_DTYPE)
    events["t"][2000:] = 5000  # 2000 events at t = 0, 1000 at t = 5000
    write_dat(tmp_path / "burst.dat", events, height=10, width=10)
    with DatReader(tmp_path / "burst.dat") as r:
        assert [w.size for _, w in r.iter_windows(1000, max_events=2000)][::5] == [2000, 1000]
        with pytest.raises(ValueError, match=r"burst.dat: window \[0, 1000\) µs holds 2000 events, more "
                                             r"than max_events = 1999"):
            next(r.iter_windows(1000, max_events=1999))
