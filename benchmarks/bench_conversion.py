"""End-to-end conversion throughput: .dat -> HDF5 histo (gzip), with 1 and 2 worker processes.

    python benchmarks/bench_conversion.py [--num-files 4] [--events-per-file 2000000] [--duration-s 10]

Writes random recordings (304x240, sorted times) to a temporary folder, converts them with
``generate_hdf5(..., representation="histo", delta_t=50_000)`` and prints events/s of each run and the
ratio of 2 workers to 1 worker (the baseline), measured in the same run. Worker start-up (spawn) and
numba cache loading are included: this is what a user waits for.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from evdet.io.dat import write_dat
from evdet.io.dtypes import EVENT_DTYPE
from evdet.preprocessing.convert import generate_hdf5

HEIGHT, WIDTH = 240, 304


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-files", type=int, default=4)
    parser.add_argument("--events-per-file", type=int, default=2_000_000)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--compression", default="gzip", choices=["gzip", "lzf", "none"])
    args = parser.parse_args()
    compression = None if args.compression == "none" else args.compression
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        n = args.events_per_file
        for i in range(args.num_files):
            ev = np.zeros(n, dtype=EVENT_DTYPE)
            ev["x"] = rng.integers(0, WIDTH, n)
            ev["y"] = rng.integers(0, HEIGHT, n)
            ev["p"] = rng.integers(0, 2, n)
            ev["t"] = np.sort(rng.integers(0, int(args.duration_s * 1e6), n))
            write_dat(src / f"rec{i}_td.dat", ev, HEIGHT, WIDTH)
        generate_hdf5(src / "rec0_td.dat", Path(tmp) / "warmup", delta_t=1_000_000, progress=False)
        total = n * args.num_files
        print(f"{args.num_files} files x {n:,} events ({args.duration_s} s each, {HEIGHT}x{WIDTH}), histo, "
              f"delta_t 50 ms, compression {args.compression}")
        rates = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            generate_hdf5(src, Path(tmp) / f"out{workers}", delta_t=50_000, num_workers=workers,
                          compression=compression, progress=False)
            elapsed = time.perf_counter() - t0
            rates[workers] = total / elapsed
            print(f"  {workers} worker(s): {elapsed:6.2f} s  {rates[workers]:.3e} events/s")
        print(f"  2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
