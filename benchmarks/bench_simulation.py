"""Speed of the synthetic event-camera simulator (``evdet.simulation``).

Run: ``python benchmarks/bench_simulation.py [--seconds 4] [--seeds 2]``.

Figures: simulated seconds per CPU second of one core (``time.process_time``, which survives a loaded
machine; wall time is printed too) for the ``gen1-like`` preset (304x240) and ``tiny`` (128x96).
Baseline measured in the same run: the same recordings rendered at a fixed 1 ms step (the classic
fixed-step simulator) instead of the adaptive ESIM step; the ratio of speeds and of event counts says
how much the adaptive step saves and how little it changes the output.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

from evdet.simulation import PRESETS, SimulationConfig, simulate_recording


def measure(config: SimulationConfig, seeds: list[int]) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, events) summed over ``seeds``."""
    cpu, wall, events = 0.0, 0.0, 0
    for s in seeds:
        c0, w0 = time.process_time(), time.perf_counter()
        ev, _ = simulate_recording(config, s)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        events += ev.size
    return cpu, wall, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="simulated seconds per recording")
    parser.add_argument("--seeds", type=int, default=2, help="recordings per configuration")
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    dur = int(args.seconds * 1e6)
    simulate_recording(PRESETS["tiny"].simulation.replace(duration_us=100_000), 0)  # load numba caches
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.seeds} recordings x "
          f"{args.seconds:g} s per configuration")
    print(f"{'configuration':38s} {'sim s/CPU s':>11s} {'sim s/wall s':>12s} {'kev/s':>8s}")
    results = {}
    for name in ("gen1-like", "tiny"):
        adaptive = PRESETS[name].simulation.replace(duration_us=dur)
        fixed = dataclasses.replace(adaptive, sensor=dataclasses.replace(adaptive.sensor, min_step_us=1000,
                                                                           max_step_us=1000))
        for label, cfg in (("adaptive step (default)", adaptive), ("fixed 1 ms step (baseline)", fixed)):
            cpu, wall, events = measure(cfg, seeds)
            sim = args.seconds * len(seeds)
            results[name, label] = (sim / cpu, events)
            print(f"{name + ', ' + label:38s} {sim / cpu:11.2f} {sim / wall:12.2f} {events / sim / 1e3:8.1f}")
        (fast, n_fast), (slow, n_slow) = results[name, "adaptive step (default)"], \
            results[name, "fixed 1 ms step (baseline)"]
        print(f"  {name}: adaptive / fixed-1ms speed ratio {fast / slow:.2f}x, event-count ratio "
              f"{n_fast / max(n_slow, 1):.4f}; real-time factor (one core) {fast:.2f}x")


if __name__ == "__main__":
    main()
