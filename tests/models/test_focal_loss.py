import numpy as np
import pytest
import torch

from evdet.models import smooth_l1_loss, softmax_focal_loss


def _focal_np(logits, targets, gamma, alpha=None):
    total = 0.0
    for row, t in zip(logits, targets, strict=True):
        if t < 0:
            continue
        p = np.exp(row - row.max())
        p = p / p.sum()
        w = 1.0 if alpha is None else (alpha if t < len(row) - 1 else 1 - alpha)  # background last
        total += -w * (1 - p[t]) ** gamma * np.log(p[t])
    return total


@pytest.mark.parametrize("gamma,alpha", [(2.0, None), (0.0, None), (2.0, 0.25)])
def test_equals_numpy_reference(rng, gamma, alpha):
    logits = rng.normal(0, 3, (50, 4))
    targets = rng.integers(-1, 4, 50)
    got = softmax_focal_loss(torch.tensor(logits), torch.tensor(targets), gamma, alpha)
    assert got.item() == pytest.approx(_focal_np(logits, targets, gamma, alpha), rel=1e-5)


def test_gamma_zero_is_cross_entropy(rng):
    logits = torch.tensor(rng.normal(0, 1, (20, 3)), dtype=torch.float32)
    targets = torch.tensor(rng.integers(0, 3, 20))
    ce = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    torch.testing.assert_close(softmax_focal_loss(logits, targets, gamma=0.0), ce)


def test_ignored_rows_change_nothing_and_inputs_untouched(rng):
    logits = torch.tensor(rng.normal(0, 1, (10, 3)), dtype=torch.float32, requires_grad=True)
    targets = torch.tensor(rng.integers(0, 3, 10))
    base = softmax_focal_loss(logits, targets)
    extra_logits = torch.cat([logits, torch.tensor(rng.normal(0, 50, (5, 3)), dtype=torch.float32)])
    extra_targets = torch.cat([targets, torch.full((5,), -1)])
    t_copy, l_copy = extra_targets.clone(), extra_logits.detach().clone()
    loss = softmax_focal_loss(extra_logits, extra_targets)
    torch.testing.assert_close(loss, base)
    assert torch.equal(extra_targets, t_copy) and torch.equal(extra_logits.detach(), l_copy)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_bad_targets():
    with pytest.raises(ValueError, match="target 1 = 3"):
        softmax_focal_loss(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="expected logits"):
        softmax_focal_loss(torch.zeros(2, 3), torch.tensor([0]))


def test_smooth_l1_reference(rng):
    p = rng.normal(0, 0.2, (30, 4))
    t = rng.normal(0, 0.2, (30, 4))
    d = np.abs(p - t)
    ref = np.where(d < 0.11, 0.5 * d**2 / 0.11, d - 0.055).sum()
    assert smooth_l1_loss(torch.tensor(p), torch.tensor(t)).item() == pytest.approx(ref)
    assert (d < 0.11).any() and (d >= 0.11).any()
    with pytest.raises(ValueError, match="shapes differ"):
        smooth_l1_loss(torch.zeros(2, 4), torch.zeros(3, 4))
