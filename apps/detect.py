"""``evdet-detect CHECKPOINT RECORDING... -o OUT_DIR``: run a trained detector over recordings and write
``<name>_bbox.npy`` detections (BBOX_DTYPE, sensor pixels, stamped at bin ends; evaluable with evdet-eval)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from evdet.io.interrupts import interruptible


def expand_recordings(inputs: list[Path]) -> list[Path]:
    """Files and RVT sequence folders as given; other folders contribute their recordings (recursive, sorted;
    ``evdet.data.expand_recordings``).

    Raises:
        FileNotFoundError: an input does not exist, or a folder holds no recording.
    """
    from evdet.data import expand_recordings as expand

    return expand(inputs)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evdet-detect", description=__doc__)
    p.add_argument("checkpoint", type=Path, help="trained model (.ckpt written by evdet-train)")
    p.add_argument("recordings", type=Path, nargs="+",
                   help=".dat/.raw recordings, HDF5 tensor files or RVT sequence folders, or folders of them "
                   "(recursive)")
    p.add_argument("-o", "--out-dir", type=Path, required=True,
                   help="folder for the <name>_bbox.npy files (created; never an input folder)")
    p.add_argument("--score-thresh", type=float,
                   help="keep detections above this score (default: checkpoint)")
    p.add_argument("--nms-thresh", type=float, help="NMS IoU threshold (default: checkpoint)")
    p.add_argument("--max-detections", type=int, help="at most this many boxes per bin (default: checkpoint)")
    p.add_argument("--batch-size", type=int, default=1,
                   help="recordings processed side by side (default 1)")
    p.add_argument("--class-score", action="store_true",
                   help="write RVT's class score: the best class probability alone, instead of objectness x "
                        "class probability (--score-thresh and NMS still use the product); only for "
                        "yolox-head checkpoints; use it to reproduce RVT's published numbers with "
                        "--preset rvt-gen1/rvt-gen4 in evdet-eval")
    p.add_argument("--model-class-ids", action="store_true",
                   help="write the model's class index as class_id instead of the label-map id")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true",
                   help="replace detection files written by an earlier evdet-detect run")
    return p


@interruptible("evdet-detect")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from evdet.inference.checkpoint import load_detector
    from evdet.inference.streaming import detect_recordings
    from evdet.io.output_paths import check_outside_inputs

    try:
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        paths = expand_recordings(args.recordings)
        check_outside_inputs(args.out_dir, args.recordings)  # before loading the model
        detector, info = load_detector(args.checkpoint, map_location=args.device,
                                       class_score_only=True if args.class_score else None)
        start = time.perf_counter()
        results = detect_recordings(detector, info, paths, args.out_dir, batch_size=args.batch_size,
                                    score_thresh=args.score_thresh, nms_thresh=args.nms_thresh,
                                    max_detections=args.max_detections,
                                    original_class_ids=not args.model_class_ids,
                                    progress=not args.no_progress, overwrite=args.overwrite,
                                    inputs=[args.checkpoint, *args.recordings])
    except (FileNotFoundError, ValueError, TypeError) as exc:
        print(f"evdet-detect: error: {exc}", file=sys.stderr)
        return 2
    from evdet.io.boxes import recording_stem

    for path, boxes in results.items():
        print(f"{path}: {boxes.size} detections -> {args.out_dir / (recording_stem(path) + '_bbox.npy')}")
    print(f"{len(results)} recordings in {time.perf_counter() - start:.1f} s; classes {list(info.classes)}")
    print(f"detections written to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
