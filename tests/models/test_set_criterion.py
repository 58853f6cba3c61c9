import math

import pytest
import torch

from evdet.models import HungarianMatcher, SetCriterion, slot_metrics, softmax_focal_loss


def _outputs(logits, boxes):
    return {"pred_logits": torch.tensor(logits, dtype=torch.float32),
            "pred_boxes": torch.tensor(boxes, dtype=torch.float32)}


def _logsoftmax(row):
    m = max(row)
    s = sum(math.exp(v - m) for v in row)
    return [v - m - math.log(s) for v in row]


def test_hand_computed_single_image():
    # C = 1: logits [object, no-object]. Query 0 matches the target exactly in position; query 1 is far
    out = _outputs([[[2.0, 0.0], [0.5, 1.5]]], [[[0.5, 0.5, 0.2, 0.2], [0.9, 0.1, 0.1, 0.1]]])
    targets = [{"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])}]
    losses = SetCriterion(1, HungarianMatcher(), eos_coef=0.1)(out, targets)
    # CE weighted mean: query 0 -> class 0 (weight 1), query 1 -> no-object (weight 0.1)
    ce = (-_logsoftmax([2.0, 0.0])[0] - 0.1 * _logsoftmax([0.5, 1.5])[1]) / 1.1
    assert float(losses["loss_ce"]) == pytest.approx(ce, rel=1e-6)
    assert float(losses["loss_bbox"]) == pytest.approx(0.4, rel=1e-6)  # |0.2-0.4| + |0.2-0.4|
    # IoU = 0.04 / 0.16, the enclosing box is the target: GIoU = 0.25
    assert float(losses["loss_giou"]) == pytest.approx(0.75, rel=1e-6)
    # argmax: query 0 object, query 1 no-object -> 1 predicted vs 1 target
    assert float(losses["cardinality_error"]) == 0.0
    assert set(losses) == {"loss_ce", "loss_bbox", "loss_giou", "cardinality_error"}


def _reference(out, targets, num_classes, eos_coef, matcher):
    """DETR's published formulas, written out per query."""
    indices = matcher(out, targets)
    logits, boxes = out["pred_logits"], out["pred_boxes"]
    num = 0.0
    den = 0.0
    l1 = 0.0
    giou_sum = 0.0
    n_boxes = max(1, sum(len(t["labels"]) for t in targets))
    card = 0.0
    for i, (src, tgt) in enumerate(indices):
        match = dict(zip(src.tolist(), tgt.tolist(), strict=True))
        for q in range(logits.shape[1]):
            cls = int(targets[i]["labels"][match[q]]) if q in match else num_classes
            w = 1.0 if cls < num_classes else eos_coef
            num += -w * _logsoftmax(logits[i, q].tolist())[cls]
            den += w
            if q in match:
                p = boxes[i, q].tolist()
                g = targets[i]["boxes"][match[q]].tolist()
                l1 += sum(abs(a - b) for a, b in zip(p, g, strict=True))
                pa = [p[0] - p[2] / 2, p[1] - p[3] / 2, p[0] + p[2] / 2, p[1] + p[3] / 2]
                ga = [g[0] - g[2] / 2, g[1] - g[3] / 2, g[0] + g[2] / 2, g[1] + g[3] / 2]
                inter = (max(0, min(pa[2], ga[2]) - max(pa[0], ga[0]))
                         * max(0, min(pa[3], ga[3]) - max(pa[1], ga[1])))
                union = p[2] * p[3] + g[2] * g[3] - inter
                enc = (max(pa[2], ga[2]) - min(pa[0], ga[0])) * (max(pa[3], ga[3]) - min(pa[1], ga[1]))
                giou_sum += 1 - (inter / union - (enc - union) / enc)
        n_pred = int((logits[i].argmax(-1) != num_classes).sum())
        card += abs(n_pred - len(targets[i]["labels"]))
    return {"loss_ce": num / den, "loss_bbox": l1 / n_boxes, "loss_giou": giou_sum / n_boxes,
            "cardinality_error": card / len(targets)}


def _random(gen, b=3, q=6, c=3, sizes=(2, 0, 4)):
    out = {"pred_logits": torch.randn(b, q, c + 1, generator=gen),
           "pred_boxes": torch.rand(b, q, 4, generator=gen) * 0.4 + 0.1}
    targets = [{"labels": torch.randint(0, c, (n,), generator=gen),
                "boxes": torch.rand(n, 4, generator=gen) * 0.4 + 0.1} for n in sizes]
    return out, targets


def test_matches_written_out_detr_formulas_with_aux_layers():
    gen = torch.Generator().manual_seed(0)
    out, targets = _random(gen)
    aux, _ = _random(gen)
    out["aux_outputs"] = [aux]
    matcher = HungarianMatcher(1.0, 5.0, 2.0)
    losses = SetCriterion(3, matcher, eos_coef=0.1)(out, targets)
    ref = _reference(out, targets, 3, 0.1, matcher)
    ref_aux = _reference(aux, targets, 3, 0.1, matcher)
    for k, v in ref.items():
        assert float(losses[k]) == pytest.approx(v, rel=1e-5), k
        assert float(losses[f"{k}_0"]) == pytest.approx(ref_aux[k], rel=1e-5), k


def test_zero_target_images_give_zero_box_losses():
    gen = torch.Generator().manual_seed(1)
    out, targets = _random(gen, b=2, sizes=(0, 0))
    out["pred_logits"].requires_grad_(True)
    out["pred_boxes"].requires_grad_(True)
    losses = SetCriterion(3)(out, targets)
    assert float(losses["loss_bbox"].detach()) == 0.0 and float(losses["loss_giou"].detach()) == 0.0
    ref = torch.nn.functional.cross_entropy(out["pred_logits"].flatten(0, 1), torch.full((12,), 3))
    assert float(losses["loss_ce"].detach()) == pytest.approx(float(ref.detach()), rel=1e-6)  # plain mean
    losses["loss_ce"].backward()
    assert out["pred_logits"].grad.abs().sum() > 0


def test_focal_option_uses_softmax_focal_loss_with_no_object_as_background():
    out = _outputs([[[2.0, 0.0, 0.5], [0.5, 0.2, 1.5]]], [[[0.5, 0.5, 0.2, 0.2], [0.9, 0.1, 0.1, 0.1]]])
    targets = [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])}]
    losses = SetCriterion(2, cls_loss="focal", focal_alpha=0.25)(out, targets)
    # query 0 -> class 1, query 1 -> no-object (the last class, as the focal loss's background)
    logits = torch.tensor([[2.0, 0.0, 0.5], [0.5, 0.2, 1.5]])
    ref = softmax_focal_loss(logits, torch.tensor([1, 2]), 2.0, 0.25) / 1.0
    assert float(losses["loss_ce"]) == pytest.approx(float(ref), rel=1e-6)
    p = math.exp(_logsoftmax([2.0, 0.0, 0.5])[1])
    q = math.exp(_logsoftmax([0.5, 0.2, 1.5])[2])
    by_hand = -0.25 * (1 - p) ** 2 * math.log(p) - 0.75 * (1 - q) ** 2 * math.log(q)
    assert float(losses["loss_ce"]) == pytest.approx(by_hand, rel=1e-5)


def test_slot_metrics_hand_case():
    # C = 1; q0 matched & object, q1 matched & no-object, q2 unmatched & object, q3 unmatched & none
    logits = torch.tensor([[[3.0, 0.0], [0.0, 3.0], [3.0, 0.0], [0.0, 3.0]]])
    targets = [{"labels": torch.tensor([0, 0]), "boxes": torch.rand(2, 4)}]
    indices = [(torch.tensor([0, 1]), torch.tensor([1, 0]))]
    m = slot_metrics({"pred_logits": logits}, targets, indices)
    assert float(m["slot_recall"]) == 0.5  # one of two targets' queries predicts an object
    assert float(m["slot_precision"]) == 0.5  # q0 of {q0, q2}
    assert float(m["slot_tnr"]) == 0.5  # q3 of {q2, q3}
    assert float(m["slot_class_acc"]) == 0.5  # q0 right, q1 says no-object
    empty = slot_metrics({"pred_logits": logits}, [{"labels": torch.zeros(0, dtype=torch.int64),
                                                    "boxes": torch.zeros(0, 4)}],
                         [(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))])
    assert float(empty["slot_recall"]) == 0.0 and float(empty["slot_tnr"]) == 0.5


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown losses"):
        SetCriterion(2, losses=("labels", "masks"))
    with pytest.raises(ValueError, match="cls_loss"):
        SetCriterion(2, cls_loss="bce")
    with pytest.raises(ValueError, match="eos_coef"):
        SetCriterion(2, eos_coef=0.0)
    with pytest.raises(ValueError, match="pred_boxes"):
        SetCriterion(2)({"pred_logits": torch.zeros(1, 2, 3)}, [])
