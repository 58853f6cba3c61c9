"""``evdet-train``'s model options land in the ``ModelConfig`` (parsing only: no data, no training)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from evdet.apps import train as train_app

from evdet.inference.model_config import ModelConfig, RTDetrHeadConfig, YoloxHeadConfig


def model_config(*argv: str) -> ModelConfig:
    args = train_app.build_parser().parse_args(["ds", *argv])
    return train_app.configs_from_args(args)[0]


def doc_command_configs(doc_name: str, heading: str):
    """The configs of the first ``evdet-train`` command block after ``heading`` in ``docs/doc_name``."""
    doc = (Path(__file__).parents[2] / "docs" / doc_name).read_text(encoding="utf-8")
    section = doc.split(heading, 1)[1]
    command = section.split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    argv = shlex.split(command)
    assert argv[0] == "evdet-train"
    return train_app.configs_from_args(train_app.build_parser().parse_args(argv[1:]))


def test_yolox_defaults_are_the_config_defaults():
    assert model_config("--head", "yolox").yolox == YoloxHeadConfig()


def test_yolox_flags_land_in_the_yolox_config():
    mc = model_config("--head", "yolox", "--backbone", "rvt-b", "--yolox-depth", "0.67",
                      "--yolox-act", "relu", "--yolox-depthwise", "--yolox-use-l1",
                      "--yolox-class-score-only")
    assert mc.head == "yolox" and mc.backbone == "rvt-b"
    assert mc.yolox == YoloxHeadConfig(depth=0.67, depthwise=True, act="relu", use_l1=True,
                                       class_score_only=True)


@pytest.mark.parametrize("size", ["rvt-t", "rvt-s", "rvt-b", "rvt"])
def test_rvt_sizes_and_partition_split(size):
    mc = model_config("--head", "yolox", "--backbone", size, "--rvt-partition-split", "1")
    assert mc.backbone == size and mc.rvt.partition_split_32 == 1
    assert mc.rvt.sizes(size) == {"rvt-t": (32, 32), "rvt-s": (48, 24), "rvt-b": (64, 32),
                                  "rvt": (64, 32)}[size]


def test_bad_yolox_values_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        train_app.main(["ds", "--head", "yolox", "--yolox-depth", "0"])
    assert exc.value.code == 2
    assert "YoloxHeadConfig.depth must be > 0, got 0.0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        train_app.main(["ds", "--yolox-act", "gelu"])
    assert exc.value.code == 2
    assert "invalid choice: 'gelu'" in capsys.readouterr().err


def test_the_rvt_recipe_in_the_training_guide_parses():
    """docs/training.md's 'RVT's training recipe' command uses only flags evdet-train has."""
    mc, dc, tc = doc_command_configs("training.md", "## RVT's training recipe")
    assert (mc.backbone, mc.head, mc.rvt.partition_split_32) == ("rvt-b", "yolox", 1)
    assert mc.yolox == YoloxHeadConfig(depth=0.67, class_score_only=True)
    assert (dc.num_tbins, dc.batch_size, dc.sampling) == (21, 8, "mixed")
    assert (tc.lr, tc.weight_decay, tc.lr_schedule, tc.max_steps) == (2e-4, 0.0, "onecycle", 400_000)
    assert tc.min_lr_ratio / 25 == pytest.approx(1e-4)  # evdet's OneCycle end = RVT's lr / 10,000


def test_rtdetr_flags_land_in_the_rtdetr_config():
    assert model_config("--head", "rtdetr").rtdetr == RTDetrHeadConfig()
    mc = model_config("--head", "rtdetr", "--rtdetr-hidden-dim", "64", "--rtdetr-nheads", "4",
                      "--rtdetr-ffn", "128", "--rtdetr-enc-layers", "0", "--rtdetr-depth-mult", "0.34",
                      "--rtdetr-queries", "30", "--rtdetr-dec-layers", "3", "--rtdetr-points", "2",
                      "--rtdetr-denoising", "0", "--rtdetr-nms", "--rtdetr-grad-clip", "1.0",
                      "--rtdetr-top-k", "400")
    assert mc.head == "rtdetr"
    assert mc.rtdetr == RTDetrHeadConfig(hidden_dim=64, nheads=4, enc_ffn=128, dec_ffn=128, enc_layers=0,
                                         depth_mult=0.34, num_queries=30, dec_layers=3, num_points=2,
                                         num_denoising=0, nms=True, grad_clip=1.0, top_k=400)


def test_bad_rtdetr_values_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        train_app.main(["ds", "--head", "rtdetr", "--rtdetr-hidden-dim", "30", "--rtdetr-nheads", "4"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "RTDetrHeadConfig.hidden_dim (30) must be a multiple of 4 and of nheads (4)" in err


def test_the_rtdetr_recipe_in_the_set_head_guide_parses():
    """docs/set_head.md's tiny-data recipe uses only flags evdet-train has, and means what it says."""
    mc, dc, tc = doc_command_configs("set_head.md", "### Recipes")
    assert mc.head == "rtdetr" and mc.rtdetr.nms and (mc.rtdetr.num_queries, mc.rtdetr.dec_layers) == (20, 2)
    assert (dc.num_tbins, dc.batch_size, tc.lr, tc.max_steps) == (10, 4, 2e-3, 680)
    assert (dc.height, dc.width, dc.num_workers) == (96, 128, 1)  # the quickstart's input
