from __future__ import annotations

import dataclasses

import pytest

from evdet.training import config as config_mod
from evdet.training.config import (
    ModelConfig,
    TrainConfig,
    build_detector,
    config_from_dict,
    config_to_dict,
)


def test_configs_are_frozen_and_round_trip():
    mc = ModelConfig(base=8, cout=32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        mc.base = 4  # type: ignore[misc]
    assert config_from_dict(ModelConfig, config_to_dict(mc)) == mc
    tc = TrainConfig(lr=1e-3, max_steps=10)
    assert config_from_dict(TrainConfig, config_to_dict(tc)) == tc
    assert config_from_dict(TrainConfig, None) == TrainConfig()


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="head.*valid heads"):
        ModelConfig(head="nope")
    with pytest.raises(ValueError, match="base"):
        ModelConfig(base=0)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="max_epochs or max_steps"):
        TrainConfig(max_epochs=-1, max_steps=-1)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['bogus'\]"):
        config_from_dict(ModelConfig, {"bogus": 1})


def test_build_detector_uses_the_head_dict(monkeypatch):
    calls = []

    def fake(cfg, in_channels, num_classes):
        calls.append((cfg.base, in_channels, num_classes))
        return "built"

    monkeypatch.setitem(config_mod.HEADS, "fake", fake)
    assert build_detector(ModelConfig(head="fake", base=4), 6, 3) == "built"
    assert calls == [(4, 6, 3)]
    with pytest.raises(ValueError, match="in_channels"):
        build_detector(ModelConfig(head="fake"), 0, 3)


def test_build_real_anchor_detector():
    pytest.importorskip("evdet.models.single_stage")
    import torch

    det = build_detector(ModelConfig(base=4, cout=8), in_channels=2, num_classes=3)
    assert det.num_classes == 3 and det.in_channels == 2
    boxes = det.get_boxes(torch.rand(2, 1, 2, 64, 64))
    assert len(boxes) == 2 and len(boxes[0]) == 1 and boxes[0][0].shape[1] == 6
