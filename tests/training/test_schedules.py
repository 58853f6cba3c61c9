from __future__ import annotations

import math

import pytest
import torch

from evdet.training.schedules import (
    build_lr_scheduler,
    onecycle,
    resolve_warmup_steps,
    warmup_cosine,
)


def lrs(name, total, warmup, min_ratio=0.01, lr=1.0, steps=None):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = build_lr_scheduler(opt, name, total, warmup, min_ratio)
    out = []
    for _ in range(steps or total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_cosine_shape():
    v = lrs("cosine", 100, 10, 0.01, lr=2.0)
    assert v[0] == pytest.approx(0.2)  # (0+1)/10 · 2
    assert v[9] == pytest.approx(2.0)
    assert v[10] == pytest.approx(2.0)
    assert all(a >= b for a, b in zip(v[10:-1], v[11:], strict=True))  # monotone decay after warm-up
    assert warmup_cosine(100, 100, 10, 0.01) == pytest.approx(0.01)
    assert warmup_cosine(500, 100, 10, 0.01) == pytest.approx(0.01)  # past the end: final value
    mid = 10 + 45
    assert warmup_cosine(mid, 100, 10, 0.0) == pytest.approx(0.5)


def test_onecycle_matches_torch_onecycle():
    total, warm = 50, 15
    ours = lrs("onecycle", total, warm, 0.01, lr=0.1)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    ref_sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, total_steps=total + 1, pct_start=warm / total, div_factor=25,
        final_div_factor=100, cycle_momentum=False, three_phase=False,
    )
    ref = []
    for _ in range(total):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        ref_sched.step()
    assert ours[0] == pytest.approx(0.1 / 25)
    assert max(ours) == pytest.approx(0.1)
    assert onecycle(total, total, warm, 0.01) == pytest.approx(0.01 / 25)
    # same shape as torch's OneCycle (its phase boundaries differ by one step; compare loosely)
    assert max(abs(a - b) for a, b in zip(ours, ref, strict=True)) < 0.1 * 0.1


def test_constant_and_warmup_resolution():
    v = lrs("constant", 20, 4)
    assert v[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0]) and v[-1] == 1.0
    assert resolve_warmup_steps(1000, None, 0.05) == 50
    assert resolve_warmup_steps(10, 99, 0.05) == 10
    assert resolve_warmup_steps(10, 0, 0.5) == 0


def test_bad_schedule_arguments():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    with pytest.raises(ValueError, match="valid schedules"):
        build_lr_scheduler(opt, "step", 10, 1)
    with pytest.raises(ValueError, match="total_steps"):
        build_lr_scheduler(opt, "cosine", 0, 0)
    assert not math.isnan(warmup_cosine(0, 1, 0, 0.0))
