"""Peak memory of reading a burst of events at one timestamp, whole and in pieces (issue 12 §2).

Run: ``python benchmarks/bench_window_memory.py [--events N] [--max-events M]``. Writes a DAT and an
EVT 2.0 RAW file holding N events at one timestamp (then one later event), and in a fresh subprocess
each, measures the peak traced memory (``tracemalloc``, after a warm-up read so that imports and numba
compilation are outside it) of:

- ``windows unbounded``: ``iter_windows(max_events=None)``, the behaviour before the cap (the whole
  burst is one window);
- ``windows capped``: ``iter_windows(max_events=M)``: the reader refuses the window (``ValueError``)
  before it holds more than M events;
- ``window pieces``: ``iter_window_pieces(max_events=M)``: the window streams in pieces of M events;
- ``frames whole`` / ``frames pieces``: the two frames of the burst as ``evdet-detect`` and
  ``evdet-demo-video`` read them (``read_frames``, histo, 50 ms bins), with pieces larger than the burst
  (the behaviour before) and of M events; both give the same tensor.

Prints MiB and each ratio against the unbounded read of the same kind, measured in the same run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from evdet.io import EVENT_DTYPE, write_dat

CHILD = """
import sys, tracemalloc
from evdet.io import open_events
from evdet.data.sources import probe_video, read_frames
path, mode, m = sys.argv[1], sys.argv[2], int(sys.argv[3])

def run():
    if mode.startswith("frames"):
        spec = probe_video(path, delta_t=50_000)
        pieces = m if mode == "frames-pieces" else 2**40
        frames = read_frames(spec, 0, 2, spec.sensor_size, piece_events=pieces)
        return f"frames {tuple(frames.shape)}, sum {float(frames.sum()):.1f}"
    with open_events(path) as r:
        if mode == "pieces":
            sizes = {}
            for t0, piece, _ in r.iter_window_pieces(1000, max_events=m):
                sizes[t0] = sizes.get(t0, 0) + piece.size
            return f"windows {list(sizes.values())[:2]}"
        try:
            sizes = [w.size for _, w in r.iter_windows(1000, max_events=None if mode == "unbounded" else m)]
            return f"windows {sizes[:2]}"
        except ValueError as error:
            return f"refused: {str(error)[:50]}..."

run()  # warm-up: imports, numba compilation
tracemalloc.start()
outcome = run()
print(tracemalloc.get_traced_memory()[1], outcome)
"""


def write_burst(folder: Path, n: int) -> dict[str, Path]:
    events = np.zeros(n + 1, dtype=EVENT_DTYPE)
    events["x"], events["y"], events["p"], events["t"] = 3, 4, 1, 7
    events["t"][-1] = 5000
    write_dat(folder / "burst.dat", events, height=480, width=640)
    words = np.full(n + 3, (1 << 28) | (7 << 22) | (3 << 11) | 4, dtype=np.uint32)
    words[0] = (8 << 28) | 0
    words[-2], words[-1] = (8 << 28) | 78, (1 << 28) | (8 << 22)  # t = 78 * 64 + 8 = 5000 µs
    raw = folder / "burst.raw"
    raw.write_bytes(b"% evt 2.0\n% geometry 640x480\n% end\n" + words.tobytes())
    return {"dat": folder / "burst.dat", "evt2": raw}


def peak(path: Path, mode: str, max_events: int) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode, str(max_events)],
                         check=True, capture_output=True, text=True).stdout.split(maxsplit=1)
    return int(out[0]), out[1].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--max-events", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = write_burst(Path(tmp), args.events)
        print(f"burst of {args.events} events at one timestamp; max_events / pieces = {args.max_events}")
        for fmt, path in files.items():
            for baseline, modes in (("unbounded", ("capped", "pieces")),
                                    ("frames-whole", ("frames-pieces",))):
                before, what = peak(path, baseline, args.max_events)
                print(f"{fmt:5s} {baseline:13s} {before / 2**20:8.1f} MiB  ({what})")
                for mode in modes:
                    after, what = peak(path, mode, args.max_events)
                    ratio = after / before
                    print(f"{fmt:5s} {mode:13s} {after / 2**20:8.1f} MiB  ratio {ratio:.3f}  ({what})")


if __name__ == "__main__":
    main()
