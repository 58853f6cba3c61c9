"""evdet.models.hybrid_encoder: positional encoding, the AIFI layer, CCFM shapes."""

import math

import pytest
import torch
from torch import nn

from evdet.models.hybrid_encoder import CSPRepLayer, EncoderLayer, HybridEncoder, sincos_position_encoding

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")]


def test_sincos_encoding_is_row_major_and_hand_computed():
    pos = sincos_position_encoding(2, 3, 4)  # dim 4: one frequency, omega = 1
    assert pos.shape == (1, 6, 4)
    y, x = 1, 2  # token 5 = (y 1, x 2) in a row-major 2 x 3 grid
    torch.testing.assert_close(pos[0, 5], torch.tensor([math.sin(x), math.cos(x), math.sin(y), math.cos(y)]))
    torch.testing.assert_close(pos[0, 2], torch.tensor([math.sin(2), math.cos(2), 0.0, 1.0]))
    wide = sincos_position_encoding(1, 2, 8, temperature=100.0)  # omega_k = 100^(-k/2): 1, 0.1
    expected = torch.tensor([math.sin(1), math.sin(0.1), math.cos(1), math.cos(0.1), 0, 0, 1, 1])
    torch.testing.assert_close(wide[0, 1], expected)
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_position_encoding(2, 2, 6)


def test_encoder_layer_is_torchs_post_norm_gelu_layer():
    torch.manual_seed(0)
    mine = EncoderLayer(16, 4, 32, 0.0).eval()
    ref = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation="gelu", batch_first=True).eval()
    ref.load_state_dict({k: v for k, v in mine.state_dict().items()})
    src, pos = torch.randn(2, 7, 16), torch.randn(1, 7, 16)
    torch.testing.assert_close(mine(src, torch.zeros_like(pos)), ref(src))
    # positions enter queries and keys only: the values are the un-positioned tokens
    q = src + pos
    attn = mine.self_attn(q, q, src, need_weights=False)[0]
    x = mine.norm1(src + attn)
    ff = mine.linear2(nn.functional.gelu(mine.linear1(x)))
    torch.testing.assert_close(mine(src, pos), mine.norm2(x + ff))


def test_levels_keep_their_sizes_also_when_not_halves():
    torch.manual_seed(0)
    enc = HybridEncoder([8, 16, 32], hidden_dim=16, nheads=2, dim_feedforward=32, depth_mult=0.34).eval()
    feats = [torch.randn(2, 8, 30, 38), torch.randn(2, 16, 15, 19), torch.randn(2, 32, 8, 10)]
    out = enc(feats)
    assert [tuple(o.shape) for o in out] == [(2, 16, 30, 38), (2, 16, 15, 19), (2, 16, 8, 10)]
    scripted = torch.jit.script(enc)
    for a, b in zip(scripted(feats), out, strict=True):
        torch.testing.assert_close(a, b)


def test_aifi_sees_only_the_coarsest_level():
    torch.manual_seed(0)
    enc = HybridEncoder([8, 8, 8], hidden_dim=16, nheads=2, dim_feedforward=32, depth_mult=0.34).eval()
    feats = [torch.randn(1, 8, 8, 8), torch.randn(1, 8, 4, 4), torch.randn(1, 8, 2, 2)]
    seen = []
    enc.encoder[0].register_forward_hook(lambda mod, args, out: seen.append(args[0].shape))
    enc(feats)
    assert seen == [torch.Size([1, 4, 16])]  # the 2 x 2 level's 4 tokens


def test_csp_rep_layer_identity_conv3_and_bad_sizes():
    assert isinstance(CSPRepLayer(8, 4, 1, expansion=1.0).conv3, nn.Identity)
    assert not isinstance(CSPRepLayer(8, 4, 1, expansion=0.5).conv3, nn.Identity)
    with pytest.raises(ValueError, match="three positive"):
        HybridEncoder([8, 16])
    with pytest.raises(ValueError, match="multiple of 4"):
        HybridEncoder([8, 8, 8], hidden_dim=18, nheads=2)
