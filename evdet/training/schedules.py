"""Per-step learning-rate schedules: pure multiplier functions and a ``LambdaLR`` builder.

Each schedule is a pure function ``f(step, total_steps, warmup_steps, min_lr_ratio) -> float`` giving the
learning rate as a fraction of the peak ``lr`` at optimizer step ``step`` (0-based). The scheduler is
stepped once per optimizer step (Lightning ``interval="step"``). Steps past ``total_steps`` keep the final
value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["SCHEDULES", "build_lr_scheduler", "constant", "onecycle", "resolve_warmup_steps", "warmup_cosine"]


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Linear warm-up from ``1/warmup_steps`` to 1, then cosine decay to ``min_lr_ratio`` at the end."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def onecycle(step: int, total_steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """OneCycle shape (cosine annealing both ways, as ``torch.optim.lr_scheduler.OneCycleLR``).

    Starts at ``1/25`` of the peak (OneCycle's ``div_factor``), rises to 1 at ``warmup_steps`` along a
    cosine, then falls to ``min_lr_ratio / 25`` at ``total_steps`` (``final_div_factor`` = 25 /
    min_lr_ratio relative to the start, i.e. the end value is ``min_lr_ratio`` × the start value).
    """
    start = 1.0 / 25.0
    end = start * min_lr_ratio
    warmup_steps = max(1, warmup_steps)
    if step < warmup_steps:
        progress = step / warmup_steps
        return start + (1.0 - start) * 0.5 * (1.0 - math.cos(math.pi * progress))
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def constant(step: int, total_steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Linear warm-up, then the peak learning rate."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    return 1.0


#: Schedule name (``TrainConfig.lr_schedule``) → multiplier function.
SCHEDULES: dict[str, Callable[[int, int, int, float], float]] = {
    "cosine": warmup_cosine,
    "onecycle": onecycle,
    "constant": constant,
}


def resolve_warmup_steps(total_steps: int, warmup_steps: int | None, warmup_fraction: float) -> int:
    """Explicit ``warmup_steps`` if given, else ``round(warmup_fraction · total_steps)``; never > total."""
    n = warmup_steps if warmup_steps is not None else int(round(warmup_fraction * total_steps))
    return max(0, min(int(n), int(total_steps)))


def build_lr_scheduler(
    optimizer: Optimizer,
    name: str,
    total_steps: int,
    warmup_steps: int,
    min_lr_ratio: float = 0.01,
) -> LambdaLR:
    """A ``LambdaLR`` applying schedule ``name`` to every parameter group's initial lr.

    Raises:
        ValueError: unknown name (listing the valid ones), ``total_steps`` < 1, or ``min_lr_ratio``
            outside [0, 1].
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {name!r}; valid schedules are {sorted(SCHEDULES)}")
    if total_steps < 1:
        raise ValueError(f"lr schedule {name!r}: total_steps must be >= 1, got {total_steps}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"lr schedule {name!r}: min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    fn = partial(
        _call, SCHEDULES[name], total_steps=int(total_steps), warmup_steps=int(warmup_steps),
        min_lr_ratio=float(min_lr_ratio),
    )
    return LambdaLR(optimizer, fn)


def _call(fn: Callable[[int, int, int, float], float], step: int, *, total_steps: int, warmup_steps: int,
          min_lr_ratio: float) -> float:
    return fn(step, total_steps, warmup_steps, min_lr_ratio)
