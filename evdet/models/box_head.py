"""Single-stage box/class head shared by all feature levels (SPEC 5). TorchScript-able."""

import math

import torch
from torch import Tensor, nn


def _tower(channels: int, num_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(num_layers):
        layers += [nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class BoxHead(nn.Module):
    """A box tower and a class tower (3×3 conv + ReLU, shared by all levels) and their predictors.

    Args:
        in_channels: channels of every feature level (the levels must share them).
        num_anchors: anchors per feature cell A.
        num_classes: foreground classes C; class logits are C+1 with background last (index C).
        num_layers: conv layers per tower.
        background_prior: P(background) of every anchor at initialisation (bias of the last class layer).
    """

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, num_layers: int = 1,
                 background_prior: float = 0.99):
        super().__init__()
        if not 0.0 < background_prior < 1.0:
            raise ValueError(f"BoxHead: background_prior must be in (0, 1), got {background_prior}")
        self.in_channels = in_channels
        self.num_anchors = num_anchors
        self.num_classes = num_classes
        self.box_tower = _tower(in_channels, num_layers)
        self.cls_tower = _tower(in_channels, num_layers)
        self.box_pred = nn.Conv2d(in_channels, num_anchors * 4, 3, 1, 1)
        self.cls_pred = nn.Conv2d(in_channels, num_anchors * (num_classes + 1), 3, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        self.background_bias = self.background_logit(num_classes, background_prior)
        with torch.no_grad():
            self.cls_pred.bias.view(num_anchors, num_classes + 1)[:, num_classes] = self.background_bias

    @staticmethod
    def background_logit(num_classes: int, background_prior: float = 0.99) -> float:
        """Background bias b (other classes 0) such that softmax gives P(background) = prior."""
        return math.log(background_prior * num_classes / (1.0 - background_prior))

    def forward(self, features: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Head outputs for all levels.

        Args:
            features: per level ``Tensor[N, in_channels, H_l, W_l]``.

        Returns:
            ``loc Tensor[N, sum_l H_l·W_l·A, 4]`` (SSD deltas) and ``cls Tensor[N, sum_l H_l·W_l·A, C+1]``
            logits, ordered level, row, column, anchor (the order of ``Anchors``).
        """
        locs: list[Tensor] = []
        clss: list[Tensor] = []
        k = self.num_classes + 1
        for f in features:
            n, h, w = f.shape[0], f.shape[2], f.shape[3]
            loc = self.box_pred(self.box_tower(f))  # [N, A*4, H, W]
            cls = self.cls_pred(self.cls_tower(f))  # [N, A*(C+1), H, W]
            locs.append(loc.permute(0, 2, 3, 1).reshape(n, h * w * self.num_anchors, 4))  # [N, H*W*A, 4]
            clss.append(cls.permute(0, 2, 3, 1).reshape(n, h * w * self.num_anchors, k))  # [N, H*W*A, C+1]
        return torch.cat(locs, 1), torch.cat(clss, 1)
