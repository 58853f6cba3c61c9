import pytest
import torch

from evdet.models import BoxHead


def test_shapes_and_background_prior():
    head = BoxHead(8, num_anchors=6, num_classes=3, num_layers=2)
    feats = [torch.randn(2, 8, 5, 7), torch.randn(2, 8, 3, 4)]
    loc, cls = head(feats)
    n_anchors = (35 + 12) * 6
    assert loc.shape == (2, n_anchors, 4)
    assert cls.shape == (2, n_anchors, 4)
    p_bg = torch.softmax(cls, -1)[..., -1]  # background last
    torch.testing.assert_close(p_bg, torch.full_like(p_bg, 0.99), atol=2e-3, rtol=0)
    # exactly 0.99 from the bias alone
    bias = head.cls_pred.bias.view(6, 4)
    torch.testing.assert_close(torch.softmax(bias, -1)[:, -1], torch.full((6,), 0.99))


def test_layout_matches_anchor_order():
    # the logit of anchor a at cell (i, j) is channel a*(C+1)+k of the conv output at (i, j)
    head = BoxHead(4, num_anchors=2, num_classes=1, num_layers=0)
    f = torch.randn(1, 4, 3, 5)
    _, cls = head([f])
    raw = head.cls_pred(f)  # [1, 2*2, 3, 5]
    i, j, a, k = 2, 3, 1, 1
    assert cls[0, (i * 5 + j) * 2 + a, k] == raw[0, a * 2 + k, i, j]


def test_bad_prior():
    with pytest.raises(ValueError, match="background_prior"):
        BoxHead(4, 2, 1, background_prior=1.0)
