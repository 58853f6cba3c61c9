"""Event HDF5 files: RVT's download mirror (Blosc) and DSEC's ``events.h5`` (``t_offset``, ``ms_to_idx``)."""

from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest

import evdet.io.event_h5 as event_h5
from evdet.io.boxes import label_path_for, recording_stem
from evdet.io.dat import write_dat
from evdet.io.dtypes import EVENT_DTYPE, concatenate_events
from evdet.io.event_h5 import EventH5Reader
from evdet.io.read import detect_format, is_event_file, open_events, read_events

H, W = 60, 80
BLOSC = hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE)


def make_events(rng: np.random.Generator, n: int = 6000, duration: int = 300_000) -> np.ndarray:
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, duration, n))
    ev["x"] = rng.integers(0, W, n)
    ev["y"] = rng.integers(0, H, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def write_rvt(path: Path, ev: np.ndarray, signed_p: bool = True, geometry: tuple[int, int] | None = (H, W),
              chunks: int = 512) -> Path:
    """RVT's mirror layout: ``events/{x u2, y u2, p i1, t i8, height, width, divider}``, Blosc zstd."""
    with h5py.File(path, "w") as f:
        g = f.create_group("events")
        p = ev["p"].astype(np.int8)
        for k, v in (("x", ev["x"].astype(np.uint16)), ("y", ev["y"].astype(np.uint16)),
                     ("p", 2 * p - 1 if signed_p else p), ("t", ev["t"].astype(np.int64))):
            g.create_dataset(k, data=v, chunks=(min(chunks, max(v.size, 1)),), maxshape=(None,), **BLOSC)
        if geometry is not None:
            g.create_dataset("height", data=np.int64(geometry[0]))
            g.create_dataset("width", data=np.int64(geometry[1]))
        g.create_dataset("divider", data=np.int64(1))
    return path


def write_dsec(path: Path, ev: np.ndarray, t_offset: int, ms_to_idx: np.ndarray | None = None) -> Path:
    """DSEC's layout: ``events/{p u1, t u4, x u2, y u2}`` (t relative), ``t_offset`` (i8), ``ms_to_idx``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = ev["t"].astype(np.int64)
    if ms_to_idx is None:
        ms_to_idx = np.searchsorted(t, 1000 * np.arange(int(t[-1]) // 1000 + 1), side="left")
    with h5py.File(path, "w") as f:
        g = f.create_group("events")
        g.create_dataset("p", data=ev["p"].astype(np.uint8), chunks=True)
        g.create_dataset("t", data=t.astype(np.uint32), chunks=True)
        g.create_dataset("x", data=ev["x"].astype(np.uint16), chunks=True)
        g.create_dataset("y", data=ev["y"].astype(np.uint16), chunks=True)
        f.create_dataset("t_offset", data=np.int64(t_offset))
        f.create_dataset("ms_to_idx", data=np.asarray(ms_to_idx, dtype=np.uint64))
    return path


def window(ev: np.ndarray, t0: int, t1: int) -> np.ndarray:
    return ev[(ev["t"] >= t0) & (ev["t"] < t1)]


def assert_events_equal(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == EVENT_DTYPE and got.shape == want.shape
    for k in EVENT_DTYPE.names:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


@pytest.mark.parametrize("signed_p", [True, False])
def test_rvt_mirror_file_reads_exactly(tmp_path, rng, signed_p):
    ev = make_events(rng)
    path = write_rvt(tmp_path / "rec_td.dat.h5", ev, signed_p=signed_p)
    assert detect_format(path) == "hdf5" and is_event_file(path)
    assert_events_equal(read_events(path), ev)  # p -1/+1 (or 0/1) -> 0/1
    with open_events(path) as r:
        assert isinstance(r, EventH5Reader) and r.layout == "rvt" and r.time_origin == 0
        assert (r.height, r.width) == (H, W) and not r.geometry_inferred
        assert r.event_count == ev.size and r.time_range() == (int(ev["t"][0]), int(ev["t"][-1]))
        assert r.duration == int(ev["t"][-1])
    assert recording_stem(path) == "rec" and label_path_for(path) == tmp_path / "rec_bbox.npy"
    assert recording_stem(tmp_path / "rec_td.h5") == "rec"  # 1Mpx mirror


@pytest.mark.parametrize("search", ["streaming", "binary"])
def test_windows_seeks_and_counts_match_a_numpy_reference(tmp_path, rng, monkeypatch, search):
    if search == "binary":  # no look-ahead at the read position, tiny final slices: every seek bisects
        monkeypatch.setattr(event_h5, "_LINEAR_SEARCH", 8)
        monkeypatch.setattr(event_h5, "_SLICE_SEARCH", 4)
        monkeypatch.setattr(event_h5, "_READ_BLOCK", 1000)  # reads in several blocks
    ev = make_events(rng)
    ev["t"][1000:1200] = ev["t"][1000]  # a run of equal times across windows and slices
    ev = ev[np.argsort(ev["t"], kind="stable")]
    path = write_rvt(tmp_path / "a_td.h5", ev)
    with open_events(path) as r:
        parts = []
        for t0, got in r.iter_windows(7_000):
            assert_events_equal(got, window(ev, t0, t0 + 7_000))
            parts.append(got)
        assert_events_equal(concatenate_events(parts), ev)
        r.seek_time(123_456)
        first = int(np.searchsorted(ev["t"], 123_456))
        assert r.current_time == 123_456 and r.position == first
        assert_events_equal(r.load_n_events(50), ev[first:first + 50])
        t = int(r.current_time)  # the time of the last returned event; the window goes on from there
        assert t == int(ev["t"][first + 49])
        assert_events_equal(r.load_delta_t(1000), ev[first + 50:int(np.searchsorted(ev["t"], t + 1000))])
        r.seek_event(ev.size - 3)
        assert r.current_time == int(ev["t"][-3]) and r.position == ev.size - 3
        assert_events_equal(r.load_n_events(10), ev[-3:]) and r.done
        r.seek_event(ev.size)
        assert r.done and r.current_time == int(ev["t"][-1])
        with pytest.raises(ValueError, match="out of range"):
            r.seek_event(ev.size + 1)
        r.seek_time(10**9)
        assert r.done and r.load_delta_t(5).size == 0
    for t0, t1 in ((0, 1), (int(ev["t"][1000]), int(ev["t"][1000]) + 1), (50_000, 51_000), (299_000, 10**7)):
        assert_events_equal(read_events(path, t0, t1), window(ev, t0, t1))
    assert_events_equal(read_events(path), ev)


def test_a_window_reads_only_its_rows(tmp_path, rng, monkeypatch):
    """Streaming by time never reads the whole file: a seek bisects, a window reads its own rows."""
    ev = make_events(rng, n=200_000, duration=2_000_000)
    path = write_rvt(tmp_path / "big_td.h5", ev, chunks=4096)
    monkeypatch.setattr(event_h5, "_LINEAR_SEARCH", 1024)
    read = []
    with open_events(path) as r:
        original = r._times

        def counting(start, stop):
            read.append(stop - start)
            return original(start, stop)

        monkeypatch.setattr(r, "_times", counting)
        r.seek_time(1_000_000)
        for _ in range(5):
            got = r.load_delta_t(1000)
        t_end = int(r.current_time)
    assert_events_equal(got, window(ev, t_end - 1000, t_end))
    assert sum(read) < 20_000, sum(read)  # 200 000 events in the file


def test_dsec_file_offset_index_and_labels(tmp_path, rng):
    from evdet.data.info import list_recordings
    from evdet.data.sources import probe_video

    ev = make_events(rng, n=4000, duration=250_000)
    offset = 52_000_000_123
    seq = tmp_path / "train" / "zurich_city_00_a"
    path = write_dsec(seq / "events" / "left" / "events.h5", ev, offset)
    absolute = ev.copy()
    absolute["t"] += offset
    with open_events(path) as r:
        assert r.layout == "dsec" and r.time_origin == offset and r.current_time == offset
        assert r.geometry_inferred and (r.height, r.width) == (int(ev["y"].max()) + 1, int(ev["x"].max()) + 1)
        assert_events_equal(r.load_all(), absolute)
        for t0 in (offset + 1500, offset + 99_999, offset + 249_999):
            r.seek_time(t0)
            assert_events_equal(r.load_delta_t(2000), window(absolute, t0, t0 + 2000))
    assert recording_stem(path) == "zurich_city_00_a"
    assert label_path_for(path) == seq / "object_detections" / "left" / "tracks.npy"
    assert label_path_for(tmp_path / "flat" / "events.h5") == tmp_path / "flat" / "tracks.npy"
    assert list_recordings(tmp_path / "train") == [path]
    spec = probe_video(path, delta_t=50_000)
    assert spec.kind == "raw" and spec.start_ts == offset
    assert spec.num_frames == (int(ev["t"][-1]) // 50_000) + 1


def test_a_wrong_ms_to_idx_does_not_give_wrong_windows(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(event_h5, "_LINEAR_SEARCH", 8)  # force the index / bisection path
    ev = make_events(rng, n=3000, duration=100_000)
    bogus = np.full(100, 7, dtype=np.uint64)  # brackets nothing
    path = write_dsec(tmp_path / "s" / "events.h5", ev, 1000, ms_to_idx=bogus)
    absolute = ev.copy()
    absolute["t"] += 1000
    with open_events(path) as r:
        for t0 in (1000, 41_000, 90_500):
            r.seek_time(t0)
            assert_events_equal(r.load_delta_t(3000), window(absolute, t0, t0 + 3000))


def test_unsorted_file_is_sorted_with_a_warning(tmp_path, rng):
    ev = make_events(rng, n=100)
    shuffled = ev[rng.permutation(ev.size)]
    path = write_rvt(tmp_path / "u_td.h5", shuffled)
    with pytest.warns(UserWarning, match="u_td.h5: timestamps not sorted"):
        got = read_events(path)
    np.testing.assert_array_equal(got["t"], ev["t"])


def test_empty_file(tmp_path):
    path = write_rvt(tmp_path / "e_td.h5", np.zeros(0, EVENT_DTYPE), geometry=None)
    with open_events(path) as r:
        assert r.event_count == 0 and r.time_range() == (0, 0) and (r.height, r.width) == (0, 0)
        assert r.done and r.load_delta_t(100).size == 0 and r.load_all().size == 0


def test_bad_files_raise_naming_the_file(tmp_path, rng):
    from evdet.io.h5 import H5TensorWriter

    tensor = tmp_path / "tensor.h5"
    with H5TensorWriter(tensor, (2, 4, 4), representation="histo", delta_t=50_000, sensor_size=(4, 4)) as w:
        w.write(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="tensor.h5: HDF5 file without an 'events' group"):
        detect_format(tensor)
    assert not is_event_file(tensor)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        open_events(tmp_path / "missing.h5")
    not_h5 = tmp_path / "junk.h5"
    not_h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(ValueError, match="junk.h5"):
        EventH5Reader(not_h5)

    ev = make_events(rng, n=10)
    ragged = write_rvt(tmp_path / "ragged_td.h5", ev)
    with h5py.File(ragged, "a") as f:
        f["events/t"].resize((5,))
    with pytest.raises(ValueError, match=r"ragged_td.h5: events/x, y, p, t must be 1-D of one length"):
        open_events(ragged)
    floats = write_rvt(tmp_path / "floats_td.h5", ev)
    with h5py.File(floats, "a") as f:
        del f["events/t"]
        f["events/t"] = ev["t"].astype(np.float64)
    with pytest.raises(ValueError, match="floats_td.h5: events/t must hold integers"):
        open_events(floats)
    huge = write_rvt(tmp_path / "huge_td.h5", ev, geometry=(20_000, 80))
    with pytest.raises(ValueError, match="huge_td.h5: sensor geometry .* in the file is not plausible"):
        open_events(huge)
    with pytest.raises(ValueError, match="give both height and width"):
        open_events(write_rvt(tmp_path / "ok_td.h5", ev), height=10)


def test_conversion_of_an_event_h5_equals_the_dat_conversion(tmp_path, rng):
    """``evdet-generate-hdf5`` takes event HDF5 recordings; a DSEC file is binned from its ``t_offset``."""
    from evdet.io.h5 import H5TensorReader
    from evdet.preprocessing.convert import generate_hdf5

    ev = make_events(rng)
    for folder in ("dat", "mirror"):
        (tmp_path / folder).mkdir()
    write_dat(tmp_path / "dat" / "rec.dat", ev, H, W)
    write_rvt(tmp_path / "mirror" / "rec_td.dat.h5", ev)
    write_dsec(tmp_path / "dsec" / "rec" / "events.h5", ev, 7_000_000)
    outputs = {}
    for kind, src in (("dat", tmp_path / "dat"), ("mirror", tmp_path / "mirror"),
                      ("dsec", tmp_path / "dsec" / "rec" / "events.h5")):
        (out,) = generate_hdf5(src, tmp_path / f"out_{kind}", progress=False)
        with H5TensorReader(out) as r:
            outputs[kind] = (out.name, r.start_ts, r.read())
    assert outputs["dat"][0] == outputs["mirror"][0] == "rec.h5" and outputs["dsec"][0] == "rec.h5"
    assert outputs["dat"][1] == outputs["mirror"][1] == 0 and outputs["dsec"][1] == 7_000_000
    np.testing.assert_array_equal(outputs["mirror"][2], outputs["dat"][2])
    np.testing.assert_array_equal(outputs["dsec"][2], outputs["dat"][2])
