import math

import pytest
import torch

from evdet.ops import decode_boxes, encode_boxes


def test_encode_hand_computed():
    anchor = torch.tensor([[0.0, 0, 20, 40]])  # centre (10, 20), size (20, 40)
    box = torch.tensor([[2.0, 4, 22, 84]])  # centre (12, 44), size (20, 80)
    d = encode_boxes(box, anchor)[0]
    assert d[0].item() == pytest.approx(2 / 20 / 0.1)
    assert d[1].item() == pytest.approx(24 / 40 / 0.1)
    assert d[2].item() == pytest.approx(0.0)
    assert d[3].item() == pytest.approx(math.log(2) / 0.2)


def test_round_trip_broadcast(rng):
    xy = torch.tensor(rng.uniform(0, 100, (3, 5, 2)), dtype=torch.float64)
    boxes = torch.cat([xy, xy + torch.tensor(rng.uniform(2, 50, (3, 5, 2)))], -1)
    anchors = torch.tensor([[10.0, 10, 42, 42]] * 5, dtype=torch.float64)  # [5, 4] broadcast over 3
    back = decode_boxes(encode_boxes(boxes, anchors), anchors)
    torch.testing.assert_close(back, boxes)


def test_decode_huge_deltas_stay_finite():
    out = decode_boxes(torch.tensor([[0.0, 0, 1e4, 1e4]]), torch.tensor([[0.0, 0, 10, 10]]))
    assert torch.isfinite(out).all()
