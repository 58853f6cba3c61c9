"""``evdet-demo-video CHECKPOINT INPUT... -o video.mp4``: a detector's output over recordings, as a video that
plays in browsers and common players (H.264 mp4), a GIF, or PNG frames.

Frames are drawn at sensor resolution from the events (for HDF5 inputs: their source recordings, found
with --events or beside the file; else the stored tensors enlarged), one frame per time bin, enlarged
until readable; ground truth white dashed (or side by side), detections in class colours with name and
score, recording name and time on every frame, a legend. Instead of a checkpoint, a folder or file of
<name>_bbox.npy detections (evdet-detect's, a tracker's) can be drawn."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from evdet.io.interrupts import interruptible

MIN_FPS, MAX_FPS = 0.01, 1000.0  # what players and the mp4 time base handle


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evdet-demo-video", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path,
                   help="trained model (.ckpt written by evdet-train), or a folder / _bbox.npy file of "
                        "detections to draw instead of running a model")
    p.add_argument("inputs", type=Path, nargs="+",
                   help=".dat/.raw recordings, HDF5 tensor files or RVT sequence folders; other folders: "
                        "their recordings (recursive, as evdet-detect); several play side by side")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="video.mp4, anim.gif, or a new folder (no suffix) for PNG frames; never an input")
    p.add_argument("--format", choices=("mp4", "gif", "png"),
                   help="output format (default from the output suffix; no suffix: PNG frames)")
    p.add_argument("--events", type=Path, nargs="+", default=[], metavar="PATH",
                   help="event recordings, or folders searched recursively, holding the source recordings "
                        "of HDF5 inputs (matched by name; default: beside the HDF5 file; none found: the "
                        "stored tensor is shown enlarged)")
    p.add_argument("--layout", choices=("overlay", "side-by-side"), default="overlay",
                   help="ground truth dashed white over the detections, or in its own panel left of them")
    p.add_argument("--score-thresh", type=float, default=0.3, help="detections drawn above this score")
    p.add_argument("--class-score", action="store_true",
                   help="yolox-head checkpoints: write the best class probability alone (RVT's score) "
                        "on the boxes instead of objectness x class probability; --score-thresh still "
                        "selects boxes by the product")
    p.add_argument("--display-nms", type=float, default=0.5, metavar="IOU",
                   help="class-agnostic NMS for display: of boxes overlapping more than IOU, whatever their "
                        "classes, only the best is drawn (0: off)")
    p.add_argument("--track-ids", choices=("auto", "on", "off"), default="auto",
                   help="write #track ids (auto: when the detections carry them)")
    p.add_argument("--no-gt", action="store_true", help="do not draw ground truth boxes")
    p.add_argument("--scale", type=int,
                   help="integer enlargement of the sensor frame (default: panels >= 480 px tall)")
    p.add_argument("--fps", type=float, help="frames per second (default real time: 1 s / delta_t)")
    p.add_argument("--max-duration", type=float, help="only the first SECONDS of the recordings")
    p.add_argument("--cols", type=int, help="grid columns (default ceil(sqrt(number of inputs)))")
    p.add_argument("--classes", nargs="+",
                   help="with detection files: class names by class id (default: the label map beside the "
                        "recordings or in their parent folder)")
    p.add_argument("--delta-t", type=int, default=50_000,
                   help="with detection files: µs per frame for raw recordings (default 50000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier evdet demo at OUTPUT (never anything evdet did not write)")
    return p


def _detection_files(source: Path, inputs: list[Path]) -> list[Path]:
    from evdet.io.boxes import recording_stem

    if source.is_file():
        if len(inputs) != 1:
            raise ValueError(f"one detection file ({source}) given for {len(inputs)} recordings: "
                             "pass a folder")
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"checkpoint or detections not found: {source}")
    files = []
    for rec in inputs:
        name = recording_stem(rec)
        found = sorted(source.rglob(f"{name}_bbox.npy")) or sorted(source.rglob(f"{name}.npy"))
        if not found:
            raise FileNotFoundError(f"no detections {name}_bbox.npy for {rec} in {source}")
        files.append(found[0])
    return files


def _label_map(args) -> dict[int, str]:
    from evdet.io.label_map import LABEL_MAP_FILENAME, load_label_map

    if args.classes:
        return dict(enumerate(args.classes))
    for rec in args.inputs:
        for folder in (rec.parent, rec.parent.parent):
            if (folder / LABEL_MAP_FILENAME).exists():
                return load_label_map(folder / LABEL_MAP_FILENAME)
    raise FileNotFoundError(f"no {LABEL_MAP_FILENAME} beside the recordings or in their parent folder: "
                            "pass --classes")


@interruptible("evdet-demo-video")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        for name in ("fps", "scale", "max_duration", "cols", "delta_t"):
            value = getattr(args, name)
            if value is not None and not (0 < value < float("inf")):  # NaN too
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number > 0, got {value}")
        if args.fps is not None and not MIN_FPS <= args.fps <= MAX_FPS:
            raise ValueError(f"--fps {args.fps:g}: give {MIN_FPS:g} to {MAX_FPS:g} frames per second")
        from evdet.data import expand_recordings
        from evdet.io.output_paths import check_outside_inputs
        from evdet.viz.demo import DemoOptions, render_demo_video, render_detections_video

        check_outside_inputs(args.output, args.inputs)  # never inside a folder given as input either
        args.inputs = expand_recordings(args.inputs)  # a folder: its recordings, as evdet-detect

        options = DemoOptions(score_thresh=args.score_thresh, display_nms=args.display_nms or None,
                              layout=args.layout, show_gt=not args.no_gt,
                              track_ids={"auto": None, "on": True, "off": False}[args.track_ids],
                              scale=args.scale)
        common = dict(options=options, events=args.events, fmt=args.format, fps=args.fps, cols=args.cols,
                      max_duration=None if args.max_duration is None else int(round(args.max_duration * 1e6)),
                      progress=not args.no_progress, overwrite=args.overwrite)
        if args.checkpoint.suffix == ".ckpt" or (args.checkpoint.is_file()
                                                 and not args.checkpoint.name.endswith(".npy")):
            checkpoint = args.checkpoint
            if args.class_score:
                from evdet.inference.checkpoint import load_detector

                checkpoint = load_detector(checkpoint, class_score_only=True)
            path = render_demo_video(checkpoint, args.inputs, args.output, **common)
        elif args.class_score:
            raise ValueError("--class-score needs a checkpoint, not detection files (their scores are "
                             "already written)")
        else:
            path = render_detections_video(_detection_files(args.checkpoint, args.inputs), args.inputs,
                                           args.output, label_map=_label_map(args), delta_t=args.delta_t,
                                           **common)
    except (FileNotFoundError, ValueError, TypeError, ImportError, OSError) as exc:
        print(f"evdet-demo-video: error: {exc}", file=sys.stderr)
        return 2
    what = "PNG frames" if path.is_dir() else path.suffix.lstrip(".").upper()
    print(f"wrote {path} ({what}) in {time.perf_counter() - start:.1f} s")
    if path.suffix == ".mp4":
        print(f"watch it: open {path} in a browser or a video player (e.g. vlc {path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
