"""RT-DETR head (``--head rtdetr``) against the anchor head: cost per step and per bin, and AP at the anchor
head's quickstart budget on held-out synthetic datasets.

    python benchmarks/bench_rtdetr_head.py OUT_DIR                  # both parts, seeds 1 2 3 (~35 min)
    python benchmarks/bench_rtdetr_head.py OUT_DIR --skip-ap        # part 1 only (~1 min)
    python benchmarks/bench_rtdetr_head.py OUT_DIR --seeds 4 --quick  # checks the script (~3 min)

Part 1 (in process, 1 thread, the quickstart's sizes: Vanilla base 8 / cout 32, T 10, B 4, 96×128, random
inputs with 1-7 boxes per frame): parameters; CPU time of a training step (forward, losses, backward,
AdamW) of each head; the share of an RT-DETR step spent in Hungarian matching (every decoder layer, the
proposals) and the extra time that denoising adds (the step with ``num_denoising`` 0 subtracted); eager
inference per bin at batch 1 at the quickstart's size and at Gen1's 240×304.

Part 2 (through the command-line apps, as a user runs them): for each seed, the quickstart's tiny dataset
(``evdet-make-synthetic --preset tiny --num-train 120 --num-val 12 --seed S --hdf5``; seed 0 is the
quickstart's own, so held-out seeds are the default), the anchor head trained with the quickstart recipe
(the defaults of ``evdet-quickstart``: 3 epochs at 96×128, one loader worker), and RT-DETR with
:data:`RTDETR` trained for as many steps as fit in the anchor run's CPU time (cost per step calibrated
with two short runs, as in ``bench_rvt_vs_vanilla_ap.py``; a run more than 3 % over the budget is redone
once with its steps scaled to it); both scored on val by ``evdet-train
--just-val``. Prints, per seed, AP and AP50 of both and the AP50 gap (RT-DETR − anchor).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_gpu import random_targets  # noqa: E402
from bench_rvt_vs_vanilla_ap import count_parameters, run, train  # noqa: E402

from apps.quickstart import build_parser as quickstart_parser  # noqa: E402

RTDETR = ["--head", "rtdetr", "--rtdetr-hidden-dim", "64", "--rtdetr-nheads", "4", "--rtdetr-ffn", "128",
          "--rtdetr-queries", "20", "--rtdetr-dec-layers", "2", "--rtdetr-denoising", "10",
          "--rtdetr-depth-mult", "0.34", "--rtdetr-grad-clip", "1.0", "--rtdetr-nms", "--lr", "2e-3"]
"""The RT-DETR recipe for the tiny synthetic data (docs/set_head.md): D 64, 4 heads, feed-forward 128,
one AIFI layer, one RepVGG block per fusion block, 20 queries, 2 decoder layers, 10 denoising queries,
AdamW at 2e-3 with the quickstart's cosine schedule, gradient-norm clip 1.0 (evdet's default, not RT-DETR's
0.1), and NMS when decoding (a set head this young still predicts duplicates)."""


#: how far (a fraction) RT-DETR's CPU time may exceed the anchor head's before its run is redone with
#: the number of steps scaled to the budget (the two short calibration runs can under-estimate a step)
OVER_BUDGET = 0.03


def quickstart_recipe() -> argparse.Namespace:
    """The defaults of ``evdet-quickstart`` (sizes, optimizer, epochs, seed)."""
    return quickstart_parser().parse_args(["unused"])


def shared_options(seed: int) -> list[str]:
    """``evdet-train`` options of both heads: the quickstart's data, backbone, sizes and seed."""
    q = quickstart_recipe()
    return ["-T", str(q.num_tbins), "-B", str(q.batch_size), "--height", str(q.height), "--width",
            str(q.width), "--base", str(q.base), "--cout", str(q.cout), "--seed", str(seed),
            "--num-workers", str(q.loader_workers), "--log-images-every-n-steps", "0", "--no-progress"]


def anchor_options() -> list[str]:
    q = quickstart_recipe()
    return ["--head", "anchor", "--anchor-size", str(q.anchor_size), "--lr", str(q.lr)]


# ------------------------------------------------------------------------------------------------ part 1
def _batch(t: int, b: int, height: int, width: int):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(t, b, 2, height, width, generator=g) < 0.1).float()
    return x, random_targets(g, t, b, height, width, 3), torch.ones(t, b, dtype=torch.bool)


def _detector(head_options: list[str], num_denoising: int | None = None):
    """The detector ``evdet-train`` builds from the quickstart's options plus ``head_options`` (3 classes,
    2 input channels); ``num_denoising`` overrides the RT-DETR head's."""
    from dataclasses import replace

    from evdet.apps.train import build_parser, configs_from_args

    from evdet.inference.model_config import build_detector

    args = build_parser().parse_args(["unused", *shared_options(0), *head_options])
    mc, _, _ = configs_from_args(args)
    if num_denoising is not None:
        mc = replace(mc, rtdetr=replace(mc.rtdetr, num_denoising=num_denoising))
    return build_detector(mc, 2, 3)


def _step_time(det, batch, repeat: int) -> float:
    x, targets, labeled = batch
    opt = torch.optim.AdamW(det.parameters(), lr=1e-4)
    times = []
    for i in range(repeat + 2):
        t0 = time.process_time()
        det.reset_all()
        loss = det.compute_loss(x, targets, labeled)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.process_time() - t0)
    return statistics.median(times)


def _matching_share(det, batch, repeat: int) -> float:
    """Fraction of a training step's CPU time spent inside the Hungarian matcher."""
    matcher = det.head.criterion.matcher
    spent = [0.0]
    original = type(matcher).forward

    def timed(self, *args, **kwargs):
        t0 = time.process_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent[0] += time.process_time() - t0

    type(matcher).forward = timed
    try:
        spent[0] = 0.0
        step = _step_time(det, batch, repeat)
        per_step = spent[0] / (repeat + 2)
    finally:
        type(matcher).forward = original
    return per_step / step


def _ms_per_bin(det, height: int, width: int, repeat: int) -> float:
    det.eval()
    x = (torch.rand(1, 1, 2, height, width) < 0.1).float()
    with torch.no_grad():
        det.reset_all()
        for _ in range(3):
            det.detect(x, 0.1, 0.5, 100)
        times = []
        for _ in range(repeat):
            t0 = time.process_time()
            det.detect(x, 0.1, 0.5, 100)
            times.append(time.process_time() - t0)
    det.train()
    return 1000 * statistics.median(times)


def part1(repeat: int) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    q = quickstart_recipe()
    batch = _batch(q.num_tbins, q.batch_size, q.height, q.width)
    anchor, rt = _detector(anchor_options()), _detector(RTDETR)
    rt0 = _detector(RTDETR, num_denoising=0)
    res = {"anchor_params": sum(p.numel() for p in anchor.parameters()),
           "rtdetr_params": sum(p.numel() for p in rt.parameters()),
           "rtdetr_head_params": sum(p.numel() for p in rt.head.parameters()),
           "anchor_step_s": _step_time(anchor, batch, repeat), "rtdetr_step_s": _step_time(rt, batch, repeat),
           "rtdetr_no_dn_step_s": _step_time(rt0, batch, repeat),
           "matching_share": _matching_share(rt, batch, repeat)}
    res["denoising_share"] = (res["rtdetr_step_s"] - res["rtdetr_no_dn_step_s"]) / res["rtdetr_step_s"]
    for h, w in ((q.height, q.width), (240, 304)):
        res[f"anchor_ms_{h}x{w}"] = _ms_per_bin(anchor, h, w, repeat * 4)
        res[f"rtdetr_ms_{h}x{w}"] = _ms_per_bin(rt, h, w, repeat * 4)
    print(f"part 1 (1 thread, CPU time; T {q.num_tbins}, B {q.batch_size}, {q.height}x{q.width}, Vanilla "
          f"base {q.base} / cout {q.cout}; medians of {repeat} steps)")
    print(f"  parameters: anchor detector {res['anchor_params']:,}; RT-DETR detector "
          f"{res['rtdetr_params']:,} (head {res['rtdetr_head_params']:,})")
    print(f"  training step: anchor {res['anchor_step_s']:.3f} s, RT-DETR {res['rtdetr_step_s']:.3f} s "
          f"(x {res['rtdetr_step_s'] / res['anchor_step_s']:.2f})")
    print(f"  RT-DETR step: Hungarian matching {100 * res['matching_share']:.1f} %, denoising "
          f"{100 * res['denoising_share']:.1f} % (step without denoising {res['rtdetr_no_dn_step_s']:.3f} s)")
    for h, w in ((q.height, q.width), (240, 304)):
        a, r = res[f"anchor_ms_{h}x{w}"], res[f"rtdetr_ms_{h}x{w}"]
        print(f"  inference per bin, batch 1, {h}x{w}: anchor {a:.1f} ms, RT-DETR {r:.1f} ms (x {r / a:.2f})")
    return res


# ------------------------------------------------------------------------------------------------ part 2
def make_tiny(out: Path, seed: int, quick: bool, env: dict, bin_dir: Path) -> Path:
    """The quickstart's dataset for ``seed`` under ``out/data{seed}`` (reused when complete)."""
    q = quickstart_recipe()
    n_train, n_val = (8, 2) if quick else (q.num_train, q.num_val)
    data = out / f"data{seed}{'_quick' if quick else ''}"
    if not (data / "hdf5" / "val").is_dir():
        run([str(bin_dir / "evdet-make-synthetic"), str(data), "--preset", "tiny", "--num-train",
             str(n_train), "--num-val", str(n_val), "--num-test", "0", "--seed", str(seed), "--hdf5",
             "--no-progress", *(["--overwrite"] if data.exists() else [])], env)
    return data / "hdf5"


def part2(out: Path, seeds: list[int], quick: bool, calib_steps: int) -> list[dict]:
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    q = quickstart_recipe()
    (out / "runs").mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in seeds:
        hdf5 = make_tiny(out, seed, quick, env, bin_dir)
        shared = shared_options(seed)
        val_only = ["--limit-val-batches", "1.0"]
        # the anchor head: the quickstart's schedule (epochs), its CPU time is the budget
        root_a = out / "runs" / f"anchor_s{seed}"
        epochs = 1 if quick else q.max_epochs
        _, budget = run([str(bin_dir / "evdet-train"), str(hdf5), "--root-dir", str(root_a), *shared,
                         *anchor_options(), "--max-epochs", str(epochs), "--limit-val-batches", "0",
                         *(["--overwrite"] if root_a.exists() else [])], env,
                        log=out / "runs" / f"anchor_s{seed}.log")
        # RT-DETR: calibrated to the same CPU budget
        c1 = train(hdf5, out / "calib" / f"rtdetr_s{seed}_3", [*shared, *RTDETR], 3, env, bin_dir)
        c2 = train(hdf5, out / "calib" / f"rtdetr_s{seed}_{3 + calib_steps}", [*shared, *RTDETR],
                   3 + calib_steps, env, bin_dir)
        per_step = max((c2 - c1) / calib_steps, 1e-3)
        startup = max(c1 - 3 * per_step, 0.0)
        steps = max(int((budget - startup) / per_step), 1)
        root_r = out / "runs" / f"rtdetr_s{seed}"
        cpu_r = train(hdf5, root_r, [*shared, *RTDETR], steps, env, bin_dir)
        if cpu_r > budget * (1 + OVER_BUDGET):  # the calibration under-estimated the step: scale, once
            steps = max(int(steps * (budget - startup) / (cpu_r - startup)), 1)
            cpu_r = train(hdf5, root_r, [*shared, *RTDETR], steps, env, bin_dir)
        row = {"seed": seed, "budget_cpu_s": budget, "anchor_epochs": epochs, "rtdetr_steps": steps,
               "rtdetr_cpu_s": cpu_r}
        for name, root in (("anchor", root_a), ("rtdetr", root_r)):
            m = evaluate_val(hdf5, root, [*shared, *val_only], env, bin_dir)
            row[f"{name}_AP"], row[f"{name}_AP50"] = m.get("AP", 0.0), m.get("AP50", 0.0)
            row[f"{name}_params"] = count_parameters(root / "checkpoints" / "last.ckpt")
        rows.append(row)
        print(f"seed {seed}: anchor AP50 {row['anchor_AP50']:.4f}, RT-DETR AP50 {row['rtdetr_AP50']:.4f} "
              f"({steps} steps in {cpu_r:.0f} CPU s; budget {budget:.0f})", flush=True)
    return rows


def evaluate_val(hdf5: Path, root: Path, opts: list[str], env: dict, bin_dir: Path) -> dict:
    """Val metrics of ``root``'s ``last.ckpt`` (``evdet-train --just-val``)."""
    run([str(bin_dir / "evdet-train"), str(hdf5), "--root-dir", str(root), *opts, "--checkpoint",
         str(root / "checkpoints" / "last.ckpt"), "--just-val"], env,
        log=root.parent / f"{root.name}_val.log")
    return json.loads((root / "metrics_val.json").read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="dataset (and training) seeds")
    p.add_argument("--repeat", type=int, default=5, help="timed steps in part 1")
    p.add_argument("--calib-steps", type=int, default=20, help="steps between the two calibration runs")
    p.add_argument("--skip-ap", action="store_true", help="part 1 only")
    p.add_argument("--skip-timing", action="store_true", help="part 2 only")
    p.add_argument("--quick", action="store_true", help="8/2 recordings, 1 anchor epoch: checks the script")
    args = p.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    if not args.skip_timing:
        results["part1"] = part1(args.repeat)
    if not args.skip_ap:
        rows = part2(args.out_dir, args.seeds, args.quick, 3 if args.quick else args.calib_steps)
        results["part2"] = rows
        print()
        print("part 2: val AP of the tiny synthetic preset (120/12 recordings of 5 s) at the anchor head's "
              "quickstart budget (CPU seconds, 1 thread)")
        print(f"{'seed':>4} {'budget s':>8} {'RT steps':>8} {'anchor AP':>9} {'AP50':>7} {'RT-DETR AP':>10} "
              f"{'AP50':>7} {'AP50 gap':>8}")
        for r in rows:
            print(f"{r['seed']:>4} {r['budget_cpu_s']:>8.0f} {r['rtdetr_steps']:>8} {r['anchor_AP']:>9.4f} "
                  f"{r['anchor_AP50']:>7.4f} {r['rtdetr_AP']:>10.4f} {r['rtdetr_AP50']:>7.4f} "
                  f"{r['rtdetr_AP50'] - r['anchor_AP50']:>+8.4f}")
    (args.out_dir / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
