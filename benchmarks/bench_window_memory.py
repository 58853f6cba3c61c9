"""Peak memory of ``iter_windows`` over a burst of events at one timestamp (issue 12 §2).

Run: ``python benchmarks/bench_window_memory.py [--events N] [--max-events M]``. Writes a DAT and an
EVT 2.0 RAW file holding N events at one timestamp (then one later event), and in a fresh subprocess
each, measures the peak traced memory (``tracemalloc``) of iterating its windows:

- ``unbounded``: ``max_events=None``, the behaviour before the cap (the whole burst is one window);
- ``capped``: ``max_events=M``: the reader refuses the window (``ValueError``) before it holds more than
  M events.

Prints MiB and the ratio capped / unbounded, measured in the same run.
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
path, cap = sys.argv[1], None if sys.argv[2] == "none" else int(sys.argv[2])
with open_events(path) as r:
    tracemalloc.start()
    try:
        sizes = [w.size for _, w in r.iter_windows(1000, max_events=cap)]
        outcome = f"windows {sizes[:3]}"
    except ValueError as error:
        outcome = f"refused: {str(error)[:60]}..."
    peak = tracemalloc.get_traced_memory()[1]
print(peak, outcome)
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


def peak(path: Path, cap: int | None) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), "none" if cap is None else str(cap)],
                         check=True, capture_output=True, text=True).stdout.split(maxsplit=1)
    return int(out[0]), out[1].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--max-events", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = write_burst(Path(tmp), args.events)
        print(f"burst of {args.events} events at one timestamp; max_events = {args.max_events}")
        for fmt, path in files.items():
            before, what_before = peak(path, None)
            after, what_after = peak(path, args.max_events)
            print(f"{fmt:5s} unbounded {before / 2**20:8.1f} MiB ({what_before})")
            print(f"{fmt:5s} capped    {after / 2**20:8.1f} MiB ({what_after})  ratio {after / before:.3f}")


if __name__ == "__main__":
    main()
