"""Throughput of evdet representations vs tonic (baseline) on the same events, measured in the same run.

    python benchmarks/bench_representations.py [--num-events 20000000] [--repeats 3]

Events: uniform random over a 304x240 sensor (ATIS / Gen1 size), times sorted over 1 s.
Pairs (same work on both sides):
- histo (10 bins of 100 ms)               vs tonic.functional.to_frame_numpy(n_time_bins=10)
- event_cube (1 bin, 10 micro-bins, signed) vs tonic.functional.to_voxel_grid_numpy(n_time_bins=10)
- stacked_histogram (1 bin, 10 micro-bins)  vs tonic.functional.to_frame_numpy(n_time_bins=10)
Prints events/s of each side and evdet / tonic. Goal: histo >= 10x tonic.
The first evdet call (numba compilation or cache load) is excluded; timings are the best of ``repeats``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evdet.io.dtypes import EVENT_DTYPE
from evdet.preprocessing import events_to_tensor

HEIGHT, WIDTH = 240, 304
DURATION = 1_000_000


def make_events(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["x"] = rng.integers(0, WIDTH, n, dtype=np.uint16)
    ev["y"] = rng.integers(0, HEIGHT, n, dtype=np.uint16)
    ev["p"] = rng.integers(0, 2, n, dtype=np.int16)
    ev["t"] = np.sort(rng.integers(0, DURATION, n))
    return ev


def best_time(fn, repeats: int, prepare=None) -> float:
    best = float("inf")
    for _ in range(repeats):
        arg = prepare() if prepare is not None else None
        t0 = time.perf_counter()
        fn(arg)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-events", type=int, default=20_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tonic-repeats", type=int, default=1)
    args = parser.parse_args()
    import tonic.functional as tf

    ev = make_events(args.num_events)
    n = ev.size
    sensor = (WIDTH, HEIGHT, 2)
    cases = {
        "histo": (
            lambda _: events_to_tensor(ev, "histo", 10, HEIGHT, WIDTH, DURATION // 10),
            lambda _: tf.to_frame_numpy(ev, sensor, n_time_bins=10),
            None,
        ),
        "event_cube": (
            lambda _: events_to_tensor(ev, "event_cube", 1, HEIGHT, WIDTH, DURATION, num_utbins=10,
                                       split_polarity=False),
            lambda copy: tf.to_voxel_grid_numpy(copy, sensor, n_time_bins=10),
            lambda: ev.copy(),  # tonic overwrites p in place
        ),
        "stacked_histogram": (
            lambda _: events_to_tensor(ev, "stacked_histogram", 1, HEIGHT, WIDTH, DURATION, num_utbins=10),
            lambda _: tf.to_frame_numpy(ev, sensor, n_time_bins=10),
            None,
        ),
    }
    print(f"{n:,} events, {HEIGHT}x{WIDTH}, numpy {np.__version__}")
    print(f"{'representation':<20}{'evdet ev/s':>14}{'tonic ev/s':>14}{'ratio':>9}")
    for name, (ours, theirs, prepare) in cases.items():
        events_to_tensor(ev[:1000], name, 1, HEIGHT, WIDTH, DURATION)  # compile / load the numba cache
        t_ours = best_time(ours, args.repeats)
        t_theirs = best_time(theirs, args.tonic_repeats, prepare)
        print(f"{name:<20}{n / t_ours:>14.3e}{n / t_theirs:>14.3e}{t_theirs / t_ours:>8.1f}x")


if __name__ == "__main__":
    main()
