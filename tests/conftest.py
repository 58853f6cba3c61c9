"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "real-data"


@pytest.fixture
def real_data() -> Path:
    """Folder of real sensor recordings (``../shared/real-data``); skips the test when absent."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real sensor recordings not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def one_thread():
    """torch on one thread for the test (the test machine is shared: avoids thread oversubscription);
    use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(params=["numpy first", "kernels"])
def decode_path(request, monkeypatch):
    """Decoding with the dispatch of a fresh process (the numpy paths of ``dat_records``, ``evt2`` and
    ``evt3`` tried first, the kernels when they decline) and with the numba kernels alone: a test using it
    runs both, and both must pass. Use with ``pytestmark = pytest.mark.usefixtures("decode_path")``."""
    from evdet.io import dat_records, evt2, evt3

    for codec in (dat_records, evt2, evt3):
        monkeypatch.setattr(codec.KERNELS, "numpy_first", lambda: request.param == "numpy first")
    return request.param


BURST_GEOMETRY = (48, 64)  # (height, width) of the burst_recording fixture


def _evt2_words(events: np.ndarray) -> np.ndarray:
    """Time-sorted events -> EVT 2.0 words (an EV_TIME_HIGH word whenever ``t >> 6`` changes)."""
    t = events["t"].astype(np.int64)
    cd = ((events["p"].astype(np.uint32) << 28) | ((t & 63).astype(np.uint32) << 22)
          | (events["x"].astype(np.uint32) << 11) | events["y"].astype(np.uint32))
    high = t >> 6
    starts = np.flatnonzero(np.r_[True, high[1:] != high[:-1]])
    return np.insert(cd, starts, ((8 << 28) | high[starts]).astype(np.uint32)).astype(np.uint32)


def _evt21_words(events: np.ndarray) -> np.ndarray:
    """Time-sorted events -> EVT 2.1 words, one event per CD word (mask bit 0)."""
    t = events["t"].astype(np.uint64)
    x, y, p = (events[k].astype(np.uint64) for k in "xyp")
    cd = ((p << np.uint64(60)) | ((t & np.uint64(63)) << np.uint64(54)) | (x << np.uint64(43))
          | (y << np.uint64(32)) | np.uint64(1))
    high = t >> np.uint64(6)
    starts = np.flatnonzero(np.r_[True, high[1:] != high[:-1]])
    th = (np.uint64(8) << np.uint64(60)) | (high[starts] << np.uint64(32))
    return np.insert(cd, starts, th).astype(np.uint64)


@pytest.fixture
def burst_recording(tmp_path) -> tuple[np.ndarray, dict[str, Path]]:
    """One synthetic recording with two bursts (3000 events at t = 10 µs, 2500 at t = 55 555 µs) among
    4000 events spread over 120 ms, on a 48x64 sensor, written as DAT, EVT 2.0 RAW, EVT 2.1 RAW and an
    event HDF5 file (RVT's layout): ``(events sorted by t, {format: path})``."""
    import h5py

    from evdet.io.dat import write_dat
    from evdet.io.dtypes import EVENT_DTYPE

    gen = np.random.default_rng(12)
    height, width = BURST_GEOMETRY
    n = 3000 + 4000 + 2500
    events = np.zeros(n, dtype=EVENT_DTYPE)
    events["x"] = gen.integers(0, width, n)
    events["y"] = gen.integers(0, height, n)
    events["p"] = gen.integers(0, 2, n)
    events["t"] = np.r_[np.full(3000, 10), gen.integers(0, 120_000, 4000), np.full(2500, 55_555)]
    events = events[np.argsort(events["t"], kind="stable")]
    paths = {"dat": tmp_path / "burst_td.dat", "evt2": tmp_path / "burst2.raw",
             "evt21": tmp_path / "burst21.raw", "h5": tmp_path / "burst_h5.h5"}
    write_dat(paths["dat"], events, height=height, width=width)
    paths["evt2"].write_bytes(f"% evt 2.0\n% geometry {width}x{height}\n% end\n".encode()
                              + _evt2_words(events).tobytes())
    paths["evt21"].write_bytes(f"% evt 2.1\n% geometry {width}x{height}\n% end\n".encode()
                               + _evt21_words(events).tobytes())
    with h5py.File(paths["h5"], "w") as f:
        g = f.create_group("events")
        for k, dtype in (("x", np.uint16), ("y", np.uint16), ("p", np.int8), ("t", np.int64)):
            g.create_dataset(k, data=events[k].astype(dtype), chunks=(512,), maxshape=(None,))
        g.create_dataset("height", data=np.int64(height))
        g.create_dataset("width", data=np.int64(width))
    return events, paths
