"""Decode speed of evdet's readers against expelliarmus and a plain numpy decode, warm and cold.

Run: ``python benchmarks/bench_decode.py [--events N] [--cold-events N] [--cold-rounds K]``. Needs the
``bench`` extra (expelliarmus) for the peer figures; the EVT2/EVT3 part needs ``../shared/real-data``.

- cold: the whole process as a user meets it, ``python -c "read_events(path)"`` against
  ``python -c "Wizard(encoding).read(path)"`` (interpreter start, imports, numba's cache loading and the
  decode all count), on a ``--cold-events`` DAT file (10 M) and the real EVT 2.0/3.0 samples; K rounds,
  interleaved, median and best wall time, and the floor (``python -c "import numpy"``).
- warm: events/s of repeated reads in one process (best of interleaved runs: 4 rounds for the >= 20 M
  DAT file, >= 1 s of work each for the small RAW samples) in the state of a long-running process: the
  numba kernels loaded (after 67 M DAT records, ``evdet.io.dat_records``) and output arrays from numpy
  (after 2 GiB of them, ``evdet.io.dtypes.empty_events``).

Ratios are measured in the same run, so they survive a loaded machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from evdet.io import EVENT_DTYPE, RawReader, write_dat
from evdet.io.dat import DatReader
from evdet.io.dtypes import MAPPED_BUDGET_BYTES, empty_events

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "real-data"

try:
    from expelliarmus import Wizard
except ImportError:  # pragma: no cover - optional peer
    Wizard = None


def best_rates(fns: dict[str, object], n_events: int, min_time: float = 1.0,
               min_rounds: int = 3) -> dict[str, float]:
    """Events/s of each function (best run). The functions run in interleaved rounds, so that a load
    change on a shared machine affects all of them alike; rounds repeat until every function has done
    ``min_time`` seconds of work and ``min_rounds`` runs."""
    best = {name: float("inf") for name in fns}
    total = {name: 0.0 for name in fns}
    rounds = 0
    while rounds < min_rounds or min(total.values()) < min_time:
        for name, fn in fns.items():
            start = time.perf_counter()
            out = fn()
            elapsed = time.perf_counter() - start
            assert len(out) == n_events, (name, len(out), n_events)
            del out
            best[name] = min(best[name], elapsed)
            total[name] += elapsed
        rounds += 1
    return {name: n_events / b for name, b in best.items()}


def numpy_dat_decode(path: Path, data_offset: int) -> np.ndarray:
    """Baseline: ``np.fromfile`` + vectorised bit operations (including the 32-bit unwrap)."""
    records = np.fromfile(path, dtype=np.uint32, offset=data_offset).reshape(-1, 2)
    t32 = records[:, 0].astype(np.int64)
    w = records[:, 1]
    out = np.empty(len(records), dtype=EVENT_DTYPE)
    out["x"] = w & 0x3FFF
    out["y"] = (w >> 14) & 0x3FFF
    out["p"] = (w >> 28) & 1
    wraps = np.zeros(len(t32), dtype=np.int64)
    wraps[1:] = np.cumsum(np.diff(t32) < -(1 << 31))
    out["t"] = t32 + (wraps << 32)
    return out


def synthetic_events(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    events = np.empty(n, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, 1280, n, dtype=np.uint16)
    events["y"] = rng.integers(0, 720, n, dtype=np.uint16)
    events["p"] = rng.integers(0, 2, n, dtype=np.int16)
    events["t"] = np.cumsum(rng.integers(0, 3, n, dtype=np.int64))  # ~1 event/µs
    return events


COLD_CODE = {
    "evdet read_events": "import sys; from evdet.io import read_events; read_events(sys.argv[1])",
    "expelliarmus Wizard.read": "import sys; from expelliarmus import Wizard; "
                                "Wizard(encoding=sys.argv[2]).read(sys.argv[1])",
    "floor: python + import numpy": "import numpy",
}
"""What each fresh process of the cold part runs (``argv``: the file, expelliarmus' encoding name)."""


def cold_times(path: Path, encoding: str, rounds: int) -> dict[str, list[float]]:
    """Wall seconds of each ``COLD_CODE`` process on ``path``, ``rounds`` interleaved runs each."""
    codes = {k: v for k, v in COLD_CODE.items() if Wizard is not None or not k.startswith("expelliarmus")}
    times: dict[str, list[float]] = {k: [] for k in codes}
    for _ in range(rounds):
        for name, code in codes.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code, str(path), encoding], check=True)
            times[name].append(time.perf_counter() - start)
    return times


def report_cold(title: str, times: dict[str, list[float]]) -> None:
    print(title)
    ours = times["evdet read_events"]
    for label, ts in times.items():
        ratio = "" if label.startswith("floor") else (
            f"   this / evdet: median {statistics.median(ts) / statistics.median(ours):5.2f}x, "
            f"best {min(ts) / min(ours):5.2f}x")
        print(f"  {label:30s} median {statistics.median(ts) * 1e3:6.0f} ms, best {min(ts) * 1e3:6.0f} ms"
              f"{ratio}")


def bench_cold(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cold.dat"
        write_dat(path, synthetic_events(n, seed=1), 720, 1280)
        report_cold(f"cold DAT read, {n / 1e6:.0f} M events: a fresh process each ({rounds} rounds)",
                    cold_times(path, "dat", rounds))
    for name, encoding in (("evt2_sample.raw", "evt2"), ("evt3_sample.raw", "evt3")):
        path = REAL_DATA / name
        if path.exists():
            report_cold(f"cold {encoding.upper()} read, {name}: a fresh process each ({rounds} rounds)",
                        cold_times(path, encoding, rounds))


def bench_dat(n: int) -> None:
    import evdet.io.dat_kernels  # noqa: F401  (warm: the kernels a long-running process has loaded)

    for _ in range(MAPPED_BUDGET_BYTES // (16 * n) + 1):  # and its output arrays come from numpy
        empty_events(n)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_td.dat"
        write_dat(path, synthetic_events(n), 720, 1280)
        with DatReader(path) as reader:
            offset = reader.data_offset
        fns = {"evdet DatReader.load_all": lambda: DatReader(path).load_all(),
               "numpy fromfile + bit ops": lambda: numpy_dat_decode(path, offset)}
        if Wizard is not None:
            wizard = Wizard(encoding="dat")
            fns["expelliarmus Wizard.read"] = lambda: wizard.read(path)
        rates = best_rates(fns, n, min_time=0.0, min_rounds=4)
    report(f"DAT decode, {n / 1e6:.0f} M events (synthetic file written by write_dat)", rates)


def bench_raw(name: str, encoding: str) -> None:
    path = REAL_DATA / name
    if not path.exists():
        print(f"{name}: real-data folder not found, skipped")
        return
    n = RawReader(path).load_all().size
    fns = {"evdet RawReader.load_all": lambda: RawReader(path).load_all()}
    if Wizard is not None:
        wizard = Wizard(encoding=encoding)
        fns["expelliarmus Wizard.read"] = lambda: wizard.read(path)
    rates = best_rates(fns, n, min_time=1.0)
    report(f"{encoding.upper()} decode, {name} ({n} events, repeated to >= 1 s of work)", rates)


def report(title: str, rates: dict[str, float]) -> None:
    print(title)
    ours = rates[next(iter(rates))]
    for label, rate in rates.items():
        print(f"  {label:28s} {rate / 1e6:8.1f} M ev/s   evdet / this = {ours / rate:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000_000,
                        help="events of the warm DAT file (>= 20 M)")
    parser.add_argument("--cold-events", type=int, default=10_000_000, help="events in the cold DAT file")
    parser.add_argument("--cold-rounds", type=int, default=7, help="fresh processes per reader and file")
    args = parser.parse_args()
    if Wizard is None:
        print("expelliarmus not installed (pip install 'evdet[bench]'): peer figures skipped")
    bench_cold(args.cold_events, args.cold_rounds)
    bench_dat(args.events)
    bench_raw("evt2_sample.raw", "evt2")
    bench_raw("evt3_sample.raw", "evt3")


if __name__ == "__main__":
    main()
