"""``evdet-quickstart OUT_DIR``: the whole evdet chain on a fresh machine, in minutes on a CPU.

1. simulate the tiny synthetic dataset (``evdet-make-synthetic --preset tiny``) into ``OUT_DIR/dataset``;
2. convert it to HDF5 histograms (``evdet-generate-hdf5``) into ``OUT_DIR/hdf5``;
3. train a small recurrent detector (``evdet-train``) into ``OUT_DIR/run``;
4. evaluate it on the validation split (COCO metrics, printed);
5. render a demo video of a validation recording (``evdet-demo-video``) to ``OUT_DIR/demo.mp4``.

Ends by printing the metrics table, per-class AP, where everything is, and the one command that opens
the video. The defaults are tuned for a 2-core CPU.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from evdet.io.interrupts import interruptible


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evdet-quickstart", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("out_dir", help="folder for the dataset, the run, the metrics and the demo video")
    p.add_argument("--num-train", type=int, default=120,
                   help="training recordings of 5 s (the tiny preset's 12 are too few to generalise)")
    p.add_argument("--num-val", type=int, default=12,
                   help="validation recordings (the preset's 3 make the printed AP mostly noise)")
    p.add_argument("--duration-s", type=float, default=None, help="recording length (default: preset's)")
    p.add_argument("--max-epochs", type=int, default=3, help="training epochs")
    p.add_argument("--limit-train-batches", type=float, default=1.0, help="fraction (or number) per epoch")
    p.add_argument("--num-tbins", "-T", type=int, default=10, help="time bins per batch step")
    p.add_argument("--batch-size", "-B", type=int, default=4, help="streams per batch")
    p.add_argument("--height", type=int, default=96, help="network height (the 96 px sensor's)")
    p.add_argument("--width", type=int, default=128, help="network width (the 128 px sensor's)")
    p.add_argument("--base", type=int, default=8, help="backbone base width")
    p.add_argument("--cout", type=int, default=32, help="recurrent feature channels")
    p.add_argument("--anchor-size", type=float, default=16.0, help="first-level anchor size (pixels)")
    p.add_argument("--lr", type=float, default=2.5e-3, help="peak learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the training")
    p.add_argument("--num-workers", type=int, default=2, help="processes for simulation and conversion")
    p.add_argument("--loader-workers", type=int, default=1,
                   help="processes that read training batches while the model trains (0: in the trainer)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1 is fastest on a small, shared CPU; 0: torch's default)")
    p.add_argument("--no-video", action="store_true", help="skip the demo video")
    p.add_argument("--video-score-thresh", type=float, default=0.3, help="detections drawn in the video")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the outputs of an earlier quickstart in OUT_DIR (never files evdet did not "
                        "write)")
    return p


def watch_command(path: Path) -> str:
    """The shell command that opens a video in the default player of this platform."""
    if sys.platform == "darwin":
        return f"open {shlex.quote(str(path))}"
    if sys.platform.startswith("win"):
        return f'start "" "{path}"'
    return f"xdg-open {shlex.quote(str(path))}"


def summary_lines(out: Path, metrics: dict, num_val: int, result, video: Path | None, times: dict[str, float],
                  total: float) -> list[str]:
    """The quick start's closing lines: the metrics table (with per-class AP), the headline numbers, where
    everything is, and the command to watch the video (last)."""
    from evdet.evaluation.report import format_metrics

    run = out / "run"
    lines = [format_metrics(metrics, title=f"validation metrics ({out / 'hdf5' / 'val'}, {num_val} "
                                           "recordings; per-class AP at the end)"), "",
             f"AP = {metrics.get('AP', 0.0):.4f}   AP50 = {metrics.get('AP50', 0.0):.4f}", ""]
    lines.append("where everything is:")
    where = [("dataset", out / "dataset", "simulated .dat recordings + _bbox.npy labels"),
             ("tensors", out / "hdf5", "HDF5 histograms the model reads"),
             ("checkpoint", result.last_checkpoint, "last epoch"),
             ("best", result.best_checkpoint and run / "checkpoints" / result.best_checkpoint.name,
              "best validation AP"),  # Lightning's path is absolute: shown like the others
             ("config", run / "config.yaml", "the run's options: evdet-train --config repeats it"),
             ("metrics", run / "metrics_val.json", "the table above"),
             ("curves", run / "training_curves.png", "training loss, validation AP per epoch"),
             ("logs", run / "logs", f"tensorboard --logdir {run / 'logs' / 'tensorboard'}"),
             ("demo video", video, "H.264 mp4")]
    for name, path, what in where:
        if path is not None and Path(path).exists():
            lines.append(f"  {name:<11} {path}   ({what})")
    lines.append("wall time:  " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
                 + f"; total {total:.0f} s")
    if video is not None:
        lines.append("")
        lines.append(f"watch the demo video:  {watch_command(video)}")
    return lines


@interruptible("evdet-quickstart")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"evdet-quickstart: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    import torch

    from evdet.data.config import DataConfig
    from evdet.inference.model_config import AnchorHeadConfig, ModelConfig, VanillaConfig
    from evdet.preprocessing.convert import generate_hdf5
    from evdet.simulation.dataset import make_synthetic_dataset
    from evdet.training.config import TrainConfig
    from evdet.training.run import train

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    # same metrics on every run on this machine: seeded data and init (DataConfig/TrainConfig.seed), and
    # torch's deterministic kernels (warn_only: ops without one warn instead of failing)
    torch.use_deterministic_algorithms(True, warn_only=True)
    from evdet.io.output_paths import output_folder

    out = output_folder(args.out_dir)
    progress = not args.no_progress
    times: dict[str, float] = {}
    t0 = time.perf_counter()

    print(f"[1/5] simulating the tiny synthetic dataset into {out / 'dataset'}", flush=True)
    make_synthetic_dataset(out / "dataset", preset="tiny", num_train=args.num_train, num_val=args.num_val,
                           num_test=0, duration_s=args.duration_s, seed=args.seed,
                           num_workers=args.num_workers, progress=progress, overwrite=args.overwrite)
    times["simulate"] = time.perf_counter() - t0

    t = time.perf_counter()
    print(f"[2/5] converting to HDF5 histograms into {out / 'hdf5'}", flush=True)
    generate_hdf5(out / "dataset", out / "hdf5", representation="histo", delta_t=50_000,
                  num_workers=args.num_workers, progress=progress, overwrite=args.overwrite)
    times["convert"] = time.perf_counter() - t

    t = time.perf_counter()
    print(f"[3/5] training into {out / 'run'}", flush=True)
    limit = int(args.limit_train_batches) if args.limit_train_batches > 1 else args.limit_train_batches
    mc = ModelConfig(vanilla=VanillaConfig(base=args.base, cout=args.cout),
                     anchor=AnchorHeadConfig(anchor_size=args.anchor_size))
    dc = DataConfig(num_tbins=args.num_tbins, batch_size=args.batch_size, height=args.height,
                    width=args.width, seed=args.seed, num_workers=args.loader_workers)
    tc = TrainConfig(lr=args.lr, max_epochs=args.max_epochs, limit_train_batches=limit, seed=args.seed,
                     log_images_every_n_steps=100)
    result = train(out / "hdf5", out / "run", model_config=mc, data_config=dc, train_config=tc,
                   progress=progress, overwrite=args.overwrite)
    times["train + validate"] = time.perf_counter() - t
    metrics = result.metrics.get("val", {})
    ckpt = result.last_checkpoint

    print(f"[4/5] validated on {out / 'hdf5' / 'val'}: AP = {metrics.get('AP', 0.0):.4f}, "
          f"AP50 = {metrics.get('AP50', 0.0):.4f}", flush=True)

    video = None
    val_files = sorted((out / "hdf5" / "val").glob("*.h5"))
    if not args.no_video and ckpt is not None:
        t = time.perf_counter()
        from evdet.viz.demo import DemoOptions, render_demo_video

        print(f"[5/5] rendering the demo video of {val_files[0].name} into {out / 'demo.mp4'}", flush=True)
        video = render_demo_video(ckpt, val_files[:1], out / "demo.mp4", events=[out / "dataset" / "val"],
                                  options=DemoOptions(score_thresh=args.video_score_thresh),
                                  progress=progress, overwrite=args.overwrite)
        times["demo video"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    print()
    print("\n".join(summary_lines(out, metrics, len(val_files), result, video, times, total)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
