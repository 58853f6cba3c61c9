"""Tests of evdet.io.read: format detection, open_events, read_events."""

from __future__ import annotations

import numpy as np
import pytest

from evdet.io import DatReader, RawReader, detect_format, open_events, read_events, write_dat
from evdet.io.dtypes import EVENT_DTYPE


def _events(rng, n=500):
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["x"] = rng.integers(0, 64, n)
    ev["y"] = rng.integers(0, 48, n)
    ev["p"] = rng.integers(0, 2, n)
    ev["t"] = np.sort(rng.integers(0, 100_000, n))
    return ev


def test_detect_format_real(real_data):
    assert detect_format(real_data / "sample_ncars.dat") == "dat"
    assert detect_format(real_data / "evt2_sample.raw") == "evt2"
    assert detect_format(real_data / "evt3_sample.raw") == "evt3"
    assert isinstance(open_events(real_data / "evt3_sample.raw"), RawReader)
    assert isinstance(open_events(real_data / "sample_ncars.dat"), DatReader)


def test_read_events_real(real_data):
    all_events = read_events(real_data / "sample_ncars.dat")
    assert all_events.size == 2009 and all_events.dtype == EVENT_DTYPE
    window = read_events(real_data / "sample_ncars.dat", 50_000, 70_000)
    assert window.size == 404 and (window["t"].min(), window["t"].max()) == (50_022, 69_985)
    assert read_events(real_data / "sample_ncars.dat", t_end=10_000).size == 229
    evt2 = read_events(real_data / "evt2_sample.raw", t_start=1_340_000)
    assert evt2.dtype == EVENT_DTYPE
    assert evt2["t"].min() >= 1_340_000 and evt2["t"].max() == 1_367_888
    full = read_events(real_data / "evt2_sample.raw")
    assert full.size == 539_481
    assert evt2.size == int(np.sum(full["t"] >= 1_340_000))


def test_detection_by_header_over_extension(tmp_path, rng):
    events = _events(rng)
    write_dat(tmp_path / "a.dat", events, 48, 64)
    (tmp_path / "a.events").write_bytes((tmp_path / "a.dat").read_bytes())  # unusual extension, DAT header
    assert detect_format(tmp_path / "a.events") == "dat"
    np.testing.assert_array_equal(read_events(tmp_path / "a.events"), events)
    (tmp_path / "b.dat").write_bytes(b"% evt 2.0\n" + np.array([(8 << 28) | 1], np.uint32).tobytes())
    assert detect_format(tmp_path / "b.dat") == "evt2"  # header wins over the .dat extension


def test_detection_errors(tmp_path):
    (tmp_path / "x.raw").write_bytes(b"% Date 2020\n" + bytes(8))
    with pytest.raises(ValueError, match="x.raw: RAW file without"):
        detect_format(tmp_path / "x.raw")
    (tmp_path / "x.bin").write_bytes(bytes(8))
    with pytest.raises(ValueError, match="x.bin: unknown event file type"):
        open_events(tmp_path / "x.bin")
    (tmp_path / "y.raw").write_bytes(b"% evt 5.0\n")
    with pytest.raises(ValueError, match="unsupported EVT version"):
        detect_format(tmp_path / "y.raw")
    with pytest.raises(FileNotFoundError):
        read_events(tmp_path / "missing.dat")


def test_read_events_window_and_geometry(tmp_path, rng):
    events = _events(rng)
    path = tmp_path / "c.dat"
    write_dat(path, events, 48, 64)
    window = read_events(path, 20_000, 30_000)
    np.testing.assert_array_equal(window, events[(events["t"] >= 20_000) & (events["t"] < 30_000)])
    with pytest.raises(ValueError, match="empty time window"):
        read_events(path, 5, 5)
    with open_events(path, height=100, width=200) as r:
        assert (r.height, r.width) == (100, 200)


def test_open_events_forwards_raw_reader_options(tmp_path, real_data):

    path = real_data / "evt3_sample.raw"
    with open_events(path, chunk_words=1000, time_mode="expelliarmus") as r:
        assert r.chunk_words == 1000 and r.time_mode == "expelliarmus"
    spec, legacy = read_events(path), read_events(path, time_mode="expelliarmus")
    assert spec.size == legacy.size and spec["t"].max() < legacy["t"].max()  # the two EVT3 time rules
    with pytest.raises(ValueError, match="unknown reader option"):
        open_events(path, chunk=3)
    dat = next(real_data.glob("*.dat"))
    with pytest.raises(ValueError, match=f"{dat.name}: dat files take no reader options"):
        open_events(dat, time_mode="spec")
