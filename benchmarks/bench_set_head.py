"""Set head (``--head set``) vs anchor head: matching cost, training speed and AP on a synthetic dataset.

    python benchmarks/bench_set_head.py                       # all parts, tiny synthetic dataset in /tmp
    python benchmarks/bench_set_head.py --skip-train          # matching / step timings only (~1 min)
    python benchmarks/bench_set_head.py --data DIR --steps 300

Part 1: Hungarian matching of one batch (B = 8, Q = 100, C = 3, 20 targets per image) against a whole set
head training step on the same batch (backbone + decoder + matching of every decoder layer + backward +
AdamW), in the same run: ratio = matching time / step time.

Part 2: the anchor head and the set head trained with ``evdet.training.run.train`` (what ``evdet-train``
runs) with the same budget of optimizer steps, data, backbone and optimizer on the ``tiny`` synthetic
dataset (``evdet-make-synthetic DIR --preset tiny``), then scored on val (COCO AP, AP50); training speed
as optimizer steps per second of the whole run (one final validation included) and of isolated steps.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from evdet.inference.model_config import (
    AnchorHeadConfig,
    DetrHeadConfig,
    ModelConfig,
    VanillaConfig,
    build_detector,
)
from evdet.models import HungarianMatcher


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_matching(repeat: int) -> None:
    gen = torch.Generator().manual_seed(0)
    b, q, c, n = 8, 100, 3, 20
    outputs = {"pred_logits": torch.randn(b, q, c + 1, generator=gen),
               "pred_boxes": torch.rand(b, q, 4, generator=gen) * 0.5 + 0.1}
    targets = [{"labels": torch.randint(0, c, (n,), generator=gen),
                "boxes": torch.rand(n, 4, generator=gen) * 0.5 + 0.1} for _ in range(b)]
    matcher = HungarianMatcher()
    t_match = _median_time(lambda: matcher(outputs, targets), repeat * 5)

    torch.manual_seed(0)
    dec_layers = 6
    det = build_detector(ModelConfig(head="set", vanilla=VanillaConfig(base=8, cout=64),
                                     set=DetrHeadConfig(num_queries=q, dec_layers=dec_layers, hidden_dim=128,
                                                        nheads=8, dim_feedforward=512)), 2, c)
    opt = torch.optim.AdamW(det.parameters(), lr=1e-4)
    x = torch.rand(1, b, 2, 96, 128)  # T = 1, the tiny preset's size
    scale = torch.tensor([128.0, 96.0, 128.0, 96.0])
    tg = []
    for t in targets:
        cxcywh = t["boxes"] * scale
        xyxy = torch.cat((cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2), 1)
        tg.append(torch.cat((xyxy, t["labels"].float()[:, None]), 1))
    labeled = torch.ones(1, b, dtype=torch.bool)

    def step():
        det.reset_all()
        out = det.compute_loss(x, [tg], labeled)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()

    step()  # warm-up
    t_step = _median_time(step, repeat)
    print(f"[matching] B={b} Q={q} C={c} {n} targets/image: one matcher call {t_match * 1e3:.2f} ms; "
          f"{dec_layers} calls per step (final + {dec_layers - 1} aux) {dec_layers * t_match * 1e3:.1f} ms")
    print(f"[matching] set-head training step (T=1, B={b}, 96x128, base 8/cout 64, D=128, {dec_layers} "
          f"layers): {t_step * 1e3:.0f} ms")
    print(f"[matching] ratio one call / step = {t_match / t_step:.3f}; all {dec_layers} calls / step = "
          f"{dec_layers * t_match / t_step:.3f}")


SMALL = dict(base=8, cout=32)
SET = dict(num_queries=20, dec_layers=3, hidden_dim=64, nheads=4, dim_feedforward=256)


def _config(head: str, **kw) -> ModelConfig:
    return ModelConfig(head=head, vanilla=VanillaConfig(**SMALL), anchor=AnchorHeadConfig(anchor_size=16.0),
                       set=DetrHeadConfig(**SET), **kw)


def _detectors(c: int):
    torch.manual_seed(0)
    anchor = build_detector(_config("anchor"), 2, c)
    torch.manual_seed(0)
    sett = build_detector(_config("set"), 2, c)
    return {"anchor": anchor, "set": sett}


def bench_step_speed(t: int, b: int, height: int, width: int, repeat: int) -> None:
    x = torch.rand(t, b, 2, height, width)
    tg = [[torch.tensor([[8.0, 8, 30, 28, 0], [36, 20, 60, 44, 1]]) for _ in range(b)] for _ in range(t)]
    labeled = torch.ones(t, b, dtype=torch.bool)
    times = {}
    for name, det in _detectors(3).items():
        opt = torch.optim.AdamW(det.parameters(), lr=1e-3)

        def step(det=det, opt=opt):
            det.reset_all()
            out = det.compute_loss(x, tg, labeled)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()

        step()
        times[name] = _median_time(step, repeat)
    print(f"[speed] isolated training step T={t} B={b} {height}x{width}: anchor "
          f"{times['anchor'] * 1e3:.0f} ms, set {times['set'] * 1e3:.0f} ms; "
          f"set / anchor = {times['set'] / times['anchor']:.2f}")


def bench_training(data: Path, steps: int, t: int, b: int, height: int, width: int) -> None:
    from evdet.data.config import DataConfig
    from evdet.training.config import TrainConfig
    from evdet.training.run import train

    dc = DataConfig(num_tbins=t, batch_size=b, height=height, width=width, num_workers=0)
    tc = TrainConfig(lr=2e-3, max_steps=steps, max_epochs=-1, check_val_every_n_epoch=10_000,
                     log_images_every_n_steps=0, accelerator="cpu", precision="32-true")
    rows = {}
    for head in ("set", "anchor"):
        mc = _config(head, score_thresh=0.01)
        with tempfile.TemporaryDirectory() as root:
            t0 = time.perf_counter()
            result = train(data, root, model_config=mc, data_config=dc, train_config=tc, progress=False)
            wall = time.perf_counter() - t0
        val = result.metrics.get("val", {})
        rows[head] = (val.get("AP", float("nan")), val.get("AP50", float("nan")), steps / wall, wall)
    print(f"[train] {steps} steps, T={t} B={b} {height}x{width}, backbone Vanilla base {SMALL['base']} cout "
          f"{SMALL['cout']}, AdamW lr 2e-3 cosine; set head {SET}")
    for head, (ap, ap50, sps, wall) in rows.items():
        print(f"[train] {head:6s} AP {ap:.3f}  AP50 {ap50:.3f}  {sps:.2f} steps/s "
              f"({wall:.0f} s incl. final val)")
    print(f"[train] set / anchor: AP50 ratio {rows['set'][1] / max(rows['anchor'][1], 1e-9):.2f}, "
          f"speed ratio {rows['set'][2] / rows['anchor'][2]:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "evdet_bench_set_head_tiny")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--only-train", action="store_true", help="skip the matching and step timings")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    if not args.only_train:
        bench_matching(args.repeat)
        bench_step_speed(4, 4, 48, 64, args.repeat)
    if args.skip_train:
        return
    if not (args.data / "label_map_dictionary.json").exists():
        subprocess.run(["evdet-make-synthetic", str(args.data), "--preset", "tiny"], check=True)
    bench_training(args.data, args.steps, 4, 4, 48, 64)


if __name__ == "__main__":
    sys.exit(main())
