from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from evdet.inference import model_config as model_config_mod
from evdet.inference.config_dict import config_from_dict, config_to_dict
from evdet.inference.model_config import (
    AnchorHeadConfig,
    DetrHeadConfig,
    ModelConfig,
    VanillaConfig,
    YoloxHeadConfig,
    build_detector,
)
from evdet.models import AnchorHead, DetrHead, RecurrentDetector, YoloxHead
from evdet.training.config import TrainConfig


def test_configs_are_frozen_and_round_trip_with_nested_parts():
    mc = ModelConfig(head="set", vanilla=VanillaConfig(base=8, cout=32), set=DetrHeadConfig(num_queries=7))
    with pytest.raises(dataclasses.FrozenInstanceError):
        mc.head = "anchor"  # type: ignore[misc]
    plain = config_to_dict(mc)
    assert plain["vanilla"] == {"base": 8, "cout": 32} and plain["set"]["num_queries"] == 7
    assert config_from_dict(ModelConfig, plain) == mc
    tc = TrainConfig(lr=1e-3, max_steps=10)
    assert config_from_dict(TrainConfig, config_to_dict(tc)) == tc
    assert config_from_dict(TrainConfig, None) == TrainConfig()


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="head.*valid heads"):
        ModelConfig(head="nope")
    with pytest.raises(ValueError, match="backbone.*valid backbones"):
        ModelConfig(backbone="nope")
    with pytest.raises(ValueError, match="VanillaConfig.base"):
        VanillaConfig(base=0)
    with pytest.raises(ValueError, match="fg_iou_threshold"):
        AnchorHeadConfig(fg_iou_threshold=0.2, bg_iou_threshold=0.3)
    with pytest.raises(ValueError, match="cls_loss"):
        DetrHeadConfig(cls_loss="bce")
    with pytest.raises(ValueError, match="YoloxHeadConfig.in_strides"):
        YoloxHeadConfig(in_strides=(8, 16))
    with pytest.raises(ValueError, match="no level of stride"):
        build_detector(ModelConfig(head="yolox", yolox=YoloxHeadConfig(in_strides=(4, 8, 16))), 2, 2)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="max_epochs or max_steps"):
        TrainConfig(max_epochs=-1, max_steps=-1)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['bogus'\]"):
        config_from_dict(ModelConfig, {"bogus": 1})
    with pytest.raises(ValueError, match=r"AnchorHeadConfig: unknown option\(s\) \['bogus'\]"):
        config_from_dict(ModelConfig, {"anchor": {"bogus": 1}})


@pytest.mark.parametrize("values, message", [
    ({"max_epochs": 1.5}, "TrainConfig.max_epochs must be an integer, got 1.5"),  # before: Lightning assert
    ({"max_epochs": True}, "TrainConfig.max_epochs must be an integer, got True"),  # before: taken as 1
    ({"lr": True}, "TrainConfig.lr must be a number, got True"),
    ({"lr": "abc"}, "TrainConfig.lr must be a number, got 'abc'"),  # before: "'>' not supported ..."
    ({"warmup_steps": 2.5}, "TrainConfig.warmup_steps must be an integer or null, got 2.5"),
    ({"precision": 16}, "TrainConfig.precision must be a string, got 16"),
])
def test_config_values_of_the_wrong_type_are_refused_by_name(values, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        config_from_dict(TrainConfig, values)
    tc = config_from_dict(TrainConfig, {"lr": 1, "devices": "auto", "warmup_steps": None})  # ints are numbers
    assert (tc.lr, tc.devices, tc.warmup_steps) == (1, "auto", None)


def test_build_detector_uses_the_registries(monkeypatch):
    calls = []

    def fake_head(cfg, channels, strides, num_classes):
        calls.append((channels, strides, num_classes))
        return AnchorHead(channels, strides, num_classes)

    monkeypatch.setitem(model_config_mod.HEADS, "fake", fake_head)
    det = build_detector(ModelConfig(head="fake", vanilla=VanillaConfig(base=4, cout=8)), 6, 3)
    assert isinstance(det, RecurrentDetector) and det.in_channels == 6
    assert calls == [([8] * 5, [8, 16, 32, 64, 128], 3)]
    with pytest.raises(ValueError, match="in_channels"):
        build_detector(ModelConfig(), 0, 3)
    with pytest.raises(ValueError, match="num_classes"):
        build_detector(ModelConfig(), 2, 0)


@pytest.mark.parametrize("backbone", ["Vanilla", "Vanilla_VGG", "Vanilla_VGGRU", "rvt-t"])
@pytest.mark.parametrize("head, cls", [("anchor", AnchorHead), ("set", DetrHead), ("yolox", YoloxHead)])
def test_every_backbone_builds_with_every_head(backbone, head, cls):
    mc = ModelConfig(backbone=backbone, head=head, vanilla=VanillaConfig(base=4, cout=8),
                     set=DetrHeadConfig(num_queries=4, dec_layers=1, hidden_dim=16, nheads=2,
                                        dim_feedforward=32))
    det = build_detector(mc, in_channels=2, num_classes=3).eval()  # (BatchNorm of one 1x1 frame: eval)
    assert isinstance(det.head, cls) and det.num_classes == 3 and det.in_channels == 2
    boxes = det.get_boxes(torch.rand(2, 1, 2, 64, 64))
    assert len(boxes) == 2 and len(boxes[0]) == 1 and boxes[0][0].shape[1] == 6
