"""Check evdet's RVT backbone against RVT's own code on the same random weights and inputs.

    python benchmarks/check_rvt_backbone.py --rvt-dir PATH/TO/uzh-rpg/RVT [--bins 5]

Imports ``RNNDetector`` (``models/detection/recurrent_backbone/maxvit_rnn.py``) and ``InputPadderFromShape``
from a checkout of RVT, with stand-ins for omegaconf and RVT's ``data.utils.types`` in ``sys.modules``
(``benchmarks/rvt_reference.py``), so nothing beyond torch is needed. For each case (Gen1 240×304 with
``partition_split_32`` 1, 1Mpx-half 360×640 with 2, the depthwise ConvLSTM options) it loads RVT's random
state_dict into evdet's backbone (strict: the key names must match), runs ``--bins`` bins through RVT bin
by bin (padding with RVT's padder, states carried) and through evdet as one chunk, resets batch column 0
in both, runs two more bins, and prints the largest absolute difference of every stage output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from rvt_reference import backbone_config, import_rvt

from evdet.models.rvt_backbone import RVTBackbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rvt-dir", type=Path, required=True, help="checkout of uzh-rpg/RVT")
    parser.add_argument("--bins", type=int, default=5)
    args = parser.parse_args()
    import_rvt(args.rvt_dir)
    from models.detection.recurrent_backbone.maxvit_rnn import RNNDetector
    from utils.padding import InputPadderFromShape

    torch.manual_seed(0)
    cases = [("rvt-t, Gen1", 32, 32, 1, (240, 304), False, True),
             ("rvt-s, 1Mpx half", 48, 24, 2, (360, 640), False, True),
             ("rvt-t, dws conv on h", 32, 32, 1, (240, 304), True, True),
             ("rvt-t, dws conv on cat(x, h)", 32, 32, 1, (96, 128), True, False)]
    worst = 0.0
    for name, embed_dim, dim_head, split, hw, dws, only_hidden in cases:
        ours = RVTBackbone(20, embed_dim, dim_head=dim_head, partition_split_32=split, lstm_dws_conv=dws,
                           lstm_dws_conv_only_hidden=only_hidden).eval()
        g = ours.geometry(*hw)
        ref = RNNDetector(backbone_config(embed_dim, dim_head, (g[2], g[3]), dws, only_hidden)).eval()
        sd = {k: torch.randn_like(v) * 0.1 for k, v in ref.state_dict().items()}
        ref.load_state_dict(sd)
        ours.load_state_dict(sd, strict=True)
        padder = InputPadderFromShape((g[0], g[1]))
        diffs = [0.0] * 4
        states = None
        with torch.no_grad():
            for chunk, bins in enumerate((args.bins, 2)):
                x = torch.randint(0, 11, (bins, 2, 20, *hw)).float()  # stacked-histogram-like counts
                if chunk == 1:
                    ours.reset(torch.tensor([0.0, 1.0]))
                    states = [tuple(torch.cat([torch.zeros_like(s[:1]), s[1:]]) for s in st) for st in states]
                outs = ours(x)
                for t in range(bins):
                    feats, states = ref(padder.pad_tensor_ev_repr(x[t]), states)
                    for s in range(4):
                        diffs[s] = max(diffs[s], float((feats[s + 1] - outs[s][t]).abs().max()))
        worst = max(worst, *diffs)
        print(f"{name:30s} input {hw[0]}x{hw[1]} -> padded {g[0]}x{g[1]}, partition {g[2]}x{g[3]}: "
              f"max |evdet - RVT| per stage {', '.join(f'{d:.1e}' for d in diffs)}")
    print(f"largest difference {worst:.1e}")


if __name__ == "__main__":
    main()
