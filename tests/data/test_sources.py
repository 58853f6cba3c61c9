"""evdet.data.sources: probing recordings and reading frame windows from HDF5, raw and in-memory videos."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from evdet.data.sources import (
    VideoSpec,
    num_chunks,
    power_of_two_factor,
    probe_video,
    read_frames,
    read_frames_into,
    read_uint8_into,
    resize_frames,
    stored_as_uint8,
)
from evdet.io.dat import DatWriter
from evdet.io.dtypes import EVENT_DTYPE
from evdet.io.h5 import H5TensorWriter
from evdet.preprocessing import events_to_tensor

N, C, H, W = 7, 2, 8, 12


def _h5(path, rng, *, uint8: bool, start_ts: int = 0):
    data = rng.random((N, C, H, W)).astype(np.float32)
    with H5TensorWriter(path, (C, H, W), representation="histo", delta_t=5000, sensor_size=(16, 24),
                        start_ts=start_ts, downsampling_factor=1, store_as_uint8=uint8) as w:
        w.write(data)
    return path


def _direct(path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["data"][:]


@pytest.mark.parametrize("uint8", [False, True])
def test_probe_h5(tmp_path, rng, uint8):
    spec = probe_video(_h5(tmp_path / "a.h5", rng, uint8=uint8, start_ts=10_000))
    assert (spec.kind, spec.num_frames, spec.start_ts) == ("h5", N, 10_000)
    assert (spec.delta_t, spec.channels) == (5000, C)
    assert spec.sensor_size == (16, 24) and spec.stored_size == (H, W) and spec.representation == "histo"
    assert spec.duration == N * 5000
    assert (spec.uint8_scale is not None) == uint8
    assert probe_video(tmp_path / "a.h5", delta_t=5000) == spec


@pytest.mark.parametrize("uint8", [False, True])
def test_h5_window_reads_equal_direct_reads(tmp_path, rng, uint8):
    path = _h5(tmp_path / f"w{uint8}.h5", rng, uint8=uint8)
    spec = probe_video(path)
    raw = _direct(path)
    full = raw.astype(np.float32) / np.float32(spec.uint8_scale) if uint8 else raw
    windows = [read_frames(spec, s, s + 3, (H, W)) for s in range(0, N, 3)]
    assert [w.shape[0] for w in windows] == [3, 3, 1]  # last window clipped to the video
    assert all(w.dtype == torch.float32 for w in windows)
    np.testing.assert_array_equal(torch.cat(windows).numpy(), full)
    # read_frames_into: fast path (network size == stored size) into a strided view of a batch
    batch = torch.full((4, 2, C, H, W), -1.0)
    read_frames_into(spec, 2, batch[:, 1])
    np.testing.assert_array_equal(batch[:, 1].numpy(), full[2:6])
    assert torch.all(batch[:, 0] == -1)
    # resize path: same values as read_frames at that size, which is an area resize of the full frames
    small = torch.empty((2, C, H // 2, W // 2))
    read_frames_into(spec, 1, small)
    torch.testing.assert_close(small, read_frames(spec, 1, 3, (H // 2, W // 2)))
    torch.testing.assert_close(small, torch.nn.functional.avg_pool2d(torch.from_numpy(full[1:3]), 2))


def test_uint8_handover(tmp_path, rng):
    path = _h5(tmp_path / "u.h5", rng, uint8=True)
    spec = probe_video(path)
    assert stored_as_uint8(spec, (H, W)) and not stored_as_uint8(spec, (H // 2, W // 2))
    out = np.empty((3, C, H, W), np.uint8)
    read_uint8_into(spec, 4, out)
    np.testing.assert_array_equal(out, _direct(path)[4:7])
    with pytest.raises(ValueError, match=r"u.h5: frames \[5, 8\) outside the video of 7 frames"):
        read_uint8_into(spec, 5, out)
    fspec = probe_video(_h5(tmp_path / "f.h5", rng, uint8=False))
    assert not stored_as_uint8(fspec, (H, W))


def test_read_frames_range_errors_name_the_file(tmp_path, rng):
    spec = probe_video(_h5(tmp_path / "r.h5", rng, uint8=False))
    with pytest.raises(ValueError, match=r"r.h5: frames \[7, 7\) outside the video of 7 frames"):
        read_frames(spec, N, N + 2, (H, W))
    with pytest.raises(ValueError, match=r"frames \[-1, 2\)"):
        read_frames(spec, -1, 2, (H, W))
    bad = VideoSpec("x.bin", "other", 3, 0, 1, 1, (2, 2), (2, 2), "histo")
    with pytest.raises(ValueError, match="x.bin: unknown video kind 'other'"):
        read_frames(bad, 0, 1, (2, 2))


def test_probe_errors(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        probe_video(tmp_path / "missing.h5")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="notes.txt: not a recording"):
        probe_video(tmp_path / "notes.txt")
    path = _h5(tmp_path / "d.h5", rng, uint8=False)
    with pytest.raises(ValueError, match=r"d.h5: stored delta_t = 5000 µs but the config asks 1000 µs"):
        probe_video(path, delta_t=1000)
    bad = _h5(tmp_path / "noattr.h5", rng, uint8=False)
    with h5py.File(bad, "a") as f:
        del f["data"].attrs["delta_t"]
    with pytest.raises(ValueError, match="noattr.h5.*delta_t"):
        probe_video(bad)
    bad = _h5(tmp_path / "shape.h5", rng, uint8=False)
    with h5py.File(bad, "a") as f:
        f["data"].attrs["shape"] = np.array([C, H + 1, W], np.int64)
    with pytest.raises(ValueError, match="shape.h5: attribute 'shape'"):
        probe_video(bad)


def test_raw_recording_windows_equal_one_conversion(tmp_path, rng):
    n = 400
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 34_000, n))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 24, n), rng.integers(0, 16, n), rng.integers(0, 2, n)
    path = tmp_path / "rec.dat"
    w = DatWriter(path, 16, 24)
    w.write(ev)
    w.close()
    spec = probe_video(path, delta_t=5000)
    assert (spec.kind, spec.delta_t, spec.start_ts, spec.sensor_size) == ("raw", 5000, 0, (16, 24))
    assert spec.num_frames == int(ev["t"][-1]) // 5000 + 1
    nf = spec.num_frames
    ref = events_to_tensor(ev, "histo", nf, 16, 24, 5000, **dict(spec.params))
    assert spec.channels == ref.shape[1]
    windows = [read_frames(spec, s, s + 2, (16, 24)) for s in range(0, nf, 2)]
    np.testing.assert_array_equal(torch.cat(windows).numpy(), ref)
    # out of order (seek back) and downsampled by 2: the same as converting with downsampling
    half = read_frames(spec, 1, 3, (8, 12))
    ref_half = events_to_tensor(ev, "histo", nf, 16, 24, 5000, downsampling_factor=1, **dict(spec.params))
    np.testing.assert_array_equal(half.numpy(), ref_half[1:3])


def test_tensor_file_resize_and_helpers(rng, tensor_video):
    data = rng.random((5, 1, 4, 6)).astype(np.float32)
    spec = tensor_video("mem", data)
    np.testing.assert_array_equal(read_frames(spec, 1, 4, (4, 6)).numpy(), data[1:4])
    out = torch.empty((2, 1, 2, 3))
    read_frames_into(spec, 3, out)
    torch.testing.assert_close(out, torch.nn.functional.avg_pool2d(torch.from_numpy(data[3:5]), 2))
    frames = torch.from_numpy(data)
    assert resize_frames(frames, (4, 6)) is frames
    assert power_of_two_factor((16, 24), (16, 24)) == 0
    assert power_of_two_factor((16, 24), (4, 6)) == 2
    assert power_of_two_factor((16, 24), (5, 6)) is None
    assert power_of_two_factor((6, 10), (3, 5)) == 1 and power_of_two_factor((6, 10), (1, 2)) is None
    assert [num_chunks(spec, k) for k in (1, 2, 5, 6)] == [5, 3, 1, 1]


def _saturating_recording(path, rng, height=32, width=48, n=6000, t_end=30_000):
    """Events concentrated on a few pixels, so that histo saturates (where clamping before or after a
    downsampling differ)."""
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, t_end, n))
    hot = rng.random(n) < 0.7
    ev["x"] = np.where(hot, 2 * rng.integers(5, 7, n), rng.integers(0, width, n))  # one hot pixel per 2x2
    ev["y"] = np.where(hot, 2 * rng.integers(3, 5, n), rng.integers(0, height, n))
    ev["p"] = rng.integers(0, 2, n)
    w = DatWriter(path, height, width)
    w.write(ev)
    w.close()
    return ev


@pytest.mark.parametrize("network_size", [(32, 48), (16, 24), (8, 12), (10, 15)])
def test_raw_and_hdf5_give_identical_network_inputs(tmp_path, rng, network_size):
    """One preprocessing whatever the source: a raw recording streamed on the fly and its HDF5 conversion
    (float storage) give bit-identical network inputs, at the sensor size and resized."""
    from evdet.preprocessing.convert import generate_hdf5

    ev = _saturating_recording(tmp_path / "rec.dat", rng)
    (h5,) = generate_hdf5(tmp_path / "rec.dat", tmp_path / "h5", delta_t=5000, progress=False)
    raw_spec, h5_spec = probe_video(tmp_path / "rec.dat", delta_t=5000), probe_video(h5)
    assert raw_spec.num_frames == h5_spec.num_frames and raw_spec.stored_size == h5_spec.stored_size
    n = raw_spec.num_frames
    for start in range(0, n, 2):
        raw = read_frames(raw_spec, start, start + 2, network_size)
        conv = read_frames(h5_spec, start, start + 2, network_size)
        assert torch.equal(raw, conv), (start, network_size)
    if network_size == (16, 24):  # the old raw path (binning at network size) differs where histo saturates
        full = read_frames(raw_spec, 0, n, network_size)
        binned = events_to_tensor(ev, "histo", n, 32, 48, 5000, downsampling_factor=1)
        assert not np.allclose(full.numpy(), binned)


def test_raw_and_uint8_hdf5_differ_by_rounding_only(tmp_path, rng):
    from evdet.preprocessing.convert import generate_hdf5

    _saturating_recording(tmp_path / "rec.dat", rng)
    (h5,) = generate_hdf5(tmp_path / "rec.dat", tmp_path / "h5", delta_t=5000, store_as_uint8=True,
                          progress=False)
    raw_spec, h5_spec = probe_video(tmp_path / "rec.dat", delta_t=5000), probe_video(h5)
    for size in ((32, 48), (16, 24)):
        raw = read_frames(raw_spec, 0, raw_spec.num_frames, size)
        conv = read_frames(h5_spec, 0, h5_spec.num_frames, size)
        assert float((raw - conv).abs().max()) <= 0.5 / 255 + 1e-6  # an area mean keeps the bound


def test_loader_and_reader_share_one_reading_path(tmp_path, rng):
    from evdet.io.h5 import H5TensorReader

    path = _h5(tmp_path / "a.h5", rng, uint8=True)
    spec = probe_video(path)
    out = torch.empty(N, C, H, W)
    read_frames_into(spec, 0, out)
    np.testing.assert_array_equal(out.numpy(), H5TensorReader(path).read())
    np.testing.assert_array_equal(read_frames(spec, 0, N, (H, W)).numpy(), H5TensorReader(path).read())


def test_uint8_data_marked_float_is_refused_by_the_loader(tmp_path, rng):
    """Before: the loader fed 255x values while H5TensorReader gave [0, 1]."""
    path = _h5(tmp_path / "a.h5", rng, uint8=True)
    with h5py.File(path, "r+") as f:
        f["data"].attrs["store_as_uint8"] = False
    with pytest.raises(ValueError, match=r"a\.h5: dataset 'data' holds uint8 values but attribute "
                                         "'store_as_uint8' = False"):
        probe_video(path)


@pytest.mark.parametrize("fmt", ["dat", "evt2", "evt21", "h5"])
@pytest.mark.parametrize("representation", ["histo", "event_cube", "timesurface", "rvt_stacked_histogram"])
def test_raw_frames_read_in_pieces_equal_the_whole_window(burst_recording, fmt, representation):
    # the bursts (3000 and 2500 events at one timestamp) span many pieces of 256 events; the frames of
    # evdet-detect / evdet-demo-video are the tensor of the joined events, bit for bit
    events, paths = burst_recording
    spec = probe_video(paths[fmt], delta_t=5000, representation=representation)
    h, w = spec.sensor_size
    ref = events_to_tensor(events, representation, spec.num_frames, h, w, 5000, **dict(spec.params))
    got = torch.cat([read_frames(spec, s, s + 5, (h, w), piece_events=256)
                     for s in range(0, spec.num_frames, 5)])
    np.testing.assert_array_equal(got.numpy().view(np.uint8), ref.view(np.uint8))
    assert ref[0].any() and ref[11].any()  # the frames of both bursts


@pytest.mark.parametrize("numpy_path", [True, False], ids=["numpy-decoder", "numba-decoder"])
def test_raw_frames_of_a_huge_burst_read_with_bounded_memory(tmp_path, monkeypatch, numpy_path):
    # 600 000 events at one timestamp: with pieces of 20 000 events the traced peak of read_frames stays
    # near a few pieces, not the 9.6 MB of the window's events; both DAT decoders (which one runs depends
    # on what the process decoded before: evdet.io.kernel_budget)
    import tracemalloc

    from evdet.io.dat_records import KERNELS

    monkeypatch.setattr(KERNELS, "numpy_first", lambda: numpy_path)

    n = 600_000
    ev = np.zeros(n + 1, dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = 3, 4, 1, 7
    ev["t"][-1] = 95_000
    w = DatWriter(tmp_path / "burst.dat", 16, 16)
    w.write(ev)
    w.close()
    spec = probe_video(tmp_path / "burst.dat", delta_t=50_000)
    peaks, frames = {}, {}
    for pieces in (10**9, 20_000):
        read_frames(spec, 0, 2, (16, 16), piece_events=pieces)  # compiles and imports outside the trace
        tracemalloc.start()
        frames[pieces] = read_frames(spec, 0, 2, (16, 16), piece_events=pieces)
        peaks[pieces] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    torch.testing.assert_close(frames[10**9], frames[20_000], rtol=0, atol=0)
    assert frames[20_000][0, 1, 4, 3] > 0 and frames[20_000].shape[0] == 2
    assert peaks[10**9] > 16 * n
    assert peaks[20_000] < min(16 * 8 * 20_000, peaks[10**9] / 4)  # numpy decoder ~7 pieces, numba ~6


def test_an_empty_recording_without_a_header_is_named(tmp_path):
    # before: "sensor size must be positive, got (height, width) = (0, 0)", naming no file
    (tmp_path / "zero_td.dat").write_bytes(b"")
    with pytest.raises(ValueError, match=r"zero_td\.dat: no sensor size \(an empty recording without a "):
        probe_video(tmp_path / "zero_td.dat")
