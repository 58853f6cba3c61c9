"""Per-bin forward time of RVT's backbones next to Vanilla at the same input, CPU, backbone only.

    python benchmarks/bench_rvt_backbone.py [--height 240] [--width 304] [--channels 20] [--threads 1]

Builds each backbone with ``build_backbone_for`` (RVT at ``partition_split_32`` 1, as RVT on Gen1), runs
two warm-up bins, then times ``--repeats`` single-bin calls (the state carried over, as in streaming) and
prints the parameter count and the median ms per bin, and each time relative to Vanilla's (the baseline,
measured in the same run).
"""

from __future__ import annotations

import argparse
import time

import torch

from evdet.inference.model_config import ModelConfig, RVTConfig, build_backbone_for

NAMES = ("Vanilla", "rvt-t", "rvt-s", "rvt-b")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=304)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.rand(1, 1, args.channels, args.height, args.width)
    base = None
    for name in NAMES:
        net = build_backbone_for(ModelConfig(backbone=name, rvt=RVTConfig(partition_split_32=1)),
                                 args.channels).eval()
        times = []
        with torch.no_grad():
            net(x)
            net(x)
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                net(x)
                times.append(time.perf_counter() - t0)
        ms = 1000 * sorted(times)[len(times) // 2]
        base = ms if base is None else base
        print(f"{name:8s} {sum(p.numel() for p in net.parameters()):>11,d} params  {ms:7.1f} ms/bin  "
              f"x{ms / base:.2f} of Vanilla")


if __name__ == "__main__":
    main()
