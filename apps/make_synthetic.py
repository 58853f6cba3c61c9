"""``evdet-make-synthetic``: write a labelled synthetic event-camera dataset (see docs/synthetic.md)."""

from __future__ import annotations

import argparse
import sys

from evdet.io.interrupts import interruptible
from evdet.simulation.config import PRESETS, SYNTHETIC_LABEL_MAP  # cheap; the simulator loads in main()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evdet-make-synthetic",
        description="Simulate labelled event-camera recordings: OUT_DIR/label_map_dictionary.json and "
                    "OUT_DIR/{train,val,test}/<name>_td.dat + <name>_bbox.npy.")
    parser.add_argument("out_dir", help="dataset folder to write")
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS),
                        help="; ".join(f"{k}: {v.description}" for k, v in PRESETS.items()))
    parser.add_argument("--num-train", type=int, default=None, help="recordings in train (default: preset's)")
    parser.add_argument("--num-val", type=int, default=None, help="recordings in val (default: preset's)")
    parser.add_argument("--num-test", type=int, default=None, help="recordings in test (default: preset's)")
    parser.add_argument("--duration-s", type=float, default=None, help="seconds per recording")
    parser.add_argument("--height", type=int, default=None, help="sensor height in pixels")
    parser.add_argument("--width", type=int, default=None, help="sensor width in pixels")
    parser.add_argument("--classes", nargs="+", default=None, metavar="NAME",
                        help=f"subset of {list(SYNTHETIC_LABEL_MAP.values())} (class ids stay those of the "
                             f"synthetic label map); write 'two wheeler' or two_wheeler")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--num-workers", type=int, default=1, help="simulation processes (default 1)")
    parser.add_argument("--hdf5", action="store_true",
                        help="also write precomputed histo tensors (50 ms) to OUT_DIR/hdf5 via the converter")
    parser.add_argument("--overwrite", action="store_true",
                        help="first delete recordings, labels and HDF5 files of an earlier run in OUT_DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


@interruptible("evdet-make-synthetic")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from evdet.simulation.dataset import make_synthetic_dataset

    try:
        summary = make_synthetic_dataset(
            args.out_dir, preset=args.preset, num_train=args.num_train, num_val=args.num_val,
            num_test=args.num_test, duration_s=args.duration_s, height=args.height, width=args.width,
            classes=args.classes, seed=args.seed, num_workers=args.num_workers, hdf5=args.hdf5,
            progress=not args.no_progress, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as exc:
        print(f"evdet-make-synthetic: error: {exc}", file=sys.stderr)
        return 2
    print(summary.format())
    if summary.hdf5_dir is not None:
        print(f"  HDF5 tensors in {summary.hdf5_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
