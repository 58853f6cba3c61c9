"""``evdet-export CHECKPOINT OUT_DIR [--format torchscript|onnx]``: export a trained detector.

- ``torchscript`` (default): the detector with its box decoding (``forward(x[T,B,C,H,W], score_thresh)``,
  ``reset_all()``, ``reset(mask)``, ``get_state()``, ``set_state(...)``), checked against the checkpoint
  (outputs equal to 1e-5) before it is written.
- ``onnx``: the raw forward with explicit recurrent state (inputs ``x``, ``state_in.*``; outputs the head's
  raw outputs, ``state_out.*``), dynamic batch, checked with ONNX Runtime against the checkpoint (1e-4)
  over two chunks with a column reset between them.

Both write ``<name>.json`` beside the model: preprocessing, classes, decoding, inputs and outputs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from evdet.io.interrupts import interruptible

FORMATS = ("torchscript", "onnx")


def _tolerance(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):  # a check against NaN or inf never fails
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evdet-export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="trained model (.ckpt written by evdet-train)")
    p.add_argument("out_dir", type=Path, help="output folder for <name>.pt|.onnx and <name>.json")
    p.add_argument("--format", choices=FORMATS, default="torchscript",
                   help="export format (default torchscript)")
    p.add_argument("--name", default="model", help="file stem (default: model)")
    p.add_argument("--atol", type=_tolerance, default=None,
                   help="tolerance of the built-in checks (default 1e-5 TorchScript, 1e-4 ONNX)")
    p.add_argument("--num-tbins", type=_positive, default=None,
                   help="ONNX only: bins T per call fixed in the graph (default: the training T; TorchScript "
                        "takes any T)")
    p.add_argument("--check-optimized", action="store_true",
                   help="TorchScript: also run the checks under the optimising executor (slower)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier evdet export of the same name (an existing export is refused "
                        "otherwise; files evdet did not write are never replaced)")
    return p


@interruptible("evdet-export")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_tbins is not None and args.format != "onnx":
        parser.error("--num-tbins applies to --format onnx only (a TorchScript export takes any T)")
    from evdet.export import export_onnx, export_torchscript
    from evdet.inference.checkpoint import load_detector
    from evdet.io.output_paths import check_output

    try:
        exported = args.checkpoint.suffix in (".pt", ".pth", ".onnx")
        if exported and args.checkpoint.with_suffix(".json").exists():
            raise ValueError(f"{args.checkpoint} looks like an evdet export already; pass the training "
                             "checkpoint (.ckpt)")
        suffix = ".onnx" if args.format == "onnx" else ".pt"
        for target in (args.out_dir / f"{args.name}{suffix}", args.out_dir / f"{args.name}.json"):
            check_output(target, inputs=[args.checkpoint], overwrite=args.overwrite,  # before loading
                         tool="evdet-export")
        detector, info = load_detector(args.checkpoint)
        policy = {"overwrite": args.overwrite, "inputs": [args.checkpoint]}
        if args.format == "onnx":
            model, js = export_onnx(detector, args.out_dir, info, name=args.name, num_tbins=args.num_tbins,
                                    atol=1e-4 if args.atol is None else args.atol, **policy)
        else:
            model, js = export_torchscript(detector, args.out_dir, info, name=args.name,
                                           atol=1e-5 if args.atol is None else args.atol,
                                           check_optimized=args.check_optimized, **policy)
    except (FileNotFoundError, ValueError, TypeError, RuntimeError, ImportError) as exc:
        print(f"evdet-export: error: {exc}", file=sys.stderr)
        return 2
    checks = json.loads(js.read_text())["checks"]
    print(f"wrote {model} and {js}")
    if args.format == "onnx":
        print(f"checks passed: max |ONNX Runtime - eager| = {checks['max_abs_diff']:.2e} <= "
              f"{checks['atol']:g} over two chunks with a column reset and a second batch size")
    else:
        print(f"checks passed: max |scripted - eager| = {checks['max_abs_diff']:.2e} <= {checks['atol']:g} "
              f"over {checks['boxes_compared']} boxes; reset_all() matches a freshly loaded model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
