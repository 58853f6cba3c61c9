import numpy as np
import pytest
import torch

from evdet.ops import (
    box_area,
    box_convert,
    box_cxcywh_to_xyxy,
    box_iou,
    box_xywh_to_xyxy,
    box_xyxy_to_cxcywh,
    box_xyxy_to_xywh,
    clip_boxes_to_image,
    generalized_box_iou,
    remove_small_boxes,
)


def _random_boxes(rng, n, size=100.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, size / 2, (n, 2))
    return torch.tensor(np.concatenate([xy, xy + wh], 1), dtype=torch.float64)


def test_conversions_hand_computed():
    b = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    assert box_xyxy_to_cxcywh(b).tolist() == [[20.0, 40.0, 20.0, 40.0]]
    assert box_xyxy_to_xywh(b).tolist() == [[10.0, 20.0, 20.0, 40.0]]
    assert box_cxcywh_to_xyxy(torch.tensor([[20.0, 40.0, 20.0, 40.0]])).tolist() == b.tolist()
    assert box_xywh_to_xyxy(torch.tensor([[10.0, 20.0, 20.0, 40.0]])).tolist() == b.tolist()
    assert box_area(b).tolist() == [800.0]


def test_conversion_round_trips_and_leading_dims(rng):
    b = _random_boxes(rng, 24).view(2, 3, 4, 4)
    for fmt in ("cxcywh", "xywh"):
        back = box_convert(box_convert(b, "xyxy", fmt), fmt, "xyxy")
        assert back.shape == b.shape
        torch.testing.assert_close(back, b)
    with pytest.raises(ValueError, match="formats"):
        box_convert(b, "xyxy", "yxyx")
    with pytest.raises(ValueError, match="shape"):
        box_area(torch.zeros(3, 5))


def test_box_iou_against_numpy_reference(rng):
    a, b = _random_boxes(rng, 7), _random_boxes(rng, 9)
    ref = np.zeros((7, 9))
    for i, p in enumerate(a.numpy()):
        for j, q in enumerate(b.numpy()):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = iw * ih
            ua = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            ref[i, j] = inter / ua
    np.testing.assert_allclose(box_iou(a, b).numpy(), ref, rtol=1e-12)
    # hand-computed: half overlap
    iou = box_iou(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[5.0, 0, 15, 10]]))
    assert iou.item() == pytest.approx(50 / 150)


def test_giou_identical_disjoint_nested():
    a = torch.tensor([[0.0, 0, 10, 10]])
    assert generalized_box_iou(a, a).item() == pytest.approx(1.0)
    # disjoint: iou 0, union 200, hull 0..30 x 0..10 = 300 -> -(100/300)
    far = torch.tensor([[20.0, 0, 30, 10]])
    assert generalized_box_iou(a, far).item() == pytest.approx(-1 / 3)
    # nested: hull = outer box -> giou = iou = 25/100
    inner = torch.tensor([[2.0, 2, 7, 7]])
    assert generalized_box_iou(a, inner).item() == pytest.approx(0.25)
    # very far apart tends to -1
    assert generalized_box_iou(a, torch.tensor([[1e6, 1e6, 1e6 + 10, 1e6 + 10]])).item() < -0.99
    with pytest.raises(ValueError, match="boxes2 box"):
        generalized_box_iou(a, torch.tensor([[5.0, 5, 1, 8]]))


def test_clip_and_remove_small_do_not_mutate():
    b = torch.tensor([[-5.0, -2, 50, 20], [10, 10, 11, 30], [0, 0, 4, 4]])
    before = b.clone()
    c = clip_boxes_to_image(b, (15, 40))
    assert c.tolist() == [[0, 0, 40, 15], [10, 10, 11, 15], [0, 0, 4, 4]]
    assert remove_small_boxes(b, 2.0).tolist() == [0, 2]
    assert torch.equal(b, before)
