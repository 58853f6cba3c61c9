"""evdet.models.denoising: RT-DETR's contrastive denoising groups, hand-computed."""

import math

import torch

from evdet.models.denoising import denoising_attn_mask, denoising_groups, inverse_sigmoid
from evdet.ops import box_cxcywh_to_xyxy


def _two_images():
    labels = [torch.tensor([0, 1]), torch.tensor([2])]
    boxes = [torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.3, 0.6, 0.1, 0.2]]), torch.tensor([[0.4, 0.4, 0.3, 0.3]])]
    return labels, boxes


def test_groups_without_noise_hand_computed():
    labels, boxes = _two_images()
    g = denoising_groups(labels, boxes, num_classes=3, num_queries=2, num_denoising=4, label_noise_ratio=0.0,
                         box_noise_scale=0.0)
    # max_gt = 2 -> G = 4 // 2 = 2 groups of 2·2 queries (m positives, m negatives)
    assert g.num_groups == 2 and g.num_denoising == 8
    assert g.labels.tolist() == [[0, 1, 0, 1, 0, 1, 0, 1], [2, 3, 2, 3, 2, 3, 2, 3]]  # 3 = padding class C
    assert [p.tolist() for p in g.positive_idx] == [[0, 1, 4, 5], [0, 4]]
    (q0, t0), (q1, t1) = g.matched_indices()
    assert q0.tolist() == [0, 1, 4, 5] and t0.tolist() == [0, 1, 0, 1]
    assert q1.tolist() == [0, 4] and t1.tolist() == [0, 0]
    torch.testing.assert_close(g.boxes_unact[0, 1], inverse_sigmoid(boxes[0][1]))
    torch.testing.assert_close(g.boxes_unact[0, 6], inverse_sigmoid(boxes[0][0]))  # group 1, negative copy
    assert torch.allclose(g.boxes_unact[1, 1], torch.full((4,), math.log(1e-5)))  # padded slot: zero box


def test_attention_mask_hand_written():
    blocked = denoising_attn_mask(max_gt=2, num_groups=2, num_queries=2, device=torch.device("cpu"))
    expected = torch.zeros(10, 10, dtype=torch.bool)
    expected[0:4, 4:8] = True  # group 0 does not see group 1
    expected[4:8, 0:4] = True  # group 1 does not see group 0
    expected[8:, :8] = True  # matching queries see no denoising query
    assert torch.equal(blocked, expected)  # denoising queries see the matching ones (columns 8, 9 open)


def test_box_noise_positives_inside_half_size_negatives_beyond():
    torch.manual_seed(0)
    labels = [torch.zeros(1, dtype=torch.int64)]
    box = torch.tensor([[0.5, 0.5, 0.2, 0.4]])  # xyxy 0.4 0.3 0.6 0.7: far from the borders, no clipping
    g = denoising_groups(labels, [box], 1, 5, num_denoising=200, label_noise_ratio=0.0, box_noise_scale=1.0)
    assert g.num_groups == 200 and g.num_denoising == 400
    noised = g.boxes_unact[0].sigmoid()  # [400, 4] cxcywh
    moved = (box_cxcywh_to_xyxy(noised) - box_cxcywh_to_xyxy(box)).abs()
    half = torch.tensor([0.1, 0.2, 0.1, 0.2])  # w/2, h/2 per corner coordinate
    # a negative whose corners crossed (x1' > x2') has no valid cxcywh: its width is clipped to 0; compare
    # the others, whose round trip through cxcywh is exact
    ok = (noised[:, 2:] > 1e-4).all(1)
    pos, neg = moved[0::2][ok[0::2]], moved[1::2][ok[1::2]]  # groups of (1 positive, 1 negative)
    assert pos.shape[0] == 200 and neg.shape[0] > 50
    assert bool((pos < half + 1e-5).all()) and bool((neg >= half - 1e-5).all())
    assert bool((neg < 2 * half + 1e-5).all())
    assert float(pos.mean()) > 0.3 * float(half.mean())  # the noise is real


def test_label_noise_only_on_real_slots_at_half_the_ratio():
    torch.manual_seed(1)
    labels = [torch.zeros(50, dtype=torch.int64), torch.zeros(1, dtype=torch.int64)]
    boxes = [torch.full((50, 4), 0.3), torch.full((1, 4), 0.3)]
    g = denoising_groups(labels, boxes, num_classes=4, num_queries=3, num_denoising=100,
                         label_noise_ratio=1.0, box_noise_scale=0.0)
    real = g.labels[0]
    changed = float((real != 0).float().mean())  # p(replace) = 0.5, and a replacement is class 0 w.p. 1/4
    assert 0.3 < changed < 0.45
    assert bool((g.labels[1].view(2 * g.num_groups, 50)[:, 1:] == 4).all())  # padding stays C


def test_nothing_without_ground_truth_or_budget():
    assert denoising_groups([torch.zeros(0, dtype=torch.int64)], [torch.zeros(0, 4)], 2, 5) is None
    labels, boxes = _two_images()
    assert denoising_groups(labels, boxes, 3, 5, num_denoising=0) is None
    g = denoising_groups(labels, boxes, 3, 5, num_denoising=1)  # fewer than max_gt: still one group
    assert g.num_groups == 1 and g.num_denoising == 4


def test_inverse_sigmoid_round_trip_and_clipping():
    x = torch.tensor([0.1, 0.5, 0.9])
    torch.testing.assert_close(inverse_sigmoid(x).sigmoid(), x)
    assert inverse_sigmoid(torch.tensor([0.0]))[0] == math.log(1e-5)
    assert inverse_sigmoid(torch.tensor([2.0]))[0] == -math.log(1e-5)  # clipped to 1
