"""RVT's preprocessed format: writer throughput (``generate_rvt``, Gen1, 1 and 2 worker processes) and the
RVT-folder reader's bins/s with 2 DataLoader workers against a plain h5py read of the same Blosc frames in
the same order (uint8, as both deliver them), measured in the same run.

    python benchmarks/bench_rvt.py [--sequences 4] [--duration-s 10] [--event-rate 1e6] [--repeats 3]
                                   [--reader-sequences 8] [--batch-size 8] [--num-tbins 12]

Writer: random Gen1 recordings (304x240 .dat, sorted times, ``--event-rate`` events/s) with labels at
20 Hz; sequences/min and events/s per run (spawn start-up and numba cache loading included: what a user
waits for). Reader: ``build_dataloader`` on the writer's output (stream sampling, flips on), best epoch of
``--repeats`` (persistent workers: start-up excluded, printed separately). The plain baselines read the
same plan, ``data[start:start + T]`` per column with each file opened once, in this process and split
over 2 processes (each reads every other column and sends nothing back: the read alone, with the
loader's parallelism).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import h5py
import numpy as np

from evdet.data import DataConfig, build_dataloader
from evdet.io.dat import write_dat
from evdet.io.dtypes import BBOX_DTYPE, EVENT_DTYPE
from evdet.preprocessing.rvt_convert import generate_rvt


def make_raw(root: Path, split: str, count: int, duration_s: float, rate: float, seed: int) -> int:
    """``count`` Gen1-like recordings in ``root/split``; returns the number of events written."""
    rng = np.random.default_rng(seed)
    total = 0
    (root / split).mkdir(parents=True, exist_ok=True)
    duration = int(duration_s * 1e6)
    for i in range(count):
        n = int(rate * duration_s)
        ev = np.zeros(n, EVENT_DTYPE)
        ev["t"] = np.sort(rng.integers(0, duration, n))
        ev["x"], ev["y"], ev["p"] = rng.integers(0, 304, n), rng.integers(0, 240, n), rng.integers(0, 2, n)
        write_dat(root / split / f"{split}{i}_td.dat", ev, 240, 304)
        times = np.arange(50_000, duration, 50_000)
        boxes = np.zeros(times.size, BBOX_DTYPE)
        boxes["t"], boxes["x"], boxes["y"], boxes["w"], boxes["h"] = times, 50, 60, 60, 40
        np.save(root / split / f"{split}{i}_bbox.npy", boxes)
        total += n
    return total


def bench_writer(tmp: Path, args) -> None:
    raw = tmp / "raw_w"
    events = make_raw(raw, "test", args.sequences, args.duration_s, args.event_rate, 1)
    print(f"writer: {args.sequences} Gen1 sequences of {args.duration_s:g} s, {events / 1e6:.1f} M events")
    base = None
    for rep in range(args.repeats):
        for workers in (1, 2):
            out = tmp / f"out_{rep}_{workers}"
            start = time.perf_counter()
            generate_rvt(raw, out, "gen1", num_workers=workers, progress=False)
            dt = time.perf_counter() - start
            if workers == 1:
                base = dt
            print(f"  run {rep} workers={workers}: {dt:6.2f} s  {args.sequences / dt * 60:7.1f} "
                  f"sequences/min  {events / dt / 1e6:6.2f} M events/s  "
                  f"speed-up vs 1 worker {base / dt:4.2f}x")


def plan_reads(loader) -> list[tuple[str, int, int]]:
    """The loader's epoch plan as plain reads ``(file, start, stop)``, one per non-padding column."""
    videos, t = loader.dataset.videos, loader.dataset.num_tbins
    return [(videos[item.video].tensor_file, item.start_frame, item.start_frame + t)
            for batch in loader.sampler for item in batch if not item.is_padding]


def read_plain(reads: list[tuple[str, int, int]]) -> int:
    """``data[start:stop]`` of each read with plain h5py (each file opened once, uint8); returns the bins
    read."""
    import hdf5plugin  # noqa: F401  (registers the Blosc filter in a fresh process)

    files: dict[str, h5py.File] = {}
    bins = 0
    for path, start, stop in reads:
        f = files.get(path) or files.setdefault(path, h5py.File(path, "r"))
        bins += f["data"][start:stop].shape[0]
    for f in files.values():
        f.close()
    return bins


def bench_reader(tmp: Path, args) -> None:
    raw = tmp / "raw_r"
    make_raw(raw, "train", args.reader_sequences, args.duration_s, args.event_rate, 2)
    generate_rvt(raw, tmp / "rvt", "gen1", num_workers=2, progress=False)
    config = DataConfig(num_tbins=args.num_tbins, batch_size=args.batch_size, num_workers=2, hflip_prob=0.5)
    start = time.perf_counter()
    loader = build_dataloader(tmp / "rvt", "train", config, train=True)
    it = iter(loader)
    next(it)
    print(f"reader: B={args.batch_size} T={args.num_tbins}, {args.reader_sequences} sequences, "
          f"{sum(v.num_frames for v in loader.dataset.videos)} representations 20x240x304 uint8 Blosc; "
          f"first batch (with worker start-up) {time.perf_counter() - start:.2f} s")
    for _ in it:
        pass
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(read_plain, [[], []]))  # start both processes before timing
        for rep in range(args.repeats):
            loader.sampler.set_epoch(rep + 1)
            start = time.perf_counter()
            bins = sum(int(vi.num_valid_bins) for batch in loader for vi in batch.video_infos if vi.path)
            evdet_s = time.perf_counter() - start
            reads = plan_reads(loader)
            start = time.perf_counter()
            assert read_plain(reads) == bins
            plain_s = time.perf_counter() - start
            start = time.perf_counter()
            assert sum(pool.map(read_plain, [reads[0::2], reads[1::2]])) == bins
            plain2_s = time.perf_counter() - start
            print(f"  epoch {rep}: evdet 2 workers {bins / evdet_s:6.0f} bins/s   plain h5py 1 process "
                  f"{bins / plain_s:6.0f} bins/s, 2 processes {bins / plain2_s:6.0f} bins/s   time ratio "
                  f"evdet/plain {evdet_s / plain_s:4.2f}x (1 process) {evdet_s / plain2_s:4.2f}x (2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--event-rate", type=float, default=1e6, help="events per second of recording")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reader-sequences", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-tbins", type=int, default=12)
    parser.add_argument("--skip-writer", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_writer:
            bench_writer(Path(tmp), args)
        bench_reader(Path(tmp), args)


if __name__ == "__main__":
    main()
