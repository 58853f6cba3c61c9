"""evdet.models.rtdetr_criterion and the focal matching cost: hand-computed cases."""

import math

import pytest
import torch

from evdet.models.denoising import denoising_groups
from evdet.models.matcher import HungarianMatcher
from evdet.models.rtdetr_criterion import RTDETRCriterion, varifocal_loss
from evdet.models.set_criterion import box_losses


def _bce(x: float, t: float) -> float:
    return -(t * math.log(1 / (1 + math.exp(-x))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-x))))


def test_varifocal_loss_hand_computed():
    logits = torch.tensor([[[0.0, 1.0], [2.0, -1.0]]])  # B=1, Q=2, C=2
    classes = torch.tensor([[1, 2]])  # query 0 matched to class 1, query 1 unmatched (C = 2)
    iou = torch.tensor([[0.5, 0.0]])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    a, g = 0.75, 2.0
    # negatives: weight a·p^g, target 0; the positive: weight = target = IoU
    terms = [[a * sig(0.0) ** g * _bce(0.0, 0), 0.5 * _bce(1.0, 0.5)],
             [a * sig(2.0) ** g * _bce(2.0, 0), a * sig(-1.0) ** g * _bce(-1.0, 0)]]
    # loss.mean(1).sum() · Q / num_boxes: the mean over the Q = 2 queries, summed over classes, times Q
    expected = (sum(terms[0]) + sum(terms[1])) / 2 * 2 / 3.0
    got = varifocal_loss(logits, classes, iou, num_boxes=3.0, alpha=a, gamma=g)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_varifocal_positive_weight_follows_the_iou():
    logits = torch.zeros(1, 1, 1)
    low = varifocal_loss(logits, torch.tensor([[0]]), torch.tensor([[0.2]]), 1.0)
    high = varifocal_loss(logits, torch.tensor([[0]]), torch.tensor([[0.9]]), 1.0)
    assert float(low) == pytest.approx(0.2 * _bce(0.0, 0.2), rel=1e-6)
    assert float(high) == pytest.approx(0.9 * _bce(0.0, 0.9), rel=1e-6)


def test_focal_matching_cost_hand_computed():
    m = HungarianMatcher(2.0, 5.0, 2.0, focal=True, alpha=0.25, gamma=2.0)
    logits = torch.tensor([[[0.5, -1.0]]])  # one query, C = 2 (no no-object logit)
    box = torch.tensor([[[0.5, 0.5, 0.2, 0.2]]])
    tgt = [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.4]])}]
    p = 1 / (1 + math.exp(1.0))
    focal = 0.25 * (1 - p) ** 2 * -math.log(p + 1e-8) - 0.75 * p ** 2 * -math.log(1 - p + 1e-8)
    giou = (0.2 * 0.2) / (0.2 * 0.4)  # nested boxes: IoU = area ratio, enclosing = union
    expected = 2 * focal + 5 * 0.2 + 2 * -giou
    got = m.cost_matrix({"pred_logits": logits, "pred_boxes": box}, tgt)
    assert float(got[0, 0, 0]) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="outside 0..1"):  # C = 2 classes: label 2 is invalid here
        m.cost_matrix({"pred_logits": logits, "pred_boxes": box},
                      [{"labels": torch.tensor([2]), "boxes": tgt[0]["boxes"]}])


def _case(seed: int = 0):
    torch.manual_seed(seed)
    c, b, k, n_layers = 3, 2, 6, 3

    def boxes(*shape):
        return torch.cat([torch.rand(*shape, 2) * 0.6 + 0.2, torch.rand(*shape, 2) * 0.3 + 0.05], -1)

    targets = [{"labels": torch.tensor([0, 2]), "boxes": boxes(2)},
               {"labels": torch.tensor([1]), "boxes": boxes(1)}]
    logits, enc_logits = torch.randn(n_layers, b, k, c), torch.randn(b, k, c)
    return c, targets, logits, boxes(n_layers, b, k), enc_logits, boxes(b, k)


def test_criterion_keys_and_denoising_normaliser():
    c, targets, logits, bxs, enc_l, enc_b = _case()
    dn = denoising_groups([t["labels"] for t in targets], [t["boxes"] for t in targets], c, 6, 8)
    assert dn.num_groups == 4
    dn_l = torch.randn(3, 2, dn.num_denoising, c)
    dn_b = torch.rand(3, 2, dn.num_denoising, 4) * 0.3 + 0.1
    crit = RTDETRCriterion(c)
    losses, indices = crit(logits, bxs, enc_l, enc_b, targets, dn, dn_l, dn_b)
    kinds = ("loss_vfl", "loss_bbox", "loss_giou")
    expected = {f"{k}{s}" for k in kinds for s in ("", "_0", "_1", "_enc", "_dn_0", "_dn_1", "_dn_2")}
    assert set(losses) == expected
    assert [len(i) for i, _ in indices] == [2, 1]
    # the denoising sets use the fixed matching and num_boxes (3) × groups (4) as normaliser
    ref = box_losses(dn_b[1], targets, dn.matched_indices(), 3.0 * 4)
    torch.testing.assert_close(losses["loss_bbox_dn_1"], ref["loss_bbox"])
    torch.testing.assert_close(losses["loss_giou_dn_1"], ref["loss_giou"])
    # the final layer is matched by the focal Hungarian matcher
    final = crit.matcher({"pred_logits": logits[-1], "pred_boxes": bxs[-1]}, targets)
    torch.testing.assert_close(losses["loss_bbox"], box_losses(bxs[-1], targets, final, 3.0)["loss_bbox"])
    only_final, _ = crit(logits, bxs, enc_l, enc_b, targets, aux_loss=False)
    assert set(only_final) == set(kinds)


def test_criterion_without_targets_is_finite_and_needs_a_focal_matcher():
    c, _, logits, bxs, enc_l, enc_b = _case()
    empty = [{"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}] * 2
    losses, _ = RTDETRCriterion(c)(logits, bxs, enc_l, enc_b, empty)
    assert all(bool(torch.isfinite(v)) for v in losses.values())
    assert float(losses["loss_bbox"]) == 0.0 and float(losses["loss_vfl"]) > 0  # negatives still learn
    with pytest.raises(ValueError, match="focal"):
        RTDETRCriterion(c, HungarianMatcher())
