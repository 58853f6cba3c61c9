"""Small Gen1 / 1Mpx recordings built by hand from RVT's published description (tests only), and
independent restatements of RVT's label-frame selection and representation end times."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evdet.io.dat import write_dat
from evdet.io.dtypes import EVENT_DTYPE

# RVT's 1Mpx label files: t u8, x/y/w/h f4, class_id u1, class_confidence f4, track_id u4 (Prophesee's dtype)
MPX_LABEL_DTYPE = np.dtype([("t", "<u8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"),
                            ("class_id", "u1"), ("class_confidence", "<f4"), ("track_id", "<u4")])
# the original Gen1 release: legacy names ts / confidence
LEGACY_LABEL_DTYPE = np.dtype([("ts", "<u8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"),
                               ("class_id", "u1"), ("confidence", "<f4"), ("track_id", "<u4")])

GEN1_LABEL_TIMES = [60_000, 120_000, 170_000, 371_000, 620_500, 1_121_000, 1_374_000, 1_621_500]
"""Before 100 ms (skipped), the first frame, 50 ms later (rejected), +251 ms (k = 1), +249.5 ms (k = 1),
+500.5 ms (k = 2), +253 ms (3 ms off the grid: rejected), +500.5 ms after the last accepted (k = 2)."""
GEN1_FRAMES = [120_000, 371_000, 620_500, 1_121_000, 1_621_500]

# (x, y, w, h, class_id): what RVT's Gen1 filters do with each (train split)
GEN1_BOXES = [
    (-5.0, 10.0, 40.0, 30.0, 0),     # cropped to x = 0, w = 35: kept
    (290.0, 230.0, 30.0, 20.0, 1),   # cropped to w = 13, h = 9: side < 10, dropped
    (50.0, 60.0, 8.0, 50.0, 0),      # side 8: dropped
    (100.0, 100.0, 22.0, 22.0, 1),   # diagonal² 968 >= 900: kept
    (150.0, 150.0, 21.0, 21.0, 0),   # diagonal² 882 < 900: dropped
    (10.0, 5.0, 280.0, 40.0, 0),     # w 280 > 273: dropped in train only
]
GEN1_KEPT_TRAIN = [(0.0, 10.0, 35.0, 30.0, 0), (100.0, 100.0, 22.0, 22.0, 1)]


def gen1_labels(dtype: np.dtype = MPX_LABEL_DTYPE, times=GEN1_LABEL_TIMES) -> np.ndarray:
    rows = []
    for ti, t in enumerate(times):
        for bi, (x, y, w, h, c) in enumerate(GEN1_BOXES):
            rows.append((t, x + ti, y, w, h, c, 1.0, 10 * bi + 1))  # every frame's boxes shifted by ti px
    return np.array(rows, dtype=dtype)


def random_events(rng: np.random.Generator, n: int, height: int, width: int, duration: int) -> np.ndarray:
    """Sorted events, with a hot pixel firing 300 times in [365, 366) ms (counts wrap at 256 then clip)."""
    ev = np.zeros(n + 300, EVENT_DTYPE)
    ev["t"] = np.r_[rng.integers(0, duration, n), rng.integers(365_000, 366_000, 300)]
    ev["x"] = np.r_[rng.integers(0, width, n), np.full(300, 7)]
    ev["y"] = np.r_[rng.integers(0, height, n), np.full(300, 5)]
    ev["p"] = np.r_[rng.integers(0, 2, n), np.ones(300, np.int64)]
    return ev[np.argsort(ev["t"], kind="stable")]


def write_gen1_recording(folder: Path, name: str, rng: np.random.Generator, n_events: int = 40_000,
                         duration: int = 1_700_000, labels: np.ndarray | None = None) -> np.ndarray:
    """``folder/<name>_td.dat`` (240x304) + ``<name>_bbox.npy``; returns the events."""
    folder.mkdir(parents=True, exist_ok=True)
    events = random_events(rng, n_events, 240, 304, duration)
    write_dat(folder / f"{name}_td.dat", events, 240, 304)
    np.save(folder / f"{name}_bbox.npy", gen1_labels() if labels is None else labels)
    return events


def write_rvt_mirror(path: Path, events: np.ndarray, height: int, width: int, signed_p: bool = True) -> None:
    """RVT's raw HDF5 mirror file: group ``events`` with x, y, p (int8, -1/+1), t, height, width, Blosc."""
    import h5py
    import hdf5plugin

    blosc = hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE)
    with h5py.File(path, "w") as f:
        g = f.create_group("events")
        g.create_dataset("x", data=events["x"].astype(np.uint16), chunks=True, **blosc)
        g.create_dataset("y", data=events["y"].astype(np.uint16), chunks=True, **blosc)
        p = events["p"].astype(np.int8)
        g.create_dataset("p", data=(2 * p - 1) if signed_p else p, chunks=True, **blosc)
        g.create_dataset("t", data=events["t"].astype(np.int64), chunks=True, **blosc)
        g.create_dataset("height", data=np.int64(height))
        g.create_dataset("width", data=np.int64(width))
        g.create_dataset("divider", data=np.int64(1))


def expected_frames(unique_ts: list[int], delta: int) -> tuple[list[int], list[int]]:
    """Label frames and representations between them, restated: the first time >= 100 ms, then every time
    within 2 ms of a positive multiple k of ``delta`` after the last accepted one (2k representations)."""
    frames: list[int] = []
    counts: list[int] = []
    for t in sorted(set(unique_ts)):
        if not frames:
            if t >= 100_000:
                frames.append(t)
            continue
        gap = t - frames[-1]
        k = (gap + delta // 2) // delta
        if k >= 1 and abs(gap - k * delta) <= 2000:
            frames.append(t)
            counts.append(2 * k)
    return frames, counts


def expected_repr_ts(frames: list[int], counts: list[int]) -> list[int]:
    """End times restated: the 50 ms grid back from the first frame minus its earliest point (and the frame
    itself), then each gap cut into ``count`` equal parts, truncated to whole µs."""
    f0 = frames[0]
    grid = sorted(f0 - 50_000 * j for j in range(1, f0 // 50_000 + 1) if f0 - 50_000 * j > 0)
    out = grid[1:]
    for i, n in enumerate(counts):
        a, b = frames[i], frames[i + 1]
        out += [a + (j * (b - a)) // n for j in range(n)]
    out.append(frames[-1])
    return out


def write_rvt_sequence(seq: Path, data: np.ndarray, repr_ts, labels: np.ndarray, label_index, frame_to_repr,
                       frame_ts=None, ds2: bool = False) -> Path:
    """An RVT sequence folder written by hand (not by evdet's writer), Blosc-compressed like RVT's."""
    import h5py
    import hdf5plugin

    rdir = seq / "event_representations_v2" / "stacked_histogram_dt=50_nbins=10"
    ldir = seq / "labels_v2"
    rdir.mkdir(parents=True)
    ldir.mkdir(parents=True)
    name = "event_representations_ds2_nearest.h5" if ds2 else "event_representations.h5"
    blosc = hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE)
    with h5py.File(rdir / name, "w") as f:
        f.create_dataset("data", data=data, chunks=(1, *data.shape[1:]), maxshape=(None, *data.shape[1:]),
                         **blosc)
    np.save(rdir / "timestamps_us.npy", np.asarray(repr_ts, dtype=np.int64))
    np.save(rdir / "objframe_idx_2_repr_idx.npy", np.asarray(frame_to_repr, dtype=np.int64))
    np.savez(ldir / "labels.npz", labels=labels, objframe_idx_2_label_idx=np.asarray(label_index, np.int64))
    if frame_ts is not None:
        np.save(ldir / "timestamps_us.npy", np.asarray(frame_ts, dtype=np.int64))
    return seq


def make_rvt_gen1_dataset(root: Path, rng: np.random.Generator,
                          splits=(("train", 2), ("val", 1), ("test", 1)), duration: int = 1_700_000,
                          n_events: int = 20_000) -> Path:
    """Raw Gen1-like recordings converted by evdet's RVT writer into ``root/rvt``; returns that folder."""
    from evdet.preprocessing.rvt_convert import generate_rvt

    for split, count in splits:
        for i in range(count):
            write_gen1_recording(root / "raw" / split, f"{split}{i}", rng, n_events=n_events,
                                 duration=duration)
    generate_rvt(root / "raw", root / "rvt", "gen1", progress=False)
    return root / "rvt"
