"""Run configurations (``ROOT/config.yaml``) and ``evdet-train``'s flags generated from the config fields."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from evdet.apps import train as train_app

from evdet.data.config import DataConfig
from evdet.inference.config_dict import field_docs
from evdet.inference.model_config import (
    AnchorHeadConfig,
    DetrHeadConfig,
    ModelConfig,
    RTDetrHeadConfig,
    RVTConfig,
    VanillaConfig,
    YoloxHeadConfig,
)
from evdet.training.config import TrainConfig
from evdet.training.run_config import RunConfig, load_run_config, run_config_text, write_run_config


def resolve(*argv: str) -> RunConfig:
    return train_app.run_config_from_args(train_app.build_parser().parse_args(list(argv)))


def test_run_config_round_trips_through_yaml(tmp_path):
    config = RunConfig("data/gen1", ModelConfig(head="rtdetr", rtdetr=RTDetrHeadConfig(num_queries=20)),
                       DataConfig(classes=("car", "pedestrian"), representation_params={"max_incr": 4}),
                       TrainConfig(limit_val_batches=3, devices="auto", accumulate_grad_batches=2))
    path = write_run_config(tmp_path / "config.yaml", config)
    assert load_run_config(path) == config
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# evdet-train run configuration") and "classes: [car, pedestrian]" in text
    assert list(yaml.safe_load(text)) == ["dataset_dir", "model", "data", "train"]


def test_a_partial_config_keeps_the_other_defaults(tmp_path):
    (tmp_path / "c.yaml").write_text("model:\n  head: set\n  set: {num_queries: 7}\ntrain: {lr: 0.01}\n")
    config = load_run_config(tmp_path / "c.yaml")
    assert config.model == ModelConfig(head="set", set=DetrHeadConfig(num_queries=7))
    assert config.train == TrainConfig(lr=0.01) and config.data == DataConfig() and config.dataset_dir is None


@pytest.mark.parametrize("text, match", [
    ("modle: {head: set}\n", r"c.yaml: unknown section\(s\) \['modle'\]"),
    ("model: {heads: set}\n", r"c.yaml: model: ModelConfig: unknown option\(s\) \['heads'\]"),
    ("train: {lr: -1}\n", r"c.yaml: train: TrainConfig.lr must be > 0"),
    ("- a list\n", "c.yaml: expected a mapping"),
    ("model: {head: [\n", "c.yaml: not a YAML run configuration"),
])
def test_bad_config_files_are_errors_naming_the_file(tmp_path, text, match):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_run_config(tmp_path / "c.yaml")


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match="run configuration not found: nope.yaml"):
        load_run_config("nope.yaml")


@pytest.mark.parametrize("cls", [TrainConfig, DataConfig, ModelConfig, VanillaConfig, RVTConfig,
                                 AnchorHeadConfig, DetrHeadConfig, YoloxHeadConfig, RTDetrHeadConfig])
def test_every_option_is_documented_in_its_dataclass(cls):
    # the help of evdet-train's flags is these descriptions: each field has one
    docs = field_docs(cls)
    assert {f.name for f in dataclasses.fields(cls)} <= set(docs)
    assert all(docs.values())


def test_every_flag_sets_a_real_field_with_its_default():
    for flags in train_app.FLAGS.values():
        for flag in flags:
            for path in flag.paths:
                cls, name = train_app._field(path)
                assert name in {f.name for f in dataclasses.fields(cls)}, path
    assert resolve("ds") == RunConfig("ds")  # no flag given: the dataclass defaults


def test_flags_land_in_the_config_fields():
    config = resolve("ds", "--set-loss-weights", "2", "4", "1", "--set-cost-weights", "3", "5", "2",
                     "--set-ffn", "256", "--hidden-dim", "64", "--anchor-focal-alpha", "0.25",
                     "--anchor-fg-iou", "0.6", "--seed", "7", "--no-interpolate", "--rtdetr-ffn", "96",
                     "--classes", "car", "--accumulate-grad-batches", "4", "--num-nodes", "2",
                     "--limit-val-batches", "0.5", "--devices", "auto")
    s = config.model.set
    assert (s.loss_ce, s.loss_bbox, s.loss_giou, s.cost_class, s.cost_bbox, s.cost_giou) == (2, 4, 1, 3, 5, 2)
    assert (s.hidden_dim, s.dim_feedforward) == (64, 256)  # nothing derived from hidden_dim
    assert config.model.anchor == AnchorHeadConfig(focal_alpha=0.25, fg_iou_threshold=0.6)
    assert config.model.rtdetr == RTDetrHeadConfig(enc_ffn=96, dec_ffn=96)
    assert (config.train.seed, config.data.seed, config.data.interpolate, config.data.classes) == \
        (7, 7, False, ("car",))
    t = config.train
    assert (t.accumulate_grad_batches, t.num_nodes, t.limit_val_batches, t.devices) == (4, 2, 0.5, "auto")
    assert resolve("ds", "--anchor-focal-alpha", "none").model.anchor.focal_alpha is None


def test_print_config_then_config_reproduces_and_flags_override(tmp_path, capsys):
    assert train_app.main(["data/x", "--head", "set", "--num-queries", "9", "--lr", "0.01",
                           "--print-config"]) == 0
    text = capsys.readouterr().out
    (tmp_path / "run.yaml").write_text(text)
    assert resolve("--config", str(tmp_path / "run.yaml")) == load_run_config(tmp_path / "run.yaml")
    again = resolve("--config", str(tmp_path / "run.yaml"), "--lr", "0.02", "other")
    assert (again.dataset_dir, again.model.set.num_queries, again.train.lr) == ("other", 9, 0.02)
    assert run_config_text(resolve("--config", str(tmp_path / "run.yaml"))) == text


def test_config_errors_are_usage_errors(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("train: {lr: 0.01}\n")
    with pytest.raises(SystemExit) as exc:
        train_app.main(["--config", str(tmp_path / "c.yaml")])
    assert exc.value.code == 2 and "give DATASET_DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        train_app.main(["ds", "--config", str(tmp_path / "missing.yaml")])
    assert exc.value.code == 2 and "run configuration not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        train_app.main(["ds", "--accumulate-grad-batches", "0"])
    assert exc.value.code == 2
    assert "TrainConfig.accumulate_grad_batches must be a positive integer, got 0" in capsys.readouterr().err


def test_every_flag_is_in_the_training_guide():
    from pathlib import Path

    guide = (Path(__file__).parents[2] / "docs" / "training.md").read_text(encoding="utf-8")
    table = guide.split("## Every option of `evdet-train`", 1)[1]
    for flags in train_app.FLAGS.values():
        for flag in flags:
            name = flag.names[0]
            listed = f"`{name}" in table or f"/{name}`" in table
            assert listed or (name.startswith("--rtdetr-") and "`--rtdetr-*`" in table), name
