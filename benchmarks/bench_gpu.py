"""The GPU figures of the RVT models (rvt-t/s/b + YOLOX) and the RT-DETR head, in one short run for a lent
device: streaming ms per bin at batch 1 (float32 and AMP) and training bins/s with AMP, next to Vanilla +
anchor at the same input, and RT-DETR's Hungarian-matching share of a training step.

    python benchmarks/bench_gpu.py --out gpu.json                   # on the GPU (about 5 min on an H100)
    python benchmarks/bench_gpu.py --device cpu --quick             # checks the script here (about 1 min)

Models, all at 20 input channels (RVT's stacked histogram) and 2 classes (Gen1):

- ``Vanilla+anchor``: evdet's defaults (``ModelConfig()``: Vanilla base 16 / cout 256, anchor head);
- ``rvt-t/s/b+yolox``: RVT's sizes (YOLOX depth 0.33, 0.33, 0.67; ``partition_split_32`` 1, as RVT on
  Gen1);
- ``rvt-t+rtdetr``: rvt-t with the RT-DETR head at its defaults (RT-DETR's sizes: D 256, 300 queries,
  6 decoder layers, 100 denoising queries), the EvRT-DETR-like model of docs/set_head.md.

(a) Streaming: one bin per call, the state carried, ``detect(x, 0.1, 0.45, 100)`` (RVT's thresholds;
    forward and decoding), ``--warmup`` bins then the median of ``--bins`` timed bins, CUDA-synchronised
    wall time; float32, then under ``torch.autocast(float16)``. RVT publishes 10.2 ms per bin for RVT-B on
    a T4 (its paper, Gen1): the table prints each rvt-b time as a ratio to it (another card: compare with
    care), and every model's time as a ratio to Vanilla+anchor's in the same run.
(b) Training with AMP: ``compute_loss`` on ``--t`` × ``--b`` bins (random sparse counts, 1-7 random boxes
    per frame, every frame labelled), ``GradScaler``, AdamW; median step time of ``--steps`` steps after
    two warm-up steps; bins/s = T·B / step. For RT-DETR, the share of the step spent in the Hungarian
    matcher (scipy on the CPU, every decoder layer and the proposals).

A model that runs out of memory is reported as such, never skipped silently. ``--out`` writes the figures
as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

import torch

from evdet.inference.model_config import ModelConfig, RVTConfig, YoloxHeadConfig, build_detector

RVT_B_T4_MS = 10.2  # RVT's paper: RVT-B, Gen1, per bin on a T4
IN_CHANNELS, NUM_CLASSES = 20, 2


def model_configs() -> dict[str, ModelConfig]:
    rvt = RVTConfig(partition_split_32=1)
    out = {"Vanilla+anchor": ModelConfig()}
    for size, depth in (("rvt-t", 0.33), ("rvt-s", 0.33), ("rvt-b", 0.67)):
        out[f"{size}+yolox"] = ModelConfig(backbone=size, head="yolox", rvt=rvt,
                                           yolox=YoloxHeadConfig(depth=depth))
    out["rvt-t+rtdetr"] = ModelConfig(backbone="rvt-t", head="rtdetr", rvt=rvt)
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, amp: bool):
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)


def random_input(generator: torch.Generator, t: int, b: int, height: int, width: int) -> torch.Tensor:
    """Stacked-histogram-like counts ``Tensor[T, B, 20, H, W]`` (10 % of the cells hold 1-10 events)."""
    counts = torch.randint(1, 11, (t, b, IN_CHANNELS, height, width), generator=generator).float()
    return counts * (torch.rand(t, b, IN_CHANNELS, height, width, generator=generator) < 0.1)


def random_targets(generator: torch.Generator, t: int, b: int, height: int, width: int,
                   num_classes: int = NUM_CLASSES) -> list[list[torch.Tensor]]:
    """Per frame ``Tensor[n, 5]`` (x1, y1, x2, y2, class), 1-7 boxes of 4 px to a quarter of the height."""
    def frame() -> torch.Tensor:
        n = int(torch.randint(1, 8, (1,), generator=generator))
        xy = torch.rand(n, 2, generator=generator) * torch.tensor([width * 0.7, height * 0.7])
        wh = torch.rand(n, 2, generator=generator) * (height / 4) + 4
        cls = torch.randint(0, num_classes, (n, 1), generator=generator).float()
        return torch.cat([xy, xy + wh, cls], 1)

    return [[frame() for _ in range(b)] for _ in range(t)]


def ms_per_bin(det, device: torch.device, height: int, width: int, warmup: int, bins: int,
               amp: bool) -> float:
    x = random_input(torch.Generator().manual_seed(0), warmup + bins, 1, height, width).to(device)
    det.eval()
    times = []
    with torch.no_grad(), autocast(device, amp):
        det.reset_all()
        for i in range(warmup + bins):
            sync(device)
            t0 = time.perf_counter()
            det.detect(x[i:i + 1], 0.1, 0.45, 100)
            sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


@contextlib.contextmanager
def matcher_timer(det, device: torch.device):
    """Wall seconds spent in ``det``'s Hungarian matcher while active (``spent[0]``); no-op for heads
    without one."""
    spent = [0.0]
    matcher = getattr(getattr(det.head, "criterion", None), "matcher", None)
    if matcher is None:
        yield spent
        return
    original = type(matcher).forward

    def timed(self, *args, **kwargs):
        sync(device)
        t0 = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            sync(device)
            spent[0] += time.perf_counter() - t0

    type(matcher).forward = timed
    try:
        yield spent
    finally:
        type(matcher).forward = original


def train_step_s(det, device: torch.device, t: int, b: int, height: int, width: int, steps: int
                 ) -> tuple[float, float | None]:
    """Median AMP training-step time (s) and the matcher's share of it (None without a matcher)."""
    g = torch.Generator().manual_seed(1)
    x = random_input(g, t, b, height, width).to(device)
    targets = [[f.to(device) for f in row] for row in random_targets(g, t, b, height, width)]
    labeled = torch.ones(t, b, dtype=torch.bool, device=device)
    det.train()
    opt = torch.optim.AdamW(det.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    times, shares = [], []
    with matcher_timer(det, device) as spent:
        for i in range(steps + 2):
            spent[0] = 0.0
            sync(device)
            t0 = time.perf_counter()
            det.reset_all()
            with autocast(device, True):
                loss = det.compute_loss(x, targets, labeled)["loss"]
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sync(device)
            if i >= 2:
                times.append(time.perf_counter() - t0)
                shares.append(spent[0] / times[-1])
    has_matcher = getattr(getattr(det.head, "criterion", None), "matcher", None) is not None
    return statistics.median(times), statistics.median(shares) if has_matcher else None


def run_model(name: str, config: ModelConfig, device: torch.device, args) -> dict:
    torch.manual_seed(0)
    det = build_detector(config, IN_CHANNELS, NUM_CLASSES).to(device)
    row: dict = {"model": name, "params": sum(p.numel() for p in det.parameters())}
    size = (args.height, args.width)
    for key, fn, fn_args in (("ms_fp32", ms_per_bin, (*size, args.warmup, args.bins, False)),
                             ("ms_amp", ms_per_bin, (*size, args.warmup, args.bins, True)),
                             ("train", train_step_s, (args.t, args.b, *size, args.steps))):
        try:
            row[key] = fn(det, device, *fn_args)
        except torch.OutOfMemoryError as e:
            row[key] = f"out of memory: {str(e).splitlines()[0]}"
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if isinstance(row["train"], tuple):
        step, share = row.pop("train")
        row["train_step_s"], row["train_bins_per_s"] = step, args.t * args.b / step
        if share is not None:
            row["matching_share"] = share
    if device.type == "cuda":
        row["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
    del det
    return row


def fmt(v, spec: str) -> str:
    return format(v, spec) if isinstance(v, float) else "OOM"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=304)
    p.add_argument("--t", type=int, default=10, help="training sequence length (bins)")
    p.add_argument("--b", type=int, default=8, help="training batch size (RVT's Gen1 batch)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--bins", type=int, default=50)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--models", nargs="+", default=None, help="subset of the models (default: all)")
    p.add_argument("--quick", action="store_true", help="64x96, T 2, B 2, few bins/steps")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.height, args.width, args.t, args.b, args.warmup, args.bins, args.steps = 64, 96, 2, 2, 1, 2, 1
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        print(f"device: {torch.cuda.get_device_name(device)}; torch {torch.__version__}")
    else:
        print(f"device: {device} (AMP as bfloat16 autocast, no GradScaler); torch {torch.__version__}")
    configs = model_configs()
    names = args.models or list(configs)
    rows = [run_model(n, configs[n], device, args) for n in names]
    base = next((r for r in rows if r["model"] == "Vanilla+anchor"), None)
    print(f"\n{args.height}x{args.width}; streaming batch 1 (median of {args.bins} bins); training AMP "
          f"T {args.t} x B {args.b} (median of {args.steps} steps)")
    print(f"{'model':15s} {'params':>11s} {'ms/bin fp32':>11s} {'ms/bin AMP':>10s} {'x Vanilla':>9s} "
          f"{'train bins/s':>12s} {'matching':>8s}")
    for r in rows:
        ratio = (r["ms_amp"] / base["ms_amp"] if base and isinstance(r["ms_amp"], float)
                 and isinstance(base["ms_amp"], float) else None)
        share = f"{100 * r['matching_share']:.1f} %" if "matching_share" in r else "-"
        print(f"{r['model']:15s} {r['params']:11,d} {fmt(r['ms_fp32'], '11.2f')} {fmt(r['ms_amp'], '10.2f')} "
              f"{fmt(ratio, '9.2f') if ratio is not None else '-':>9s} "
              f"{fmt(r.get('train_bins_per_s', 'OOM'), '12.1f')} {share:>8s}")
    for r in rows:
        if r["model"] == "rvt-b+yolox":
            for key in ("ms_fp32", "ms_amp"):
                if isinstance(r[key], float):
                    print(f"rvt-b {key[3:]}: {r[key]:.2f} ms per bin = x {r[key] / RVT_B_T4_MS:.2f} of RVT's "
                          f"published {RVT_B_T4_MS} ms (RVT-B, T4)")
    if args.out is not None:
        args.out.write_text(json.dumps({"device": str(device), "args": vars(args) | {"out": str(args.out)},
                                        "rows": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
