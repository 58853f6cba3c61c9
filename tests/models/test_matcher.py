import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from evdet.models import HungarianMatcher


def _np_giou(a, b):
    """Independent numpy GIoU of cxcywh boxes a [N, 4] and b [M, 4] -> [N, M]."""
    def xyxy(x):
        return np.stack([x[:, 0] - x[:, 2] / 2, x[:, 1] - x[:, 3] / 2, x[:, 0] + x[:, 2] / 2,
                         x[:, 1] + x[:, 3] / 2], 1)
    a, b = xyxy(a), xyxy(b)
    out = np.zeros((len(a), len(b)))
    for i in range(len(a)):
        for j in range(len(b)):
            iw = max(0.0, min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0]))
            ih = max(0.0, min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1]))
            inter = iw * ih
            area_a = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1])
            area_b = (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
            union = area_a + area_b - inter
            enc = ((max(a[i, 2], b[j, 2]) - min(a[i, 0], b[j, 0]))
                   * (max(a[i, 3], b[j, 3]) - min(a[i, 1], b[j, 1])))
            out[i, j] = inter / union - (enc - union) / enc
    return out


def _np_cost(logits, boxes, labels, tboxes, wc=1.0, wb=5.0, wg=2.0):
    e = np.exp(logits - logits.max(1, keepdims=True))
    prob = e / e.sum(1, keepdims=True)
    l1 = np.abs(boxes[:, None, :] - tboxes[None, :, :]).sum(-1)
    return wb * l1 - wc * prob[:, labels] - wg * _np_giou(boxes, tboxes)


def _random_batch(gen, b=3, q=7, c=3, sizes=(2, 0, 5)):
    logits = torch.randn(b, q, c + 1, generator=gen)
    boxes = torch.rand(b, q, 4, generator=gen) * 0.5 + 0.1
    targets = []
    for n in sizes:
        targets.append({"labels": torch.randint(0, c, (n,), generator=gen),
                        "boxes": torch.rand(n, 4, generator=gen) * 0.5 + 0.1})
    return {"pred_logits": logits, "pred_boxes": boxes}, targets


def test_known_optimum_hand_case():
    # query 2 sits on target 0 (class 1), query 0 on target 1 (class 0); query 1 is far away
    boxes = torch.tensor([[[0.7, 0.7, 0.2, 0.2], [0.1, 0.9, 0.05, 0.05], [0.3, 0.3, 0.2, 0.2]]])
    logits = torch.tensor([[[5.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.0, 5.0, 0.0]]])
    tboxes = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2]])
    targets = [{"labels": torch.tensor([1, 0]), "boxes": tboxes}]
    (pred, tgt), = HungarianMatcher()({"pred_logits": logits, "pred_boxes": boxes}, targets)
    assert pred.dtype == torch.int64 and tgt.dtype == torch.int64
    assert dict(zip(pred.tolist(), tgt.tolist(), strict=True)) == {0: 1, 2: 0}


def test_cost_matrix_matches_independent_numpy_reference():
    gen = torch.Generator().manual_seed(0)
    outputs, targets = _random_batch(gen)
    m = HungarianMatcher(1.0, 5.0, 2.0)
    cost = m.cost_matrix(outputs, targets)
    assert cost.shape == (3, 7, 7)
    labels = torch.cat([t["labels"] for t in targets]).numpy()
    tboxes = torch.cat([t["boxes"] for t in targets]).double().numpy()
    for i in range(3):
        ref = _np_cost(outputs["pred_logits"][i].double().numpy(), outputs["pred_boxes"][i].double().numpy(),
                       labels, tboxes)
        np.testing.assert_allclose(cost[i].numpy(), ref, rtol=1e-5, atol=1e-5)


def test_assignment_is_optimal_and_batched_equals_per_image():
    gen = torch.Generator().manual_seed(1)
    outputs, targets = _random_batch(gen, b=4, q=6, sizes=(3, 6, 0, 1))
    m = HungarianMatcher(2.0, 5.0, 2.0)
    batched = m(outputs, targets)
    for i, (pred, tgt) in enumerate(batched):
        one = {k: v[i:i + 1] for k, v in outputs.items()}
        p1, t1 = m(one, [targets[i]])[0]
        assert torch.equal(pred, p1) and torch.equal(tgt, t1)
        n = targets[i]["labels"].shape[0]
        assert pred.numel() == min(6, n)
        if n:
            ref = _np_cost(one["pred_logits"][0].double().numpy(), one["pred_boxes"][0].double().numpy(),
                           targets[i]["labels"].numpy(), targets[i]["boxes"].double().numpy(), 2.0, 5.0, 2.0)
            r, c = linear_sum_assignment(ref)
            assert ref[pred.numpy(), tgt.numpy()].sum() == pytest.approx(ref[r, c].sum(), rel=1e-6)


def test_permuting_targets_permutes_the_assignment():
    gen = torch.Generator().manual_seed(2)
    outputs, targets = _random_batch(gen, b=1, q=8, sizes=(5,))
    m = HungarianMatcher()
    pred, tgt = m(outputs, targets)[0]
    perm = torch.tensor([3, 0, 4, 1, 2])
    permuted = [{"labels": targets[0]["labels"][perm], "boxes": targets[0]["boxes"][perm]}]
    pred2, tgt2 = m(outputs, permuted)[0]
    assert torch.equal(pred, pred2)
    # the same query gets the same original target
    assert torch.equal(perm[tgt2], tgt)


def test_zero_targets():
    gen = torch.Generator().manual_seed(3)
    outputs, targets = _random_batch(gen, b=2, q=4, sizes=(0, 0))
    out = HungarianMatcher()(outputs, targets)
    assert len(out) == 2
    for pred, tgt in out:
        assert pred.shape == (0,) and tgt.shape == (0,) and pred.dtype == torch.int64


def test_bad_inputs_raise():
    gen = torch.Generator().manual_seed(4)
    outputs, targets = _random_batch(gen, b=1, q=4, c=3, sizes=(2,))
    m = HungarianMatcher()
    bad = [{"labels": torch.tensor([0, 3]), "boxes": targets[0]["boxes"]}]
    with pytest.raises(ValueError, match="label 3"):
        m(outputs, bad)
    with pytest.raises(ValueError, match="2 targets for a batch of 1"):
        m(outputs, targets * 2)
    nan = {"pred_logits": outputs["pred_logits"].clone(), "pred_boxes": outputs["pred_boxes"]}
    nan["pred_logits"][0, 1, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite matching cost in image 0"):
        m(nan, targets)
    with pytest.raises(ValueError, match="cost_bbox"):
        HungarianMatcher(1.0, -1.0, 1.0)
