"""evdet.io.blosc_chunks: Blosc datasets decoded without HDF5, on threads, equal to h5py's reads."""

from __future__ import annotations

import h5py
import hdf5plugin
import numpy as np
import pytest

import evdet.io.event_h5 as event_h5
from evdet.io.blosc_chunks import blosc_chunks
from evdet.io.dtypes import EVENT_DTYPE
from evdet.io.read import open_events, read_events

BLOSC = hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE)


def _file(path, data: dict[str, np.ndarray], chunks: int = 1000, userblock: int = 0, **filters):
    with h5py.File(path, "w", userblock_size=userblock) as f:
        g = f.create_group("events")
        for k, v in data.items():
            g.create_dataset(k, data=v, chunks=(chunks,), **(filters or BLOSC))
        g.create_dataset("height", data=np.int64(480))
        g.create_dataset("width", data=np.int64(640))
    return path


def _events(rng, n):
    return {"x": rng.integers(0, 640, n).astype(np.uint16), "y": rng.integers(0, 480, n).astype(np.uint16),
            "p": (2 * rng.integers(0, 2, n) - 1).astype(np.int8),
            "t": np.cumsum(rng.integers(0, 5, n)).astype(np.int64)}


@pytest.mark.parametrize("userblock", [0, 512])
def test_ranges_equal_h5py_reads(tmp_path, rng, userblock):
    data = _events(rng, 10_500)
    path = _file(tmp_path / "a.h5", data, userblock=userblock)
    with h5py.File(path, "r") as f, open(path, "rb") as fh:
        for k, want in data.items():
            chunks = blosc_chunks(f["events"][k], fh.fileno(), str(path))
            assert chunks is not None and chunks.chunk == 1000
            for a, b in ((0, 10_500), (0, 1000), (999, 1001), (2500, 7300), (10_400, 10_500), (3, 4)):
                out = np.full(b - a, 7, dtype=want.dtype)
                chunks.read(a, b, out)
                np.testing.assert_array_equal(out, want[a:b])


def test_other_layouts_are_left_to_h5py(tmp_path, rng):
    data = _events(rng, 3000)
    cases = {"gzip": dict(compression="gzip"), "lzf": dict(compression="lzf"),
             "two filters": dict(compression=BLOSC.filter_id, compression_opts=BLOSC.filter_options,
                                 fletcher32=True)}
    for name, filters in cases.items():
        path = _file(tmp_path / f"{name}.h5", data, **filters)
        with h5py.File(path, "r") as f, open(path, "rb") as fh:
            assert blosc_chunks(f["events"]["t"], fh.fileno(), str(path)) is None, name
        got = read_events(path)
        np.testing.assert_array_equal(got["t"], data["t"])
    with h5py.File(tmp_path / "sparse.h5", "w") as f:  # a chunk never written: HDF5's fill value
        ds = f.create_dataset("t", shape=(3000,), dtype=np.int64, chunks=(1000,), **BLOSC)
        ds[:1000] = 1
        with open(tmp_path / "sparse.h5", "rb") as fh:
            assert blosc_chunks(ds, fh.fileno(), "sparse.h5") is None


def test_whole_file_reads_on_threads_equal_h5py(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(event_h5, "_PARALLEL_ROWS", 1000)  # threads for this small file
    monkeypatch.setattr(event_h5, "_READ_BLOCK", 777)  # blocks that cut chunks
    data = _events(rng, 20_001)
    path = _file(tmp_path / "w.h5", data, chunks=1234)
    ev = read_events(path)
    assert ev.dtype == EVENT_DTYPE
    for k in "xyt":
        np.testing.assert_array_equal(ev[k], data[k])
    np.testing.assert_array_equal(ev["p"], data["p"] > 0)
    with open_events(path) as r:  # windows and seeks (through h5py) agree with the threaded reads
        assert r._chunks is not None
        r.seek_time(int(data["t"][5000]))
        got = np.concatenate([r.load_delta_t(500) for _ in range(20)])
        lo = int(np.searchsorted(data["t"], data["t"][5000]))
        np.testing.assert_array_equal(got["t"], data["t"][lo:lo + got.size])
        assert got["t"][-1] < data["t"][5000] + 10_000 <= data["t"][lo + got.size]


@pytest.mark.parametrize("threads", [False, True])
def test_a_corrupt_chunk_is_an_error_naming_the_file(tmp_path, rng, monkeypatch, threads):
    data = _events(rng, 5000)
    path = _file(tmp_path / "c.h5", data)
    with h5py.File(path, "r") as f:
        infos = []
        f["events"]["t"].id.chunk_iter(infos.append)
    raw = bytearray(path.read_bytes())
    at = infos[2].byte_offset
    raw[at:at + 16] = bytes(16)  # the Blosc header of the third chunk of t
    path.write_bytes(bytes(raw))
    if threads:  # decoded by evdet
        monkeypatch.setattr(event_h5, "_PARALLEL_ROWS", 1000)
        match = r"c.h5: the Blosc chunk at byte offset \d+ does not decompress"
    else:  # by HDF5
        match = r"c.h5: cannot read the events of rows \[0, 5000\)"
    with pytest.raises(ValueError, match=match):
        read_events(path)


@pytest.mark.parametrize("at", [5, 777, 10_000, 19_999])  # in a block, at a block edge, at the thread edge
def test_unsorted_times_are_found_on_threads(tmp_path, rng, monkeypatch, at):
    monkeypatch.setattr(event_h5, "_PARALLEL_ROWS", 1000)
    monkeypatch.setattr(event_h5, "_READ_BLOCK", 777)
    data = _events(rng, 20_000)
    data["t"] += 10
    data["t"][at] = data["t"][at - 1] - 3
    path = _file(tmp_path / "u.h5", data, chunks=1234)
    with pytest.warns(UserWarning, match=f"u.h5: timestamps not sorted \\(event {at} has"):
        ev = read_events(path)
    np.testing.assert_array_equal(ev["t"], np.sort(data["t"], kind="stable"))
