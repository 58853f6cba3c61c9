"""Check evdet's RVT backbone against RVT's own code on the same random weights and inputs.

    python benchmarks/check_rvt_backbone.py --rvt-dir PATH/TO/uzh-rpg/RVT [--bins 5]

Imports ``RNNDetector`` (``models/detection/recurrent_backbone/maxvit_rnn.py``) and ``InputPadderFromShape``
from a checkout of RVT. RVT needs omegaconf and its ``data`` package only for type names and config
access; when they are not installed the script puts minimal stand-ins in ``sys.modules`` (a dict with
attribute access for ``DictConfig``, the four type aliases of ``data.utils.types``), so nothing beyond
torch is needed. For each case (Gen1 240×304 with ``partition_split_32`` 1, 1Mpx-half 360×640 with 2,
the depthwise ConvLSTM options) it loads RVT's random state_dict into evdet's backbone (strict: the key
names must match), runs ``--bins`` bins through RVT bin by bin (padding with RVT's padder, states carried)
and through evdet as one chunk, resets batch column 0 in both, runs two more bins, and prints the largest
absolute difference of every stage output.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import torch

from evdet.models.rvt_backbone import RVTBackbone


class _Config(dict):
    """omegaconf.DictConfig stand-in: nested dict with attribute access."""

    def __init__(self, values: dict):
        super().__init__({k: _Config(v) if isinstance(v, dict) else v for k, v in values.items()})

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


def _import_rvt(rvt_dir: Path):
    try:
        import omegaconf  # noqa: F401
    except ImportError:
        sys.modules["omegaconf"] = types.SimpleNamespace(DictConfig=_Config, OmegaConf=object)
    rvt_types = types.ModuleType("data.utils.types")
    rvt_types.FeatureMap = torch.Tensor
    rvt_types.BackboneFeatures = dict
    rvt_types.LstmState = tuple
    rvt_types.LstmStates = list
    sys.modules.setdefault("data.utils.types", rvt_types)
    sys.path.insert(0, str(rvt_dir))
    from models.detection.recurrent_backbone.maxvit_rnn import RNNDetector
    from utils.padding import InputPadderFromShape

    return RNNDetector, InputPadderFromShape


def _rvt_config(embed_dim, dim_head, partition_size, dws_conv, only_hidden) -> _Config:
    """RVT's ``config/model/maxvit_yolox/default.yaml`` backbone section, sizes and partitions set."""
    return _Config(dict(
        name="MaxViTRNN", input_channels=20, enable_masking=False, embed_dim=embed_dim,
        dim_multiplier=[1, 2, 4, 8], num_blocks=[1, 1, 1, 1], T_max_chrono_init=[4, 8, 16, 32],
        stem=dict(patch_size=4),
        stage=dict(downsample=dict(type="patch", overlap=True, norm_affine=True),
                   attention=dict(use_torch_mha=False, partition_size=partition_size, dim_head=dim_head,
                                  attention_bias=True, mlp_activation="gelu", mlp_gated=False, mlp_bias=True,
                                  mlp_ratio=4, drop_mlp=0, drop_path=0, ls_init_value=1e-5),
                   lstm=dict(dws_conv=dws_conv, dws_conv_only_hidden=only_hidden, dws_conv_kernel_size=3,
                             drop_cell_update=0))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rvt-dir", type=Path, required=True, help="checkout of uzh-rpg/RVT")
    parser.add_argument("--bins", type=int, default=5)
    args = parser.parse_args()
    rnn_detector, padder_cls = _import_rvt(args.rvt_dir)
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
        ref = rnn_detector(_rvt_config(embed_dim, dim_head, (g[2], g[3]), dws, only_hidden)).eval()
        sd = {k: torch.randn_like(v) * 0.1 for k, v in ref.state_dict().items()}
        ref.load_state_dict(sd)
        ours.load_state_dict(sd, strict=True)
        padder = padder_cls((g[0], g[1]))
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
