"""AP of rvt-t + YOLOX against Vanilla + anchor on the synthetic ``gen1-like`` preset, at the same CPU budget.

Run: ``python benchmarks/bench_rvt_vs_vanilla_ap.py OUT_DIR [--budget-min 8] [--rvt-lrs 2e-4 [1e-3 ...]]
[--quick]``.

1. ``evdet-make-synthetic OUT_DIR/data --preset gen1-like --hdf5`` (``--num-train/--num-val/--num-test``
   recordings of ``--duration-s`` s at the preset's 304×240); reused when ``OUT_DIR/data/dataset.json``
   (written by this script after a complete generation) records the same options;
2. for each model (Vanilla + anchor with the former CPU recipe of ``evdet-quickstart``; rvt-t + yolox with
   RVT's optimizer, once per ``--rvt-lrs`` value), the CPU cost of a training step is calibrated with two
   short ``evdet-train --max-steps`` runs (``--calib-steps`` apart: the difference removes start-up), then the
   model is trained with ``--max-steps = (budget − start-up) / cost per step`` so that its schedule
   completes inside the budget. CPU time is the user + system time of the ``evdet-train`` child and its
   workers (``resource.getrusage(RUSAGE_CHILDREN)``; on a shared machine it does not depend on the other
   load); the calibration runs are not counted in the budget. No validation during training
   (``--limit-val-batches 0``), so the budget is spent on training steps alone;
3. ``evdet-train --just-val`` and ``--just-test`` of each model's ``last.ckpt`` (detections at score ≥ 0.01,
   evdet's default ``--eval-score-thresh``; Gen1's box filter and 0.5 s skip, ``--time-tol 25000``: half a
   50 ms bin, since the synthetic labels are in every bin).

Every model sees the same data, T, batch size, input size (half the sensor, 120×152), stream sampling,
augmentation (evdet's default: horizontal flip 0.5) and seed. Prints one table: model, parameters,
steps, CPU seconds of the training run, val AP / AP50, test AP / AP50 and the ratio of each RVT row to
Vanilla. ``--quick`` (a tiny dataset and a 0.3 CPU-min budget) only checks that the script works.
Everything runs through the installed command-line apps; parameters are counted on the checkpoint
(``evdet.training.load_detector``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

COMMON = ["--height", "120", "--width", "152", "--eval-preset", "gen1", "--time-tol", "25000",
          "--log-images-every-n-steps", "0", "--no-progress"]
"""``evdet-train`` options shared by every model and every call: network input at half the 240×304 sensor,
the evaluation protocol (Gen1's filter; half a bin of time tolerance for labels in every bin)."""

VANILLA = ["--backbone", "Vanilla", "--head", "anchor", "--base", "8", "--cout", "32", "--anchor-size", "16",
           "--lr", "5e-3", "--lr-schedule", "cosine"]
"""Vanilla + anchor as ``evdet-quickstart`` trained it on synthetic data on a CPU until 2026-12-07, when the
figures of docs/benchmarks.md were taken (base 8, cout 32, anchors of 16 px, AdamW lr 5e-3, warm-up +
cosine, evdet's default weight decay 1e-4 and norm clipping 1.0)."""


def rvt_options(lr: str) -> list[str]:
    """rvt-t + YOLOX with RVT's Gen1 optimizer (AdamW, no weight decay, OneCycle: 0.5 % warm-up, down to
    lr/10,000) at peak learning rate ``lr``; evdet's norm clipping 1.0 (RVT clips values to 1.0)."""
    return ["--backbone", "rvt-t", "--head", "yolox", "--yolox-depth", "0.33", "--rvt-partition-split", "1",
            "--lr", lr, "--weight-decay", "0", "--lr-schedule", "onecycle", "--warmup-fraction", "0.005",
            "--min-lr-ratio", "0.0025"]


def child_cpu_s() -> float:
    """User + system CPU seconds of the finished child processes (and their children) so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd: list[str], env: dict[str, str], log: Path | None = None) -> tuple[float, float]:
    """Run ``cmd`` (output to ``log`` when given), failing loudly; (wall, CPU) seconds it took."""
    c0, w0 = child_cpu_s(), time.perf_counter()
    print("$", " ".join(cmd), flush=True)
    if log is None:
        subprocess.run(cmd, check=True, env=env)
    else:
        with open(log, "w") as f:
            done = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            sys.stdout.write(log.read_text()[-4000:])
            raise SystemExit(f"bench_rvt_vs_vanilla_ap: exit code {done.returncode}: {' '.join(cmd)}")
    return time.perf_counter() - w0, child_cpu_s() - c0


def make_data(out: Path, opts: dict, env: dict[str, str], bin_dir: Path) -> Path:
    """The gen1-like dataset under ``out/data`` (HDF5 tensors in ``out/data/hdf5``), reused when an earlier
    run of this script wrote it with the same ``opts``."""
    data = out / "data"
    stamp = data / "dataset.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == opts:
        print(f"reusing {data} ({opts})", flush=True)
        return data / "hdf5"
    wall, cpu = run([str(bin_dir / "evdet-make-synthetic"), str(data), "--preset", "gen1-like",
                     "--num-train", str(opts["num_train"]), "--num-val", str(opts["num_val"]),
                     "--num-test", str(opts["num_test"]), "--duration-s", str(opts["duration_s"]),
                     "--seed", str(opts["seed"]), "--num-workers", "2", "--hdf5", "--no-progress",
                     *(["--overwrite"] if data.exists() else [])], env)
    print(f"dataset: wall {wall:.0f} s, CPU {cpu:.0f} s", flush=True)
    stamp.write_text(json.dumps(opts))
    return data / "hdf5"


def train(hdf5: Path, root: Path, opts: list[str], steps: int, env: dict[str, str], bin_dir: Path) -> float:
    """``evdet-train`` for ``steps`` steps into a fresh ``root`` (an earlier run there is replaced) without
    validation; its CPU seconds."""
    root.parent.mkdir(parents=True, exist_ok=True)
    _, cpu = run([str(bin_dir / "evdet-train"), str(hdf5), "--root-dir", str(root), *opts,
                  "--max-steps", str(steps), "--max-epochs", "-1", "--limit-val-batches", "0",
                  *(["--overwrite"] if root.exists() else [])], env,
                 log=root.parent / f"{root.name}.log")
    return cpu


def evaluate(hdf5: Path, root: Path, opts: list[str], env: dict[str, str], bin_dir: Path) -> dict:
    """Val and test metrics of ``root``'s ``last.ckpt`` (``--just-val``, ``--just-test``)."""
    out = {}
    for split in ("val", "test"):
        run([str(bin_dir / "evdet-train"), str(hdf5), "--root-dir", str(root), *opts,
             "--checkpoint", str(root / "checkpoints" / "last.ckpt"), f"--just-{split}"], env,
            log=root.parent / f"{root.name}_{split}.log")
        out[split] = json.loads((root / f"metrics_{split}.json").read_text())
    return out


def count_parameters(ckpt: Path) -> int:
    from evdet.training import load_detector

    detector, _ = load_detector(ckpt)
    return sum(p.numel() for p in detector.parameters())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--budget-min", type=float, default=8.0, help="CPU minutes of training per model")
    p.add_argument("--rvt-lrs", nargs="+", default=["2e-4"],
                   help="peak learning rates of rvt-t, one trained model each (RVT's Gen1 value: 2e-4)")
    p.add_argument("--num-train", type=int, default=24, help="training recordings")
    p.add_argument("--num-val", type=int, default=4, help="validation recordings")
    p.add_argument("--num-test", type=int, default=4, help="test recordings")
    p.add_argument("--duration-s", type=float, default=10.0, help="seconds per recording")
    p.add_argument("--num-tbins", "-T", type=int, default=10, help="bins per step (every model)")
    p.add_argument("--batch-size", "-B", type=int, default=4, help="streams per batch (every model)")
    p.add_argument("--calib-steps", type=int, default=20, help="steps between the two calibration runs")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of every training run")
    p.add_argument("--quick", action="store_true",
                   help="check the script: 4/1/1 recordings of 3 s, 0.3 CPU-min, 3 calibration steps")
    args = p.parse_args(argv)
    if args.quick:
        args.budget_min, args.calib_steps = 0.3, 3
        args.num_train, args.num_val, args.num_test, args.duration_s = 4, 1, 1, 3.0
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    budget = args.budget_min * 60.0

    hdf5 = make_data(out, {"num_train": args.num_train, "num_val": args.num_val, "num_test": args.num_test,
                           "duration_s": args.duration_s, "seed": args.seed}, env, bin_dir)
    shared = [*COMMON, "-T", str(args.num_tbins), "-B", str(args.batch_size), "--seed", str(args.seed)]
    models = [("Vanilla + anchor", "vanilla", VANILLA)]
    models += [(f"rvt-t + yolox (lr {lr})", f"rvt-t_lr{lr}", rvt_options(lr)) for lr in args.rvt_lrs]

    rows = []
    for label, name, opts in models:
        s1, s2 = 3, 3 + args.calib_steps
        c1 = train(hdf5, out / "calib" / f"{name}_{s1}", [*shared, *opts], s1, env, bin_dir)
        c2 = train(hdf5, out / "calib" / f"{name}_{s2}", [*shared, *opts], s2, env, bin_dir)
        per_step = max((c2 - c1) / args.calib_steps, 1e-3)
        startup = max(c1 - s1 * per_step, 0.0)
        steps = max(int((budget - startup) / per_step), 1)
        print(f"{label}: {per_step:.2f} CPU s per step, start-up {startup:.1f} CPU s -> --max-steps {steps}",
              flush=True)
        root = out / "runs" / name
        cpu = train(hdf5, root, [*shared, *opts], steps, env, bin_dir)
        metrics = evaluate(hdf5, root, shared, env, bin_dir)
        rows.append({"model": label, "params": count_parameters(root / "checkpoints" / "last.ckpt"),
                     "steps": steps, "cpu_s": cpu, "per_step_s": per_step, **{
                         f"{split}_{k}": metrics[split].get(k, 0.0) for split in ("val", "test")
                         for k in ("AP", "AP50")}})
        print(f"{label}: trained {steps} steps in {cpu:.0f} CPU s; val AP {rows[-1]['val_AP']:.4f}, "
              f"test AP {rows[-1]['test_AP']:.4f}", flush=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))

    print()
    print(f"gen1-like synthetic: {args.num_train}/{args.num_val}/{args.num_test} recordings of "
          f"{args.duration_s:g} s, input 120x152, T {args.num_tbins}, B {args.batch_size}, seed {args.seed}; "
          f"budget {budget:.0f} CPU s per model (1 thread)")
    head = (f"{'model':<26} {'params':>11} {'steps':>6} {'CPU s':>6} {'val AP':>7} {'AP50':>7} "
            f"{'test AP':>7} {'AP50':>7} {'test AP / Vanilla':>17}")
    print(head)
    base = rows[0]["test_AP"]
    for r in rows:
        ratio = f"x {r['test_AP'] / base:.2f}" if base > 0 else "-"
        print(f"{r['model']:<26} {r['params']:>11,} {r['steps']:>6} {r['cpu_s']:>6.0f} {r['val_AP']:>7.4f} "
              f"{r['val_AP50']:>7.4f} {r['test_AP']:>7.4f} {r['test_AP50']:>7.4f} {ratio:>17}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
