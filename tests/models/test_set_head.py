import math

import pytest
import torch

from evdet.models import SetTransformer, sine_position_encoding

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")]


def test_sine_position_encoding_values():
    pe = sine_position_encoding(3, 4, 8, torch.device("cpu"))
    assert pe.shape == (12, 8)
    # y part (first 4 features) of cell (i=1, j=2): y = 2/3·2π; sin(y), cos(y), sin(y/100), cos(y/100)
    y = 2 / 3 * 2 * math.pi
    torch.testing.assert_close(pe[1 * 4 + 2, :4], torch.tensor([math.sin(y), math.cos(y), math.sin(y / 100),
                                                                math.cos(y / 100)]), atol=1e-5, rtol=0)
    x = 3 / 4 * 2 * math.pi
    torch.testing.assert_close(pe[1 * 4 + 2, 4:], torch.tensor([math.sin(x), math.cos(x), math.sin(x / 100),
                                                                math.cos(x / 100)]), atol=1e-5, rtol=0)
    # cells of one row share the y part, cells of one column the x part
    assert torch.equal(pe[4, :4], pe[7, :4]) and torch.equal(pe[1, 4:], pe[9, 4:])
    with pytest.raises(ValueError, match="multiple of 4"):
        sine_position_encoding(2, 2, 6, torch.device("cpu"))


def _head(**kw):
    torch.manual_seed(0)
    args = dict(num_queries=5, dec_layers=3, hidden_dim=16, nheads=2, dim_feedforward=32, dropout=0.0)
    args.update(kw)
    return SetTransformer([8, 8, 6], num_classes=3, **args)


def _feats(n=2):
    return [torch.randn(n, 8, 4, 5), torch.randn(n, 8, 2, 3), torch.randn(n, 6, 1, 1)]


def test_shapes_ranges_and_memory():
    head = _head()
    logits, boxes = head(_feats())
    assert logits.shape == (3, 2, 5, 4) and boxes.shape == (3, 2, 5, 4)
    assert (boxes > 0).all() and (boxes < 1).all()
    mem, pos = head.memory(_feats())
    assert mem.shape == (2, 20 + 6 + 1, 16) and pos.shape == (1, 27, 16)
    with pytest.raises(ValueError, match="expected 3 feature levels"):
        head(_feats()[:2])
    with pytest.raises(ValueError, match="multiple of 4 and of nheads"):
        _head(hidden_dim=18)


def test_every_parameter_gets_a_gradient_from_final_and_aux_outputs():
    head = _head()
    logits, boxes = head(_feats())
    (logits.square().sum() + boxes.sum()).backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_frames_are_independent_and_script_matches():
    head = _head().eval()
    f = _feats(3)
    with torch.no_grad():
        logits, boxes = head(f)
        one = head([x[1:2] for x in f])
        torch.testing.assert_close(one[0][:, 0], logits[:, 1], atol=1e-5, rtol=1e-5)
        scripted = torch.jit.script(head)
        s_logits, s_boxes = scripted(f)
    torch.testing.assert_close(s_logits, logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(s_boxes, boxes, atol=1e-5, rtol=0)
