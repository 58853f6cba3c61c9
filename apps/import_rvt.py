"""``evdet-import-rvt RVT_CKPT OUT_CKPT --dataset gen1|gen4``: turn one of RVT's checkpoints (uzh-rpg/RVT, a
PyTorch Lightning ``.ckpt``) into an evdet checkpoint that every evdet command takes (evdet-detect on raw
recordings, evdet-demo-video, evdet-eval, evdet-export, evdet-train --finetune, load_pretrained).

No code stored in the file is run (its tensors are rebuilt by evdet; OmegaConf configs, optimizer state
and the like are skipped), no GPU, Lightning or omegaconf is needed. The model size (RVT-T/S/B) is read
from the weight shapes; --dataset gives the classes, the input (RVT's stacked histogram, 50 ms, 10 bins;
240x304 on Gen1, 360x640 on 1Mpx) and RVT's partition split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evdet.io.interrupts import interruptible


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evdet-import-rvt", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rvt_checkpoint", type=Path, help="RVT checkpoint (.ckpt with weights under 'mdl.')")
    p.add_argument("out_checkpoint", type=Path, help="evdet checkpoint to write (.ckpt)")
    p.add_argument("--dataset", required=True, choices=("gen1", "gen4"),
                   help="what the model was trained on: gen1 (car, pedestrian) or gen4 = 1Mpx (pedestrian, "
                        "two wheeler, car)")
    p.add_argument("--dim-head", type=int, default=None,
                   help="attention head width, only for stage-1 widths other than RVT's 32/48/64")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier evdet-import-rvt output (files evdet did not write are never "
                        "replaced)")
    return p


@interruptible("evdet-import-rvt")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from evdet.inference.rvt_checkpoint import import_rvt_checkpoint

    try:
        info = import_rvt_checkpoint(args.rvt_checkpoint, args.out_checkpoint, args.dataset,
                                     dim_head=args.dim_head, overwrite=args.overwrite)
    except (FileNotFoundError, ValueError) as exc:
        print(f"evdet-import-rvt: error: {exc}", file=sys.stderr)
        return 2
    config = info.config
    height, width = info.network_size
    print(f"{args.rvt_checkpoint}: {config.backbone} + yolox (PAFPN depth {config.yolox.depth}), "
          f"classes {list(info.classes)}, input {info.in_channels}x{height}x{width} "
          f"({info.representation}, {info.delta_t // 1000} ms)")
    print(f"wrote {args.out_checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
