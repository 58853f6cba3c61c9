"""``evdet-generate-hdf5``: convert .dat/.raw recordings into HDF5 event-tensor files, or a Gen1 / 1Mpx
dataset folder into RVT's preprocessed format (``--format rvt``; docs/conversion.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from evdet.io.interrupts import interruptible


def _param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``: VALUE as JSON (numbers, true/false), ``nan``/``inf`` as floats, else the string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value.lower() if value.lower() in ("true", "false") else value)
    except json.JSONDecodeError:
        pass
    try:
        return key, float(value)
    except ValueError:
        return key, value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evdet-generate-hdf5",
        description="Convert event recordings (.dat/.raw files, folders, or dataset folders with "
                    "train/val/test) into HDF5 tensor files <stem>.h5 with their labels <stem>_bbox.npy. "
                    "Finished outputs converted with the same settings are kept, so an interrupted run can "
                    "simply be started again; outputs converted with other settings are refused "
                    "(--overwrite reconverts them). The output folder may not be, contain or lie inside an "
                    "input, and only files evdet wrote are ever replaced. "
                    "--format rvt --dataset gen1|gen4 RAW_DIR OUT_DIR writes RVT's preprocessed format "
                    "instead (RVT's fixed settings; the representation options do not apply).")
    parser.add_argument("inputs", nargs="+", help="recordings, folders of recordings or dataset folders "
                        "(--format rvt: one folder with train/ val/ test/)")
    parser.add_argument("output_dir", help="destination folder (the dataset layout is mirrored)")
    parser.add_argument("--format", default="evdet", choices=["evdet", "rvt"],
                        help="evdet: HDF5 tensor files (SPEC 2.7); rvt: RVT's preprocessed layout (stacked "
                             "histograms of 50 ms, 10 bins, RVT's label filters and frames)")
    parser.add_argument("--dataset", choices=["gen1", "gen4"],
                        help="--format rvt: gen1 (304x240) or gen4 (1Mpx, written at 640x360)")
    parser.add_argument("--representation", "--preprocess", default="histo",
                        help="event-to-tensor representation (default histo; see docs/representations.md, "
                             "an unknown name lists the valid ones)")
    parser.add_argument("--delta-t", type=int, default=50_000, help="frame length in µs (default 50000)")
    parser.add_argument("--height-width", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="frame size; must be the sensor size divided by a power of two")
    parser.add_argument("--downsampling-factor", type=_non_negative, default=0,
                        help="divide coordinates by 2**d (ignored with --height-width); too large for a "
                             "sensor is an error")
    parser.add_argument("--max-incr-per-pixel", type=float, default=None,
                        help="histo/diff/event_cube: events that saturate a pixel (default 5)")
    parser.add_argument("--num-utbins", type=int, default=None,
                        help="event_cube/multi_channel_timesurface/stacked_histogram: micro-bins per frame")
    parser.add_argument("--max-count", type=int, default=None,
                        help="stacked_histogram: count clip (default 10)")
    parser.add_argument("--no-split-polarity", action="store_true", help="event_cube: signed, one polarity")
    parser.add_argument("--param", type=_param, action="append", default=[], metavar="KEY=VALUE",
                        help="any other representation parameter (repeatable)")
    parser.add_argument("--store-as-uint8", action="store_true",
                        help="store round(255*x) as uint8 (values in [0, 1] only; counts for "
                             "stacked_histogram)")
    parser.add_argument("--compression", default="gzip", choices=["gzip", "lzf", "none"],
                        help="HDF5 compression (default gzip)")
    parser.add_argument("--max-duration", type=int, default=None, metavar="US",
                        help="cut recordings into parts <stem>_partNNN.h5 of this many µs")
    parser.add_argument("--num-workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--overwrite", action="store_true",
                        help="reconvert outputs that evdet wrote earlier with other settings")
    parser.add_argument("--piece-events", type=int, default=None, metavar="N",
                        help="most events held in memory at once (16 bytes each; default 4 Mi): frames "
                             "with more are read in pieces, with the same output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _main_rvt(args: argparse.Namespace) -> int:
    from evdet.preprocessing.rvt_convert import generate_rvt

    try:
        if args.dataset is None:
            raise ValueError("--format rvt needs --dataset gen1 or gen4")
        if len(args.inputs) != 1:
            raise ValueError(f"--format rvt takes one input folder (with train/ val/ test/), got "
                             f"{len(args.inputs)}")
        outputs = generate_rvt(args.inputs[0], args.output_dir, args.dataset, num_workers=args.num_workers,
                               progress=not args.no_progress, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"evdet-generate-hdf5: error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(outputs)} RVT sequence folder(s) in {args.output_dir}")
    return 0


@interruptible("evdet-generate-hdf5")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.format == "rvt":
        return _main_rvt(args)
    if args.dataset is not None:
        print("evdet-generate-hdf5: error: --dataset is an option of --format rvt", file=sys.stderr)
        return 2
    from evdet.preprocessing.convert import generate_hdf5

    params: dict[str, Any] = dict(args.param)
    for key in ("max_incr_per_pixel", "num_utbins", "max_count"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    if args.no_split_polarity:
        params["split_polarity"] = False
    try:
        outputs = generate_hdf5(
            args.inputs, args.output_dir, representation=args.representation, delta_t=args.delta_t,
            params=params, downsampling_factor=args.downsampling_factor, store_as_uint8=args.store_as_uint8,
            compression=None if args.compression == "none" else args.compression,
            max_duration=args.max_duration, num_workers=args.num_workers, progress=not args.no_progress,
            height_width=None if args.height_width is None else tuple(args.height_width),
            overwrite=args.overwrite,
            **({} if args.piece_events is None else {"piece_events": args.piece_events}))
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        print(f"evdet-generate-hdf5: error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(outputs)} HDF5 file(s) in {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
