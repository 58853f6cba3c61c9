import math

import pytest
import torch

from evdet.models import BACKBONES, build_backbone

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name,strides", [("Vanilla", [8, 16, 32, 64, 128]),
                                          ("Vanilla_VGG", [16, 32, 64, 128, 256]),
                                          ("Vanilla_VGGRU", [16, 32, 64, 128, 256])])
def test_levels_report_channels_strides_and_shapes(name, strides):
    net = BACKBONES[name](3, base=4, cout=8)
    assert net.strides == strides
    assert net.channels == [8] * 5
    h, w = 60, 76  # not multiples of the strides
    outs = net(torch.randn(2, 1, 3, h, w))
    assert len(outs) == 5
    for out, c, s in zip(outs, net.channels, net.strides, strict=True):
        assert out.shape == (2, 1, c, math.ceil(h / s), math.ceil(w / s))


def test_base_and_cout_change_widths():
    net = build_backbone("Vanilla", 2, base=2, cout=6)
    small = sum(p.numel() for p in net.parameters())
    big = sum(p.numel() for p in build_backbone("Vanilla", 2, base=4, cout=6).parameters())
    assert big > small
    assert net(torch.randn(1, 1, 2, 32, 32))[0].shape[2] == 6


def test_unknown_name_and_wrong_channels():
    with pytest.raises(ValueError, match="Vanilla_VGGRU"):
        build_backbone("ResNet", 2)
    with pytest.raises(ValueError, match="expected Tensor"):
        build_backbone("Vanilla", 2, 2, 4)(torch.randn(1, 1, 3, 32, 32))


def test_reset_propagates_to_every_level():
    net = build_backbone("Vanilla_VGGRU", 2, 2, 4)
    net(torch.randn(1, 2, 2, 32, 32))
    assert all(level.prev_h is not None for level in net.levels)
    net.reset(torch.tensor([0.0, 1.0]))
    assert all(level.prev_h[0].abs().sum() == 0 and level.prev_h[1].abs().sum() > 0 for level in net.levels)
    net.reset_all()
    assert all(level.prev_h is None for level in net.levels)
