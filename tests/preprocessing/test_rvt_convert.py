"""The RVT-format writer, file by file and field by field against independent restatements."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from rvt_fixtures import (
    GEN1_BOXES,
    GEN1_FRAMES,
    GEN1_LABEL_TIMES,
    LEGACY_LABEL_DTYPE,
    MPX_LABEL_DTYPE,
    expected_frames,
    expected_repr_ts,
    gen1_labels,
    random_events,
    write_gen1_recording,
    write_rvt_mirror,
)
from rvt_reference import rvt_window_ref

from evdet.io.dat import write_dat
from evdet.io.dat_records import encode_dat_records
from evdet.io.output_paths import MANIFEST_NAME, record_output
from evdet.preprocessing.rvt_convert import generate_rvt
from evdet.preprocessing.rvt_labels import RVT_IGNORED_SEQUENCES

REPR = Path("event_representations_v2") / "stacked_histogram_dt=50_nbins=10"


def _files(root: Path) -> list[str]:
    """RVT's files under ``root`` (evdet's ``.evdet-outputs`` manifests of what it wrote left out)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.name != MANIFEST_NAME)


def _seq_files(seq: str, ds2: bool = False) -> list[str]:
    h5 = "event_representations_ds2_nearest.h5" if ds2 else "event_representations.h5"
    return sorted([f"{seq}/{REPR}/{h5}", f"{seq}/{REPR}/objframe_idx_2_repr_idx.npy",
                   f"{seq}/{REPR}/timestamps_us.npy", f"{seq}/labels_v2/labels.npz",
                   f"{seq}/labels_v2/timestamps_us.npy"])


def _window(events, end):
    sel = (events["t"] >= end - 50_000) & (events["t"] <= end)
    return events[sel]


@pytest.fixture
def gen1_raw(tmp_path, rng):
    raw = tmp_path / "raw"
    events = {"train/a": write_gen1_recording(raw / "train", "a", rng),
              "val/b": write_gen1_recording(raw / "val", "b", rng, labels=gen1_labels(LEGACY_LABEL_DTYPE))}
    # all boxes filtered out -> no folder (RVT writes one and deletes it); an ignored sequence -> nothing
    write_gen1_recording(raw / "train", "tiny", rng, n_events=100, labels=gen1_labels()[[2, 8]])
    write_gen1_recording(raw / "train", RVT_IGNORED_SEQUENCES["gen1"][0], rng, n_events=100)
    return raw, events


def test_gen1_output_file_for_file_and_field_by_field(gen1_raw, tmp_path):
    raw, events = gen1_raw
    out = tmp_path / "rvt"
    (out / "train" / "tiny").mkdir(parents=True)  # a folder of an earlier evdet run: removed as RVT does
    record_output(out / "train" / "tiny", "evdet-generate-hdf5")
    written = generate_rvt(raw, out, "gen1", progress=False)
    assert [p.relative_to(out).as_posix() for p in written] == ["train/a", "val/b"]
    assert _files(out) == sorted(_seq_files("train/a") + _seq_files("val/b"))
    assert sorted(p.name for p in out.iterdir()) == ["train", "val"]

    exp_frames, counts = expected_frames(GEN1_FRAMES, 250_000)
    exp_ts = np.array(expected_repr_ts(exp_frames, counts))
    for seq, train in (("train/a", True), ("val/b", False)):
        root = out / seq
        npz = np.load(root / "labels_v2" / "labels.npz")
        assert sorted(npz.files) == ["labels", "objframe_idx_2_label_idx"]
        labels = npz["labels"]
        # the label file's own dtype (legacy names renamed, types and order kept)
        assert labels.dtype.names == MPX_LABEL_DTYPE.names
        assert labels.dtype == (MPX_LABEL_DTYPE if train else labels.dtype)
        kept = [0, 3] if train else [0, 3, 5]  # indices into GEN1_BOXES (see rvt_fixtures)
        per = len(kept)
        assert npz["objframe_idx_2_label_idx"].dtype == np.int64
        assert npz["objframe_idx_2_label_idx"].tolist() == list(range(0, per * len(exp_frames), per))
        for j, f in enumerate(exp_frames):
            rows = labels[j * per:(j + 1) * per]
            assert np.all(rows["t"] == f)
            shift = GEN1_LABEL_TIMES.index(f)  # gen1_labels shifts frame i's boxes by i px
            expect = []
            for b in kept:  # crop to [0, 303] x [0, 239] by hand
                x, y, w, h, c = GEN1_BOXES[b]
                x1, x2 = max(x + shift, 0.0), min(x + shift + w, 303.0)
                y1, y2 = max(y, 0.0), min(y + h, 239.0)
                expect.append((x1, y1, x2 - x1, y2 - y1, c, 10 * b + 1))
            got = [(float(r["x"]), float(r["y"]), float(r["w"]), float(r["h"]), int(r["class_id"]),
                    int(r["track_id"])) for r in rows]
            assert got == expect, (seq, f)
        frame_ts = np.load(root / "labels_v2" / "timestamps_us.npy")
        assert frame_ts.dtype == np.int64 and frame_ts.tolist() == exp_frames
        ts = np.load(root / REPR / "timestamps_us.npy")
        assert ts.dtype == np.int64 and np.array_equal(ts, exp_ts)
        idx = np.load(root / REPR / "objframe_idx_2_repr_idx.npy")
        assert idx.dtype == np.int64 and np.array_equal(exp_ts[idx], frame_ts)
        with h5py.File(root / REPR / "event_representations.h5", "r") as f:
            assert list(f) == ["data"]
            d = f["data"]
            assert d.dtype == np.uint8 and d.shape == (len(exp_ts), 20, 240, 304)
            assert d.chunks == (1, 20, 240, 304) and d.maxshape == (None, 20, 240, 304)
            assert dict(d.attrs) == {}
            plist = d.id.get_create_plist()
            assert plist.get_nfilters() == 1
            code, _, opts, _ = plist.get_filter(0)
            assert code == 32001 and tuple(opts)[4:] == (1, 1, 5)  # level 1, byte shuffle, zstd
            data = d[:]
        ev = events[seq]
        for i, end in enumerate(exp_ts):
            w = _window(ev, end)
            np.testing.assert_array_equal(data[i], rvt_window_ref(w["x"], w["y"], w["p"], w["t"], 240, 304),
                                          err_msg=f"{seq} representation {i}")
        assert data.max() == 10


def test_resume_skips_finished_sequences_and_redoes_interrupted_ones(gen1_raw, tmp_path):
    raw, _ = gen1_raw
    out = tmp_path / "rvt"
    generate_rvt(raw, out, "gen1", progress=False)
    h5_a = out / "train" / "a" / REPR / "event_representations.h5"
    h5_b = out / "val" / "b" / REPR / "event_representations.h5"
    with h5py.File(h5_a, "r") as f:
        before = f["data"][:]
    stamp = h5_b.stat().st_mtime_ns
    h5_a.unlink()  # as if killed while writing a: only the (hidden) temporary would exist
    (h5_a.parent / ".event_representations.h5.evdet-tmp-999999999-dead").write_bytes(b"partial")
    generate_rvt(raw, out, "gen1", progress=False)
    assert h5_b.stat().st_mtime_ns == stamp
    with h5py.File(h5_a, "r") as f:
        np.testing.assert_array_equal(f["data"][:], before)
    assert not [p for p in h5_a.parent.iterdir() if p.name.startswith(".") and p.name != ".evdet-outputs"]


def test_output_path_policy(gen1_raw, tmp_path):
    from evdet.apps.generate_hdf5 import main

    from evdet.io.output_paths import OutputPathError

    raw, _ = gen1_raw
    with pytest.raises(OutputPathError, match="input"):  # output = input, or inside it
        generate_rvt(raw, raw, "gen1", progress=False)
    with pytest.raises(OutputPathError, match="input"):
        generate_rvt(raw, raw / "train" / "rvt", "gen1", progress=False)
    foreign = tmp_path / "foreign"
    (foreign / "train" / "a").mkdir(parents=True)
    (foreign / "train" / "a" / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="not written by evdet"):
        generate_rvt(raw, foreign, "gen1", progress=False)
    assert (foreign / "train" / "a" / "notes.txt").read_text() == "mine"
    assert not (foreign / "val").exists()  # refused before anything was written
    out = tmp_path / "rvt"
    generate_rvt(raw, out, "gen1", progress=False)
    h5_b = out / "val" / "b" / REPR / "event_representations.h5"
    stamp = h5_b.stat().st_mtime_ns
    generate_rvt(raw, out, "gen1", progress=False)  # finished: kept
    assert h5_b.stat().st_mtime_ns == stamp
    (out / "val" / "b" / "notes.txt").write_text("mine")  # before: removed with the folder by --overwrite
    with pytest.raises(OutputPathError, match=r"notes\.txt was not written by evdet: replacing"):
        generate_rvt(raw, out, "gen1", progress=False, overwrite=True)
    assert h5_b.stat().st_mtime_ns == stamp
    (out / "val" / "b" / "notes.txt").unlink()
    generate_rvt(raw, out, "gen1", progress=False, overwrite=True)  # evdet's own: converted again
    assert h5_b.stat().st_mtime_ns != stamp
    assert main([str(raw), str(raw), "--format", "rvt", "--dataset", "gen1", "--no-progress"]) == 2
    assert main([str(raw), str(out), "--format", "rvt", "--no-progress"]) == 2  # no --dataset


def test_gen4_class_filter_and_half_resolution_nearest(tmp_path, rng):
    raw = tmp_path / "raw" / "test"
    raw.mkdir(parents=True)
    events = random_events(rng, 20_000, 720, 1280, 700_000)
    write_dat(raw / "m_td.dat", events, 720, 1280)
    times = np.arange(42) * 16_667 + 3_000  # 60 Hz
    lab = np.zeros(2 * times.size, MPX_LABEL_DTYPE)
    lab["t"] = np.repeat(times, 2)
    lab["x"], lab["y"], lab["w"], lab["h"] = 100.0, 200.0, 50.0, 40.0
    lab["class_id"] = np.tile([2, 5], times.size)  # class 5 (traffic sign) is removed
    np.save(raw / "m_bbox.npy", lab)
    out = tmp_path / "rvt"
    generate_rvt(tmp_path / "raw", out, "gen4", progress=False)
    assert _files(out) == _seq_files("test/m", ds2=True)
    seq = out / "test" / "m"
    frames, counts = expected_frames(times.tolist(), int(6 * 16_667))
    assert np.load(seq / "labels_v2" / "timestamps_us.npy").tolist() == frames
    ts = np.load(seq / REPR / "timestamps_us.npy")
    assert ts.tolist() == expected_repr_ts(frames, counts)
    labels = np.load(seq / "labels_v2" / "labels.npz")["labels"]
    assert set(labels["class_id"].tolist()) == {2} and labels.size == len(frames)
    with h5py.File(seq / REPR / "event_representations_ds2_nearest.h5", "r") as f:
        d = f["data"]
        assert d.shape == (ts.size, 20, 360, 640) and d.chunks == (1, 20, 360, 640)
        for i in (0, ts.size // 2, ts.size - 1):
            w = _window(events, ts[i])
            ref = rvt_window_ref(w["x"], w["y"], w["p"], w["t"], 720, 1280, d=1)
            np.testing.assert_array_equal(d[i], ref, err_msg=f"representation {i}")


def test_rvt_mirror_input_gives_the_same_output_as_dat(tmp_path, rng):
    events = random_events(rng, 20_000, 240, 304, 900_000)
    for kind in ("dat", "h5"):
        split = tmp_path / kind / "test"
        split.mkdir(parents=True)
        np.save(split / "s_bbox.npy", gen1_labels(times=[150_000, 400_000, 650_000]))
        if kind == "dat":
            write_dat(split / "s_td.dat", events, 240, 304)
        else:
            write_rvt_mirror(split / "s_td.dat.h5", events, 240, 304)
        generate_rvt(tmp_path / kind, tmp_path / f"out_{kind}", "gen1", progress=False)
    a, b = tmp_path / "out_dat" / "test" / "s", tmp_path / "out_h5" / "test" / "s"
    for rel in _seq_files(""):
        rel = rel.lstrip("/")
        if rel.endswith(".h5"):
            with h5py.File(a / rel, "r") as fa, h5py.File(b / rel, "r") as fb:
                np.testing.assert_array_equal(fa["data"][:], fb["data"][:])
        elif rel.endswith(".npz"):
            za, zb = np.load(a / rel), np.load(b / rel)
            for k in za.files:
                np.testing.assert_array_equal(za[k], zb[k])
        else:
            np.testing.assert_array_equal(np.load(a / rel), np.load(b / rel))


def test_failures_are_reported_and_the_others_converted(tmp_path, rng):
    raw = tmp_path / "raw"
    write_gen1_recording(raw / "train", "good", rng, n_events=1000)
    write_gen1_recording(raw / "train", "early", rng, n_events=1000, labels=gen1_labels(times=[20_000]))
    msg = r"1 of 2 sequences failed:\n.*early_bbox\.npy: no label at or after"
    with pytest.raises(RuntimeError, match=msg):
        generate_rvt(raw, tmp_path / "out", "gen1", progress=False)
    assert (tmp_path / "out" / "train" / "good" / REPR / "event_representations.h5").exists()
    os.remove(raw / "train" / "good_td.dat")
    with pytest.raises(FileNotFoundError, match=r"good_bbox\.npy: no event file"):
        generate_rvt(raw, tmp_path / "out2", "gen1", progress=False)


def test_sensor_size_must_be_the_datasets(tmp_path, rng):
    raw = tmp_path / "raw" / "val"
    raw.mkdir(parents=True)
    write_dat(raw / "s_td.dat", random_events(rng, 100, 100, 100, 500_000), 100, 100)
    np.save(raw / "s_bbox.npy", gen1_labels(times=[150_000]))
    with pytest.raises(RuntimeError, match=r"s_td\.dat: sensor size 100x100 .* gen1 format is 240x304"):
        generate_rvt(tmp_path / "raw", tmp_path / "out", "gen1", progress=False)


def test_decreasing_timestamps_are_corrected_over_the_whole_recording(tmp_path, rng):
    # a few events jump 3 ms back in time (as in some recordings): RVT's reader replaces each time by the
    # running maximum of the whole recording before cutting windows; so must the block-wise reading
    events = random_events(rng, 30_000, 240, 304, 900_000)
    back = rng.choice(events.size - 1, 200, replace=False) + 1
    events["t"][back] = np.maximum(events["t"][back] - 3_000, 0)
    split = tmp_path / "raw" / "val"
    split.mkdir(parents=True)
    path = split / "s_td.dat"
    write_dat(path, np.sort(events, order="t"), 240, 304)  # header, then the records in file order:
    raw = path.read_bytes()
    records = encode_dat_records(events).tobytes()
    path.write_bytes(raw[: len(raw) - len(records)] + records)
    np.save(split / "s_bbox.npy", gen1_labels(times=[150_000, 400_000, 650_000]))
    with pytest.warns(UserWarning, match="not sorted"):
        generate_rvt(tmp_path / "raw", tmp_path / "out", "gen1", progress=False)
    seq = tmp_path / "out" / "val" / "s"
    ts = np.load(seq / REPR / "timestamps_us.npy")
    t = np.maximum.accumulate(events["t"])
    with h5py.File(seq / REPR / "event_representations.h5", "r") as f:
        data = f["data"][:]
    for i, end in enumerate(ts):
        sel = (t >= end - 50_000) & (t <= end)
        ev = events[sel]
        np.testing.assert_array_equal(data[i], rvt_window_ref(ev["x"], ev["y"], ev["p"], t[sel], 240, 304))


@pytest.mark.parametrize("piece_events", [1, 997])
def test_representations_read_in_pieces_are_identical(tmp_path, rng, piece_events):
    # a burst of 3000 events at one timestamp and times going back (corrected by the running maximum
    # across pieces): pieces of any size give the same file as reading each block whole
    from evdet.preprocessing.rvt_convert import write_representations

    events = random_events(rng, 20_000 if piece_events > 1 else 4_000, 240, 304, 400_000)
    events["t"][:3000] = 120_000
    events = np.sort(events, order="t")
    back = rng.choice(events.size - 1, 100, replace=False) + 1
    events["t"][back] = np.maximum(events["t"][back] - 3_000, 0)
    path = tmp_path / "s_td.dat"
    write_dat(path, np.sort(events, order="t"), 240, 304)
    raw = path.read_bytes()
    records = encode_dat_records(events).tobytes()
    path.write_bytes(raw[: len(raw) - len(records)] + records)
    ts = np.arange(50_000, 400_001, 50_000)
    data = {}
    for pieces in (10**9, piece_events):
        out = write_representations(path, tmp_path / f"r{pieces}.h5", ts, "gen1", piece_events=pieces)
        with h5py.File(out, "r") as f:
            data[pieces] = f["data"][:]
    assert data[10**9][2].sum() >= 3000  # the burst's window
    np.testing.assert_array_equal(data[piece_events], data[10**9])
