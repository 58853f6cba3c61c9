"""A tiny detector following the evdet detector contract, for testing the training layer in isolation.

A :class:`evdet.models.RecurrentDetector` of a fake backbone (a recurrent state per batch column: a leaky
sum of pooled conv features) and a fake head (one box per frame), so tests can check that the Lightning
module resets and carries state as the contract says. Not a real detector.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from evdet.inference import model_config as model_config_mod
from evdet.inference.model_config import ModelConfig, VanillaConfig
from evdet.models import ClassLogitLayer, DetectionHead, RecurrentDetector


class FakeBackbone(nn.Module):
    def __init__(self, in_channels: int = 2, width: int = 4) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.channels = [width]
        self.strides = [1]
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.state: Tensor | None = None
        self.reset_calls: list[Tensor] = []

    def forward(self, x: Tensor) -> list[Tensor]:
        T, B = x.shape[:2]
        f = self.conv(x.flatten(0, 1)).relu().mean((2, 3)).view(T, B, -1)  # [T, B, F]
        h = self.state if self.state is not None else torch.zeros_like(f[0])
        out = []
        for t in range(T):
            h = 0.5 * h + f[t]
            out.append(h)
        self.state = h
        return [torch.stack(out)[..., None, None]]  # [T, B, F, 1, 1]

    def reset(self, mask_keep_memory: Tensor) -> None:
        self.reset_calls.append(mask_keep_memory.detach().clone())
        if self.state is not None:
            if self.state.shape[0] != mask_keep_memory.shape[0]:
                self.state = None
            else:
                self.state = (self.state * mask_keep_memory.to(self.state)[:, None]).detach()

    def reset_all(self) -> None:
        self.state = None

    def detach(self) -> None:
        if self.state is not None:
            self.state = self.state.detach()

    def get_state(self) -> list[Tensor]:
        return [] if self.state is None else [self.state]

    def set_state(self, state: list[Tensor]) -> None:
        self.state = state[0] if state else None


class FakeHead(DetectionHead):
    loss_names = ("loss", "loss_cls", "loss_box")

    def __init__(self, width: int, num_classes: int) -> None:
        super().__init__(num_classes)
        self.cls = nn.Linear(width, num_classes + 1)  # background last
        self.box = nn.Linear(width, 4)

    def _boxes(self, feats: Tensor, height: int, width: int) -> Tensor:
        raw = torch.sigmoid(self.box(feats))  # [N, 4]
        x1 = raw[..., 0] * width * 0.5
        y1 = raw[..., 1] * height * 0.5
        x2 = x1 + 1 + raw[..., 2] * width * 0.5
        y2 = y1 + 1 + raw[..., 3] * height * 0.5
        return torch.stack([x1, y1, x2, y2], -1)

    def forward(self, features: list[Tensor], image_height: int, image_width: int) -> list[Tensor]:
        f = features[0].flatten(1)  # [N, F]
        return [self.cls(f), self._boxes(f, image_height, image_width)]

    def detect(self, features, image_height, image_width, score_thresh, nms_thresh, max_detections):
        logits, boxes = self.forward(features, image_height, image_width)
        probs = logits.softmax(-1)[:, :-1]  # [N, C]
        out = []
        for i in range(logits.shape[0]):
            score, cls = probs[i].max(0)
            det = torch.cat([boxes[i], score[None], cls[None].float()])[None]
            out.append(det[det[:, 4] >= score_thresh][:max_detections])
        return out

    def loss(self, features, targets, image_height, image_width):
        logits, boxes = self.forward(features, image_height, image_width)
        zero = logits.sum() * 0 + boxes.sum() * 0
        loss_cls, loss_box = zero, zero
        for i, gt in enumerate(targets):
            label = int(gt[0, 4]) if len(gt) else self.num_classes
            loss_cls = loss_cls + nn.functional.cross_entropy(logits[i][None], torch.tensor([label]))
            if len(gt):
                loss_box = loss_box + (boxes[i] - gt[0, :4]).abs().mean() / max(image_height, image_width)
        n = max(len(targets), 1)
        return {"loss": (loss_cls + loss_box) / n, "loss_cls": loss_cls / n, "loss_box": loss_box / n}

    def class_logit_layers(self) -> list[ClassLogitLayer]:
        return [ClassLogitLayer(("cls.weight", "cls.bias"), background=True)]


class FakeDetector(RecurrentDetector):
    def __init__(self, in_channels: int = 2, num_classes: int = 2, width: int = 4) -> None:
        super().__init__(FakeBackbone(in_channels, width), FakeHead(width, num_classes))

    @property
    def reset_calls(self) -> list[Tensor]:
        return self.backbone.reset_calls


def register_fake(monkeypatch) -> str:
    """Register the fake backbone and head under the name ``"fake"`` (for ``ModelConfig``); returns it."""
    monkeypatch.setitem(model_config_mod.BACKBONES, "fake",
                        lambda cfg, in_channels: FakeBackbone(in_channels, max(2, cfg.vanilla.base)))
    monkeypatch.setitem(model_config_mod.HEADS, "fake",
                        lambda cfg, channels, strides, num_classes: FakeHead(channels[0], num_classes))
    return "fake"


def fake_config(base: int = 4, **kw) -> ModelConfig:
    """The ``ModelConfig`` of a fake detector of width ``base`` (after :func:`register_fake`)."""
    return ModelConfig(backbone="fake", head="fake", vanilla=VanillaConfig(base=base), **kw)
