"""An exponential moving average of the weights (``TrainConfig.ema_decay``), as YOLOX and RT-DETR train.

After every optimizer step ``k`` the average moves towards the weights: ``E_k = d_k · E_{k-1} + (1 − d_k) ·
W_k`` with YOLOX's / RT-DETR's ramp ``d_k = decay · (1 − exp(−k / warmup_steps))`` (``warmup_steps`` 0: a
constant ``decay``); the first update copies the weights (YOLOX starts from the initial weights instead:
the difference is ``d_1 ≈ 5e-4`` of one step). Floating-point weights are averaged; buffers (BatchNorm
statistics) follow the current model.

The averaged weights are the model's: validation runs on them (so the best checkpoint is chosen by
them), every checkpoint's ``state_dict`` holds them (so ``evdet-detect``, ``evdet-export``,
``load_detector`` and fine-tuning use them), and the model ends training with them. The weights being
optimised travel in the checkpoint as ``current_model_state``, so ``--resume`` continues both exactly.
This is Lightning's :class:`~lightning.pytorch.callbacks.WeightAveraging` with the ramped average.
"""

from __future__ import annotations

import math

from lightning.pytorch.callbacks import WeightAveraging
from torch import Tensor

__all__ = ["EMAWeights", "ema_decay_at"]


def ema_decay_at(step: int, decay: float, warmup_steps: int) -> float:
    """``d_k`` of the module docstring for update ``step`` = k ≥ 1."""
    if warmup_steps <= 0:
        return float(decay)
    return float(decay) * (1.0 - math.exp(-step / warmup_steps))


class EMAWeights(WeightAveraging):
    """The weight average of the module docstring, updated after every optimizer step.

    Args:
        decay: ``decay`` in [0, 1] (YOLOX 0.9998, RT-DETR 0.9999).
        warmup_steps: ramp length of the decay (YOLOX and RT-DETR: 2000).
    """

    def __init__(self, decay: float, warmup_steps: int = 2000):
        def average(averaged: Tensor, current: Tensor, num_averaged: Tensor) -> Tensor:
            # num_averaged updates so far: this one is update k = num_averaged + 1 (the first copied)
            d = ema_decay_at(int(num_averaged) + 1, decay, warmup_steps)
            return averaged * d + current * (1.0 - d)

        super().__init__(use_buffers=False, avg_fn=average)
        self.decay, self.warmup_steps = float(decay), int(warmup_steps)
