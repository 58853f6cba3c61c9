"""``evdet-demo-video CHECKPOINT INPUT... -o video.mp4``: render a trained detector's output over recordings:
events in colour, ground truth thin white, detections in class colours with name and score, one video frame
per time bin, several recordings in a grid, timestamps. mp4, GIF (needs Pillow) or a folder of PNG frames."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evdet-demo-video", description=__doc__)
    p.add_argument("checkpoint", type=Path, help="trained model (.ckpt written by evdet-train)")
    p.add_argument("inputs", type=Path, nargs="+",
                   help=".dat/.raw recordings or HDF5 tensor files; several play side by side")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="video.mp4, anim.gif, or a new folder (no suffix) for PNG frames; never an input")
    p.add_argument("--format", choices=("mp4", "gif", "png"),
                   help="output format (default from the output suffix; no suffix: PNG frames)")
    p.add_argument("--fps", type=float, help="frames per second (default real time: 1 s / delta_t)")
    p.add_argument("--scale", type=int,
                   help="integer upscaling of each panel (default: panels >= 360 px tall)")
    p.add_argument("--score-thresh", type=float, help="detection score threshold (default: checkpoint)")
    p.add_argument("--max-duration", type=float, help="only the first SECONDS of the recordings")
    p.add_argument("--cols", type=int, help="grid columns (default ceil(sqrt(number of inputs)))")
    p.add_argument("--no-gt", action="store_true", help="do not draw ground truth boxes")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier evdet demo at OUTPUT (never anything evdet did not write)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from evdet.viz.demo import render_demo_video

    start = time.perf_counter()
    try:
        for name in ("fps", "scale", "max_duration", "cols"):
            value = getattr(args, name)
            if value is not None and value <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {value}")
        path = render_demo_video(args.checkpoint, args.inputs, args.output, fmt=args.format, fps=args.fps,
                                 scale=args.scale, score_thresh=args.score_thresh, show_gt=not args.no_gt,
                                 max_duration=None if args.max_duration is None
                                 else int(round(args.max_duration * 1e6)),
                                 cols=args.cols, overwrite=args.overwrite)
    except (FileNotFoundError, ValueError, TypeError, ImportError) as exc:
        print(f"evdet-demo-video: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
