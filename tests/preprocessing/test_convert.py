"""generate_hdf5: dataset round trip, labels and parts, resuming, validation."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from evdet.io.atomic import TMP_MARK, is_temporary
from evdet.io.boxes import load_boxes, save_boxes
from evdet.io.dat import write_dat
from evdet.io.dtypes import BBOX_DTYPE, EVENT_DTYPE
from evdet.io.h5 import H5TensorReader
from evdet.io.label_map import save_label_map
from evdet.preprocessing import events_to_tensor
from evdet.preprocessing.convert import generate_hdf5

H, W = 48, 64


def _events(rng, n, t_end, t_start=0):
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["x"], ev["y"] = rng.integers(0, W, n), rng.integers(0, H, n)
    ev["p"] = rng.integers(0, 2, n)
    ev["t"] = np.sort(rng.integers(t_start, t_end, n))
    return ev


def _boxes(times):
    b = np.zeros(len(times), dtype=BBOX_DTYPE)
    b["t"], b["x"], b["y"], b["w"], b["h"], b["class_confidence"] = times, 1, 2, 5, 6, 1
    b["track_id"] = np.arange(len(times))
    return b


@pytest.fixture
def dataset(tmp_path, rng):
    root = tmp_path / "ds"
    (root / "train").mkdir(parents=True)
    (root / "val").mkdir()
    save_label_map(root, {0: "car", 1: "pedestrian"})
    ev_a = _events(rng, 20_000, 1_000_000)
    write_dat(root / "train" / "a_td.dat", ev_a, H, W)
    save_boxes(root / "train" / "a_bbox.npy", _boxes([0, 50_000, 250_000, 500_000, 1_300_000]))
    ev_b = _events(rng, 5_000, 430_001, t_start=100_000)
    write_dat(root / "val" / "b.dat", ev_b, H, W)
    return root, {"a": ev_a, "b": ev_b}


def test_dataset_round_trip(dataset, tmp_path):
    root, events = dataset
    out = tmp_path / "out"
    paths = generate_hdf5(root, out, delta_t=50_000, progress=False)
    assert paths == [out / "train" / "a.h5", out / "val" / "b.h5"]
    assert json.loads((out / "label_map_dictionary.json").read_text()) == {"0": "car", "1": "pedestrian"}
    np.testing.assert_array_equal(load_boxes(out / "train" / "a_bbox.npy"),
                                  load_boxes(root / "train" / "a_bbox.npy"))
    assert not (out / "val" / "b_bbox.npy").exists()  # no labels in, none out
    a, b = H5TensorReader(paths[0]), H5TensorReader(paths[1])
    assert a.num_frames == 26  # covers the last label at 1.3 s (events end before 1 s)
    assert b.num_frames == 9  # ceil((430_000 + 1) / 50_000)
    assert a.start_ts == b.start_ts == 0 and a.delta_t == 50_000 and a.sensor_size == (H, W)
    assert a.representation == "histo" and a.params == {"max_incr_per_pixel": 5.0}
    for reader, name in ((a, "a"), (b, "b")):
        ref = events_to_tensor(events[name], "histo", reader.num_frames, H, W, 50_000)
        np.testing.assert_array_equal(reader.read(), ref)
    assert not [p for p in out.rglob("*") if is_temporary(p)]


def test_representation_params_downsampling_uint8(dataset, tmp_path):
    root, events = dataset
    out = tmp_path / "out"
    paths = generate_hdf5(root / "val" / "b.dat", out, representation="event_cube", delta_t=20_000,
                          params={"num_utbins": 2}, height_width=(H // 2, W // 2), store_as_uint8=True,
                          compression="lzf", progress=False)
    r = H5TensorReader(paths[0])
    assert r.shape == (4, H // 2, W // 2) and r.downsampling_factor == 1 and r.store_as_uint8
    assert r.params == {"num_utbins": 2, "split_polarity": True, "max_incr_per_pixel": 5.0}
    ref = events_to_tensor(events["b"], "event_cube", r.num_frames, H, W, 20_000, downsampling_factor=1,
                           num_utbins=2)
    np.testing.assert_allclose(r.read(), ref, atol=0.5 / 255 + 1e-6)


def test_max_duration_parts_and_labels(dataset, tmp_path):
    root, events = dataset
    out = tmp_path / "out"
    paths = generate_hdf5(root / "train", out, delta_t=50_000, max_duration=500_000, progress=False)
    assert [p.name for p in paths] == ["a_part000.h5", "a_part001.h5", "a_part002.h5"]
    readers = [H5TensorReader(p) for p in paths]
    assert [r.num_frames for r in readers] == [10, 10, 6]
    assert [r.start_ts for r in readers] == [0, 500_000, 1_000_000]
    whole = np.concatenate([r.read() for r in readers])
    np.testing.assert_array_equal(whole, events_to_tensor(events["a"], "histo", 26, H, W, 50_000))
    labels = [load_boxes(out / f"a_part{i:03d}_bbox.npy")["t"].tolist() for i in range(3)]
    # absolute times; a label at the end of a part belongs to its last bin
    assert labels == [[0, 50_000, 250_000, 500_000], [], [1_300_000]]


def test_resume_skips_finished_outputs(dataset, tmp_path):
    root, _ = dataset
    out = tmp_path / "out"
    paths = generate_hdf5(root, out, progress=False)
    mtimes = {p: p.stat().st_mtime_ns for p in paths}
    paths[1].unlink()
    stale = paths[1].with_name(f".{paths[1].name}{TMP_MARK}999999999-dead")
    stale.write_bytes(b"junk from a killed run")
    again = generate_hdf5(root, out, progress=False)
    assert again == paths
    assert paths[0].stat().st_mtime_ns == mtimes[paths[0]]  # finished: untouched
    assert paths[1].exists() and H5TensorReader(paths[1]).num_frames == 9
    assert not stale.exists()  # the killed run's temporary is cleaned up


def test_parts_resume(dataset, tmp_path):
    root, _ = dataset
    out = tmp_path / "out"
    paths = generate_hdf5(root / "train", out, max_duration=500_000, progress=False)
    mtime0 = paths[0].stat().st_mtime_ns
    data2 = H5TensorReader(paths[2]).read()
    paths[2].unlink()
    assert generate_hdf5(root / "train", out, max_duration=500_000, progress=False) == paths
    assert paths[0].stat().st_mtime_ns == mtime0
    np.testing.assert_array_equal(H5TensorReader(paths[2]).read(), data2)


def test_two_workers_equal_one(dataset, tmp_path):
    root, _ = dataset
    one = generate_hdf5(root, tmp_path / "one", progress=False)
    two = generate_hdf5(root, tmp_path / "two", num_workers=2, progress=False)
    assert [p.relative_to(tmp_path / "two") for p in two] == [p.relative_to(tmp_path / "one") for p in one]
    for p, q in zip(one, two, strict=True):
        np.testing.assert_array_equal(H5TensorReader(p).read(), H5TensorReader(q).read())


def test_validation_errors(dataset, tmp_path):
    root, _ = dataset
    with pytest.raises(ValueError, match="store_as_uint8"):
        generate_hdf5(root, tmp_path / "o", representation="diff", store_as_uint8=True, progress=False)
    with pytest.raises(ValueError, match="unknown representation"):
        generate_hdf5(root, tmp_path / "o", representation="nope", progress=False)
    with pytest.raises(TypeError, match="bogus"):
        generate_hdf5(root, tmp_path / "o", params={"bogus": 1}, progress=False)
    with pytest.raises(ValueError, match="max_incr_per_pixel"):
        generate_hdf5(root, tmp_path / "o", params={"max_incr_per_pixel": -1}, progress=False)
    with pytest.raises(FileNotFoundError):
        generate_hdf5(tmp_path / "missing.dat", tmp_path / "o", progress=False)
    with pytest.raises(ValueError, match="max_duration"):
        generate_hdf5(root, tmp_path / "o", max_duration=10, progress=False)
    with pytest.raises(RuntimeError, match="power of two"):
        generate_hdf5(root, tmp_path / "o", height_width=(30, 40), progress=False)
    assert not list((tmp_path / "o").rglob("*.h5"))


@pytest.mark.parametrize("name", ["sample_ncars.dat", "evt3_sample.raw"])
def test_real_recordings(real_data, tmp_path, name):
    from evdet.io.read import open_events, read_events

    (path,) = generate_hdf5(real_data / name, tmp_path, delta_t=10_000, progress=False)
    r = H5TensorReader(path)
    with open_events(real_data / name) as reader:
        assert r.sensor_size == (reader.height, reader.width)
    events = read_events(real_data / name)
    assert r.num_frames == -(-(int(events["t"][-1]) + 1) // 10_000)
    k0 = int(events["t"][0]) // 10_000  # RAW clocks start late: frames before k0 are empty
    ref = events_to_tensor(events, "histo", r.num_frames - k0, *r.sensor_size, 10_000, start_ts=k0 * 10_000)
    np.testing.assert_array_equal(r.read(k0), ref)
    assert ref[0].any() and not r.read(max(k0 - 3, 0), k0).any()


def test_output_overlapping_an_input_or_a_file_is_refused(dataset, tmp_path):
    from evdet.io.output_paths import OutputPathError

    root, _ = dataset
    with pytest.raises(OutputPathError, match="contains the input"):
        generate_hdf5(root, root, progress=False)  # before: each recording twice (.dat and .h5)
    with pytest.raises(OutputPathError, match="lies inside the input folder"):
        generate_hdf5(root, root / "train" / "h5", progress=False)
    with pytest.raises(OutputPathError, match="contains the input"):
        generate_hdf5(root / "val" / "b.dat", root / "val", progress=False)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputPathError, match="is an existing file"):  # before: FileExistsError traceback
        generate_hdf5(root, tmp_path / "afile", progress=False)
    assert not list(root.rglob("*.h5"))
    generate_hdf5(root, root / "hdf5", progress=False)  # beside the splits: fine (make-synthetic --hdf5)


def test_rerun_with_other_settings_is_refused_then_reconverted_with_overwrite(dataset, tmp_path):
    from evdet.io.output_paths import OutputPathError

    root, _ = dataset
    out = tmp_path / "out"
    paths = generate_hdf5(root, out, delta_t=50_000, progress=False)
    mtimes = [p.stat().st_mtime_ns for p in paths]
    with pytest.raises(OutputPathError, match=r"a\.h5 was converted with other settings \(delta_t 50000 "
                                              r"stored, 20000 asked\); pass --overwrite"):
        generate_hdf5(root, out, delta_t=20_000, progress=False)  # before: old files kept silently
    with pytest.raises(OutputPathError, match=r"parameters \{'max_incr_per_pixel': 5.0\} stored, "
                                              r"\{'max_incr_per_pixel': 10.0\} asked"):
        generate_hdf5(root, out, params={"max_incr_per_pixel": 10.0}, progress=False)
    assert [p.stat().st_mtime_ns for p in paths] == mtimes  # nothing touched
    again = generate_hdf5(root, out, delta_t=20_000, overwrite=True, progress=False)
    assert again == paths and all(H5TensorReader(p).delta_t == 20_000 for p in again)
    parts = generate_hdf5(root / "train", out / "train", delta_t=20_000, max_duration=500_000,
                          overwrite=True, progress=False)
    assert [p.name for p in parts] == ["a_part000.h5", "a_part001.h5", "a_part002.h5"]
    assert not (out / "train" / "a.h5").exists() and not (out / "train" / "a_bbox.npy").exists()


def test_outputs_of_another_recording_with_the_same_name_are_not_kept(dataset, tmp_path, rng):
    # before: a rerun from a regenerated dataset (same names, same settings) kept the stale tensors
    # silently, even with --overwrite, pairing them with the new labels
    from evdet.io.output_paths import OutputPathError

    root, _ = dataset
    out = tmp_path / "out"
    generate_hdf5(root / "val", out, delta_t=50_000, progress=False)
    assert H5TensorReader(out / "b.h5").source == ("b.dat", (root / "val" / "b.dat").stat().st_size)
    write_dat(root / "val" / "b.dat", _events(rng, 7_000, 430_001), H, W)  # b recorded anew
    with pytest.raises(OutputPathError, match=r"b\.h5 was converted with other settings \(from another "
                                              r"b\.dat: 40064 bytes then, 56064 now\); pass --overwrite"):
        generate_hdf5(root / "val", out, delta_t=50_000, progress=False)
    generate_hdf5(root / "val", out, delta_t=50_000, overwrite=True, progress=False)
    want = generate_hdf5(root / "val", tmp_path / "fresh", delta_t=50_000, progress=False)
    np.testing.assert_array_equal(_tensors(out / "b.h5"), _tensors(want[0]))
    shutil.copyfile(root / "val" / "b.dat", tmp_path / "b.dat")  # a copy (new mtime) is the same source
    assert generate_hdf5(tmp_path / "b.dat", out, delta_t=50_000, progress=False) == [out / "b.h5"]


def test_foreign_outputs_are_never_replaced(dataset, tmp_path):
    from evdet.io.output_paths import OutputPathError

    root, _ = dataset
    out = tmp_path / "out"
    generate_hdf5(root / "val", out, delta_t=50_000, progress=False)
    (out / ".evdet-outputs").unlink()  # as if another tool had written b.h5
    with pytest.raises(OutputPathError, match=r"b\.h5 exists with other settings .* not written by evdet"):
        generate_hdf5(root / "val", out, delta_t=20_000, overwrite=True, progress=False)
    assert generate_hdf5(root / "val", out, delta_t=50_000, progress=False) == [out / "b.h5"]  # same: kept
    save_boxes(out / "a_bbox.npy", _boxes([7]))  # someone's labels where a's would go
    with pytest.raises(RuntimeError, match=r"a_bbox\.npy already exists and was not written by evdet"):
        generate_hdf5(root / "train", out, progress=False)
    assert load_boxes(out / "a_bbox.npy")["t"].tolist() == [7]


def test_label_files_of_other_commands_are_never_replaced_or_removed(dataset, tmp_path):
    from evdet.io.output_paths import record_output

    root, _ = dataset
    out = tmp_path / "out"
    for name in ("a_bbox.npy", "b_bbox.npy"):  # detections another evdet command wrote where labels go
        save_boxes(out / name, _boxes([7]))
        record_output(out / name, "evdet-detect")
    for overwrite in (False, True):
        with pytest.raises(RuntimeError) as info:
            generate_hdf5([root / "train", root / "val"], out, overwrite=overwrite, progress=False)
        msg = str(info.value)
        assert "a_bbox.npy was written by evdet-detect: evdet-generate-hdf5 does not replace it" in msg
        assert "b_bbox.npy was written by evdet-detect" in msg  # b has no labels: its stale file is not ours
        assert [load_boxes(out / n)["t"].tolist() for n in ("a_bbox.npy", "b_bbox.npy")] == [[7], [7]]
    mine = tmp_path / "mine"
    save_boxes(mine / "b_bbox.npy", _boxes([7]))  # a user's file: would be read as b's labels, so refused
    with pytest.raises(RuntimeError, match=r"b_bbox\.npy already exists and was not written by evdet"):
        generate_hdf5(root / "val", mine, progress=False)
    assert load_boxes(mine / "b_bbox.npy")["t"].tolist() == [7]


def test_bad_recordings_fail_alone_and_are_reported_together(dataset, tmp_path):
    root, _ = dataset
    (root / "train" / "empty_td.dat").write_bytes(b"")  # zero-length recording
    write_dat(root / "val" / "c.dat", _events(np.random.default_rng(1), 100, 100_000), H, W)
    (root / "val" / "c_bbox.npy").write_bytes(b"")  # zero-byte labels
    write_dat(root / "val" / "d.dat", _events(np.random.default_rng(2), 100, 100_000), H, W)
    (root / "val" / "d_bbox.npy").write_text("not a numpy file")
    out = tmp_path / "out"
    with pytest.raises(RuntimeError) as info:
        generate_hdf5(root, out, progress=False)
    msg = str(info.value)
    assert msg.startswith("3 of 5 recordings failed (the other 2 were converted)")
    for name in ("empty_td.dat", "c.dat", "d.dat"):
        assert name in msg
    assert sorted(p.name for p in out.rglob("*.h5")) == ["a.h5", "b.h5"]


def test_argument_errors_name_the_parameter(dataset, tmp_path):
    root, _ = dataset
    with pytest.raises(ValueError, match=r"downsampling_factor = 7 is too large for .*a_td\.dat"):
        generate_hdf5(root, tmp_path / "o", downsampling_factor=7, progress=False)
    with pytest.raises(ValueError, match="max_incr_per_pixel must be a finite number > 0, got nan"):
        generate_hdf5(root, tmp_path / "o", params={"max_incr_per_pixel": float("nan")}, progress=False)
    with pytest.raises(ValueError, match=r"parameter max_incr_per_pixel = 'nan' must be a number"):
        generate_hdf5(root, tmp_path / "o", params={"max_incr_per_pixel": "nan"}, progress=False)
    with pytest.raises(ValueError, match="downsampling_factor must be an integer"):
        generate_hdf5(root, tmp_path / "o", downsampling_factor=-1, progress=False)
    assert not list((tmp_path / "o").rglob("*.h5"))


def _tensors(path) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        return f["data"][...]


@pytest.mark.parametrize("fmt", ["dat", "evt2", "evt21", "h5"])
@pytest.mark.parametrize("representation, uint8", [("histo", False), ("event_cube", False),
                                                   ("stacked_histogram", True), ("timesurface", False)])
def test_frames_read_in_pieces_convert_bit_identically(burst_recording, tmp_path, fmt, representation, uint8):
    # the bursts (3000 and 2500 events at one timestamp) span many pieces of 256 events
    _, paths = burst_recording
    whole = generate_hdf5(paths[fmt], tmp_path / "whole", representation=representation, delta_t=5000,
                          store_as_uint8=uint8, progress=False)
    pieces = generate_hdf5(paths[fmt], tmp_path / "pieces", representation=representation, delta_t=5000,
                           store_as_uint8=uint8, progress=False, piece_events=256)
    a, b = _tensors(whole[0]), _tensors(pieces[0])
    assert a.shape == b.shape and a.shape[0] == 24 and a.any()
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("name", ["sample_ncars.dat", "evt2_sample.raw", "evt3_sample.raw"])
def test_real_recordings_convert_bit_identically_in_pieces(real_data, tmp_path, name):
    whole = generate_hdf5(real_data / name, tmp_path / "whole", delta_t=10_000, progress=False)
    pieces = generate_hdf5(real_data / name, tmp_path / "pieces", delta_t=10_000, progress=False,
                           piece_events=333)
    import h5py

    with h5py.File(whole[0], "r") as a, h5py.File(pieces[0], "r") as b:  # frame slices: the EVT3 sample
        assert a["data"].shape == b["data"].shape  # starts at 11.7 s, 1178 frames of 7 MB
        for i in range(0, a["data"].shape[0], 16):
            got, want = a["data"][i:i + 16], b["data"][i:i + 16]
            np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("numpy_path", [True, False], ids=["numpy-decoder", "numba-decoder"])
def test_a_huge_burst_converts_with_bounded_memory(tmp_path, monkeypatch, numpy_path):
    # 600 000 events at one timestamp (9.6 MB of events in one frame): with piece_events = 20 000 the
    # traced peak of the conversion stays near a few pieces; the output is the same. Both DAT decoders
    # (which one runs depends on what the process decoded before: evdet.io.kernel_budget)
    import tracemalloc

    from evdet.io.dat_records import KERNELS

    monkeypatch.setattr(KERNELS, "numpy_first", lambda: numpy_path)

    n = 600_000
    ev = np.zeros(n + 1, dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = 3, 4, 1, 7
    ev["t"][-1] = 95_000
    write_dat(tmp_path / "burst.dat", ev, 16, 16)
    peaks, outputs = {}, {}
    for pieces in (10**9, 20_000):
        generate_hdf5(tmp_path / "burst.dat", tmp_path / "warm", progress=False, overwrite=True,
                      piece_events=pieces)  # compiles and imports outside the traced part
        tracemalloc.start()
        out = generate_hdf5(tmp_path / "burst.dat", tmp_path / f"out{pieces}", progress=False,
                            piece_events=pieces)
        peaks[pieces] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        outputs[pieces] = _tensors(out[0])
    np.testing.assert_array_equal(outputs[10**9], outputs[20_000])
    assert outputs[20_000][0, 1, 4, 3] == 1.0 and outputs[20_000].shape[0] == 2
    assert peaks[10**9] > 16 * n  # the whole frame's events at once
    assert peaks[20_000] < min(16 * 8 * 20_000, peaks[10**9] / 4)  # numpy decoder ~7.4 pieces, numba ~6
