"""``evdet-export CHECKPOINT OUT_DIR``: export a trained detector to TorchScript with its box decoding
(``forward(x[T,B,C,H,W], score_thresh)``, ``reset_all()``) plus a JSON of the preprocessing, classes and
thresholds; the export is checked against the checkpoint (outputs equal to 1e-5) before it is written."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evdet-export", description=__doc__)
    p.add_argument("checkpoint", type=Path, help="trained model (.ckpt written by evdet-train)")
    p.add_argument("out_dir", type=Path, help="output folder for <name>.pt and <name>.json")
    p.add_argument("--name", default="model", help="file stem (default: model)")
    p.add_argument("--atol", type=float, default=1e-5, help="tolerance of the built-in checks (default 1e-5)")
    p.add_argument("--check-optimized", action="store_true",
                   help="also run the checks under TorchScript's optimising executor (slower)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from evdet.export import export_torchscript
    from evdet.inference.checkpoint import load_detector

    try:
        if args.checkpoint.suffix in (".pt", ".pth") and args.checkpoint.with_suffix(".json").exists():
            raise ValueError(f"{args.checkpoint} looks like an evdet TorchScript export already; "
                             "pass the training checkpoint (.ckpt)")
        detector, info = load_detector(args.checkpoint)
        pt, js = export_torchscript(detector, args.out_dir, info, name=args.name, atol=args.atol,
                                    check_optimized=args.check_optimized)
    except (FileNotFoundError, ValueError, TypeError, RuntimeError) as exc:
        print(f"evdet-export: error: {exc}", file=sys.stderr)
        return 2
    checks = json.loads(js.read_text())["checks"]
    print(f"wrote {pt} and {js}")
    print(f"checks passed: max |scripted - eager| = {checks['max_abs_diff']:.2e} <= {checks['atol']:g} "
          f"over {checks['boxes_compared']} boxes; reset_all() matches a freshly loaded model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
