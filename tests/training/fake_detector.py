"""A tiny detector following the evdet detector contract, for testing the training layer in isolation.

It has a recurrent state per batch column (a leaky sum of pooled conv features), so tests can check that
the Lightning module resets and carries state as the contract says. Not a real detector.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class FakeDetector(nn.Module):
    def __init__(self, in_channels: int = 2, num_classes: int = 2, width: int = 4) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.cls = nn.Linear(width, num_classes + 1)  # background at index 0
        self.box = nn.Linear(width, 4)
        self.state: Tensor | None = None
        self.reset_calls: list[Tensor] = []

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

    def _features(self, x: Tensor) -> Tensor:
        T, B = x.shape[:2]
        f = self.conv(x.flatten(0, 1)).relu().mean((2, 3)).view(T, B, -1)  # [T, B, F]
        h = self.state if self.state is not None else torch.zeros_like(f[0])
        out = []
        for t in range(T):
            h = 0.5 * h + f[t]
            out.append(h)
        self.state = h
        return torch.stack(out)  # [T, B, F]

    def _boxes(self, feats: Tensor, height: int, width: int) -> Tensor:
        raw = torch.sigmoid(self.box(feats))  # [T, B, 4]
        x1 = raw[..., 0] * width * 0.5
        y1 = raw[..., 1] * height * 0.5
        x2 = x1 + 1 + raw[..., 2] * width * 0.5
        y2 = y1 + 1 + raw[..., 3] * height * 0.5
        return torch.stack([x1, y1, x2, y2], -1)

    def compute_loss(
        self, x: Tensor, targets: list[list[Tensor]], frame_is_labeled: Tensor
    ) -> dict[str, Tensor]:
        feats = self._features(x)
        H, W = x.shape[-2:]
        logits = self.cls(feats)  # [T, B, C+1]
        boxes = self._boxes(feats, H, W)
        zero = logits.sum() * 0 + boxes.sum() * 0
        loss_cls, loss_box, n = zero, zero, 0
        for t, b in frame_is_labeled.nonzero().tolist():
            gt = targets[t][b]
            label = int(gt[0, 4]) + 1 if len(gt) else 0
            loss_cls = loss_cls + nn.functional.cross_entropy(logits[t, b][None], torch.tensor([label]))
            if len(gt):
                loss_box = loss_box + (boxes[t, b] - gt[0, :4]).abs().mean() / max(H, W)
            n += 1
        n = max(n, 1)
        return {"loss": (loss_cls + loss_box) / n, "loss_cls": loss_cls / n, "loss_box": loss_box / n}

    @torch.no_grad()
    def get_boxes(
        self, x: Tensor, score_thresh: float = 0.1, nms_thresh: float = 0.5, max_detections: int = 100
    ) -> list[list[Tensor]]:
        feats = self._features(x)
        H, W = x.shape[-2:]
        probs = self.cls(feats).softmax(-1)  # [T, B, C+1]
        boxes = self._boxes(feats, H, W)
        out = []
        for t in range(x.shape[0]):
            row = []
            for b in range(x.shape[1]):
                score, cls = probs[t, b, 1:].max(0)
                det = torch.cat([boxes[t, b], score[None], cls[None].float()])[None]
                row.append(det[det[:, 4] >= score_thresh][:max_detections])
            out.append(row)
        return out

    def map_cls_weights(self, src_state_dict: dict, old_classes: list[str], new_classes: list[str]) -> None:
        w, b = src_state_dict["cls.weight"], src_state_dict["cls.bias"]
        with torch.no_grad():
            self.cls.weight[0] = w[0]
            self.cls.bias[0] = b[0]
            for i, name in enumerate(new_classes):
                if name in old_classes:
                    j = old_classes.index(name)
                    self.cls.weight[i + 1] = w[j + 1]
                    self.cls.bias[i + 1] = b[j + 1]


def build_fake(model_config, in_channels: int, num_classes: int) -> FakeDetector:
    return FakeDetector(in_channels, num_classes, width=max(2, model_config.base))
