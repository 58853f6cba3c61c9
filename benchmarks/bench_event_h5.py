"""Reading RVT's event HDF5 mirror files: evdet's ``read_events`` / ``iter_windows`` against plain h5py.

Run: ``python benchmarks/bench_event_h5.py [--events N]``. Writes a 1Mpx-like mirror file (``events/{x u2,
y u2, p i1 (-1/+1), t i8}``, Blosc zstd level 1 byte-shuffle, as RVT ships them) to a temporary folder and
prints, best of interleaved rounds (a load change on the shared machine hits both sides alike):

- whole file, warm: ``read_events(path)`` (one ``EVENT_DTYPE`` array, p mapped to 0/1) against h5py reading
  the four datasets into four arrays (the least a user can do);
- whole file, cold: the same, each in a fresh Python process, imports included;
- 50 ms windows over the file: ``open_events(path).iter_windows(50_000)`` against h5py loading ``t`` whole,
  ``np.searchsorted`` for the window bounds and slicing the four datasets per window.

Ratios are h5py time / evdet time: above 1 means evdet is faster.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from evdet.io import open_events, read_events

WINDOW_US = 50_000
FIELDS = ("x", "y", "p", "t")


def write_mirror(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    blosc = hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE)
    data = {"x": rng.integers(0, 1280, n, dtype=np.uint16), "y": rng.integers(0, 720, n, dtype=np.uint16),
            "p": (2 * rng.integers(0, 2, n) - 1).astype(np.int8),
            "t": np.cumsum(rng.integers(0, 3, n, dtype=np.int64))}  # ~1 event/µs
    with h5py.File(path, "w") as f:
        g = f.create_group("events")
        for k in FIELDS:
            g.create_dataset(k, data=data[k], chunks=True, **blosc)
        g.create_dataset("height", data=np.int64(720))
        g.create_dataset("width", data=np.int64(1280))
        g.create_dataset("divider", data=np.int64(1))


def h5py_whole(path: Path) -> int:
    with h5py.File(path, "r") as f:
        arrays = [f["events"][k][:] for k in FIELDS]
    return arrays[0].size


def h5py_windows(path: Path) -> int:
    total = 0
    with h5py.File(path, "r") as f:
        g = f["events"]
        t = g["t"][:]
        edges = np.searchsorted(t, np.arange(0, int(t[-1]) + WINDOW_US + 1, WINDOW_US), side="left")
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            total += len([g[k][lo:hi] for k in FIELDS][0])
    return total


def evdet_whole(path: Path) -> int:
    return read_events(path).size


def evdet_windows(path: Path) -> int:
    with open_events(path) as reader:
        return sum(events.size for _, events in reader.iter_windows(WINDOW_US))


def best_times(fns: dict[str, object], n: int, rounds: int) -> dict[str, float]:
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            assert fn() == n, name
            best[name] = min(best[name], time.perf_counter() - start)
    return best


COLD = {"evdet": "import sys; from evdet.io import read_events; read_events(sys.argv[1])",
        "h5py": "import sys, h5py, hdf5plugin; f = h5py.File(sys.argv[1], 'r'); "
                "[f['events'][k][:] for k in 'xypt']"}


def cold_time(code: str, path: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    return time.perf_counter() - start


def report(title: str, times: dict[str, float]) -> None:
    ours = times["evdet"]
    print(f"{title}: evdet {ours * 1e3:8.1f} ms, h5py {times['h5py'] * 1e3:8.1f} ms, "
          f"h5py / evdet = {times['h5py'] / ours:4.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_td.h5"
        write_mirror(path, args.events)
        print(f"RVT mirror file: {args.events / 1e6:.0f} M events, {path.stat().st_size / 2**20:.0f} MiB")
        n = args.events
        report("whole file, warm", best_times({"evdet": lambda: evdet_whole(path),
                                               "h5py": lambda: h5py_whole(path)}, n, args.rounds))
        cold = {"evdet": float("inf"), "h5py": float("inf")}
        for _ in range(args.rounds):
            for name, code in COLD.items():
                cold[name] = min(cold[name], cold_time(code, path))
        report("whole file, cold (fresh process, imports included)", cold)
        report(f"{WINDOW_US // 1000} ms windows, warm", best_times({"evdet": lambda: evdet_windows(path),
                                                                 "h5py": lambda: h5py_windows(path)},
                                                                n, args.rounds))


if __name__ == "__main__":
    main()
