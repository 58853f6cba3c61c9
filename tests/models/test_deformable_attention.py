import math
import warnings

import pytest
import torch

from evdet.models.deformable_attention import MSDeformableAttention, ms_deformable_attention

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:`torch.jit.[a-z]+` is deprecated:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.onnx"),
              pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")]

SHAPES = [(4, 6), (3, 2), (1, 5)]  # (h_l, w_l) per level
S = sum(h * w for h, w in SHAPES)


def _bilinear(value_map, x, y):
    """Sample ``value_map [h, w, C]`` at normalised (x, y), pixel centres at (j + 0.5)/w, zeros outside."""
    h, w = value_map.shape[0], value_map.shape[1]
    px, py = x * w - 0.5, y * h - 0.5
    j0, i0 = math.floor(px), math.floor(py)
    fx, fy = px - j0, py - i0
    out = torch.zeros(value_map.shape[2], dtype=value_map.dtype)
    for i, j, wt in ((i0, j0, (1 - fx) * (1 - fy)), (i0, j0 + 1, fx * (1 - fy)),
                     (i0 + 1, j0, (1 - fx) * fy), (i0 + 1, j0 + 1, fx * fy)):
        if 0 <= i < h and 0 <= j < w:
            out += wt * value_map[i, j]
    return out


def _dense_reference(value, shapes, locations, weights):
    """Plain loops over batch, queries, heads, levels and points: ``Tensor[N, Q, H*Dh]``."""
    n, _, nh, dh = value.shape
    q, nl, npt = locations.shape[1], locations.shape[3], locations.shape[4]
    starts = [0]
    for h, w in shapes:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(n, q, nh * dh, dtype=value.dtype)
    for b in range(n):
        for k in range(q):
            for hd in range(nh):
                for lv in range(nl):
                    h, w = shapes[lv]
                    vmap = value[b, starts[lv]:starts[lv + 1], hd].reshape(h, w, dh)
                    for p in range(npt):
                        x, y = locations[b, k, hd, lv, p].tolist()
                        out[b, k, hd * dh:(hd + 1) * dh] += weights[b, k, hd, lv, p] * _bilinear(vmap, x, y)
    return out


def _pixel_centre_locations(gen, n, q, nh, shapes, npt):
    """Random pixel centres per (n, q, head, level, point) and the (i, j) picked."""
    loc = torch.empty(n, q, nh, len(shapes), npt, 2, dtype=torch.float64)
    for lv, (h, w) in enumerate(shapes):
        j = torch.randint(0, w, (n, q, nh, npt), generator=gen, dtype=torch.float64)
        i = torch.randint(0, h, (n, q, nh, npt), generator=gen, dtype=torch.float64)
        loc[:, :, :, lv, :, 0] = (j + 0.5) / w
        loc[:, :, :, lv, :, 1] = (i + 0.5) / h
    return loc


def test_core_matches_dense_reference_at_pixel_centres():
    gen = torch.Generator().manual_seed(0)
    n, q, nh, dh, npt = 2, 3, 2, 4, 3
    value = torch.randn(n, S, nh, dh, generator=gen, dtype=torch.float64)
    loc = _pixel_centre_locations(gen, n, q, nh, SHAPES, npt)
    weights = torch.rand(n, q, nh, len(SHAPES), npt, generator=gen, dtype=torch.float64)
    got = ms_deformable_attention(value, SHAPES, loc, weights)
    assert got.shape == (n, q, nh * dh)
    torch.testing.assert_close(got, _dense_reference(value, SHAPES, loc, weights), rtol=1e-10, atol=1e-10)
    # at pixel centres bilinear sampling is picking: check one term by index alone
    one = torch.zeros_like(weights)
    one[1, 2, 1, 0, 2] = 1.0
    x, y = loc[1, 2, 1, 0, 2].tolist()
    i, j = int(y * 4), int(x * 6)
    torch.testing.assert_close(ms_deformable_attention(value, SHAPES, loc, one)[1, 2, dh:],
                               value[1, i * 6 + j, 1], rtol=0, atol=1e-12)


def test_core_matches_dense_reference_anywhere():
    # random locations, some outside [0, 1]: bilinear weights and zero padding in the loop reference
    gen = torch.Generator().manual_seed(1)
    n, q, nh, dh, npt = 2, 4, 3, 2, 2
    value = torch.randn(n, S, nh, dh, generator=gen, dtype=torch.float64)
    loc = torch.rand(n, q, nh, len(SHAPES), npt, 2, generator=gen, dtype=torch.float64) * 1.4 - 0.2
    weights = torch.rand(n, q, nh, len(SHAPES), npt, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(ms_deformable_attention(value, SHAPES, loc, weights),
                               _dense_reference(value, SHAPES, loc, weights), rtol=1e-10, atol=1e-10)


def test_core_hand_computed_bilinear_and_outside():
    shapes = [(2, 2)]
    value = torch.tensor([1.0, 3.0, 5.0, 11.0]).reshape(1, 4, 1, 1)  # row-major [[1, 3], [5, 11]]
    # x = 0.5 lies half way between the centres 0.25 and 0.75 of row 0 → (1 + 3) / 2
    # (0.5, 0.5): the mean of all four; x = 1.5 is outside the map → 0
    loc = torch.tensor([[0.5, 0.25], [0.5, 0.5], [1.5, 0.25], [-0.5, -0.5]]).reshape(1, 4, 1, 1, 1, 2)
    weights = torch.full((1, 4, 1, 1, 1), 2.0)
    got = ms_deformable_attention(value, shapes, loc, weights).flatten()
    torch.testing.assert_close(got, torch.tensor([4.0, 10.0, 0.0, 0.0]))
    # at the right edge x = 1.0 (a quarter pixel past the last centre): half the pixel, half padding zeros
    edge = torch.tensor([1.0, 0.25]).reshape(1, 1, 1, 1, 1, 2)
    got = ms_deformable_attention(value, shapes, edge, torch.ones(1, 1, 1, 1, 1)).flatten()
    torch.testing.assert_close(got, torch.tensor([1.5]))


def test_core_rejects_inconsistent_shapes():
    value = torch.zeros(1, S, 2, 4)
    loc = torch.zeros(1, 3, 2, len(SHAPES), 2, 2)
    with pytest.raises(ValueError, match=f"value has {S - 1} tokens"):
        ms_deformable_attention(value[:, 1:], SHAPES, loc, torch.zeros(1, 3, 2, len(SHAPES), 2))
    with pytest.raises(ValueError, match="attention_weights"):
        ms_deformable_attention(value, SHAPES, loc, torch.zeros(1, 3, 2, len(SHAPES), 3))


def test_grid_init_directions():
    m = MSDeformableAttention(embed_dim=16, num_heads=8, num_levels=2, num_points=3)
    bias = m.sampling_offsets.bias.detach().reshape(8, 2, 3, 2)  # [H, L, P, (x, y)]
    p = torch.arange(1, 4, dtype=torch.float32)[:, None]
    expected = {0: (1.0, 0.0), 1: (1.0, 1.0), 2: (0.0, 1.0), 3: (-1.0, 1.0), 4: (-1.0, 0.0), 6: (0.0, -1.0)}
    for head, direction in expected.items():
        for level in range(2):
            torch.testing.assert_close(bias[head, level], torch.tensor(direction) * p, atol=1e-6, rtol=0)
    assert torch.all(m.sampling_offsets.weight == 0)
    assert torch.all(m.attention_weights.weight == 0) and torch.all(m.attention_weights.bias == 0)
    assert torch.all(m.value_proj.bias == 0) and torch.all(m.output_proj.bias == 0)
    assert m.value_proj.weight.abs().sum() > 0
    # with zero weights every query gets the bias as offsets: points at ref + bias / (w_l, h_l)
    query = torch.randn(2, 5, 16)
    ref = torch.rand(2, 5, 1, 2)
    loc = m.sampling_locations(query, ref, [(4, 8), (2, 4)])
    offsets = (loc - ref[:, :, None, :, None, :]) * torch.tensor([[8.0, 4.0], [4.0, 2.0]])[:, None, :]
    torch.testing.assert_close(offsets, bias.expand(2, 5, 8, 2, 3, 2), atol=1e-5, rtol=0)


def test_sampling_locations_points_and_boxes():
    m = MSDeformableAttention(embed_dim=16, num_heads=8, num_levels=2, num_points=2)
    query = torch.randn(1, 1, 16)
    shapes = [(4, 8), (2, 4)]
    # 2-d: offsets in pixels of each level. Head 0, point 1: offset (2, 0) → x + 2/8 on level 0, + 2/4 on 1
    loc = m.sampling_locations(query, torch.tensor([0.5, 0.25]).reshape(1, 1, 1, 2), shapes)
    assert loc.shape == (1, 1, 8, 2, 2, 2)
    torch.testing.assert_close(loc[0, 0, 0, 0, 1], torch.tensor([0.75, 0.25]))
    torch.testing.assert_close(loc[0, 0, 0, 1, 1], torch.tensor([1.0, 0.25]))
    # head 2, point 0: offset (0, 1) → y + 1/h_l
    torch.testing.assert_close(loc[0, 0, 2, 1, 0], torch.tensor([0.5, 0.75]), atol=1e-6, rtol=0)
    # 4-d box (cx, cy, w, h): ref + offset / P · (w, h) / 2, the same on every level
    box = torch.tensor([0.5, 0.25, 0.2, 0.4]).reshape(1, 1, 1, 4)
    loc = m.sampling_locations(query, box, shapes)
    torch.testing.assert_close(loc[0, 0, 0, 0, 1], torch.tensor([0.6, 0.25]))  # 0.5 + 2/2·0.2·0.5
    torch.testing.assert_close(loc[0, 0, 0, 1, 1], torch.tensor([0.6, 0.25]))
    # head 2, point 0: y + 1/2·0.4·0.5
    torch.testing.assert_close(loc[0, 0, 2, 0, 0], torch.tensor([0.5, 0.35]), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="reference_points must be"):
        m.sampling_locations(query, torch.zeros(1, 1, 1, 3), shapes)
    with pytest.raises(ValueError, match="2 levels expected"):
        m.sampling_locations(query, box, shapes[:1])


def _module(seed=0):
    torch.manual_seed(seed)
    m = MSDeformableAttention(embed_dim=12, num_heads=3, num_levels=len(SHAPES), num_points=2)
    with torch.no_grad():  # move every layer away from its special init so that each one matters
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return m


def test_forward_matches_dense_reference():
    m = _module().double()
    n, q = 2, 4
    query = torch.randn(n, q, 12, dtype=torch.float64)
    ref = torch.rand(n, q, 1, 4, dtype=torch.float64) * 0.5 + 0.25
    value = torch.randn(n, S, 12, dtype=torch.float64)
    got = m(query, ref, value, SHAPES)
    assert got.shape == (n, q, 12)
    with torch.no_grad():  # rebuild from the layers and the loop reference
        offsets = m.sampling_offsets(query).reshape(n, q, 3, len(SHAPES), 2, 2)
        loc = ref[:, :, None, :, None, :2] + offsets / 2 * ref[:, :, None, :, None, 2:] / 2
        weights = m.attention_weights(query).reshape(n, q, 3, -1).softmax(-1).reshape(n, q, 3, len(SHAPES), 2)
        v = m.value_proj(value).reshape(n, S, 3, 4)
        expected = m.output_proj(_dense_reference(v, SHAPES, loc, weights))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    # batched == per item
    torch.testing.assert_close(got[1:], m(query[1:], ref[1:], value[1:], SHAPES), rtol=1e-12, atol=1e-12)


def test_value_mask_removes_masked_tokens():
    m = _module()
    query, ref = torch.randn(2, 3, 12), torch.rand(2, 3, 1, 2)
    value = torch.randn(2, S, 12)
    mask = torch.rand(2, S) > 0.4
    out = m(query, ref, value, SHAPES, mask)
    changed = torch.where(mask[..., None], value, value + 10.0 * torch.randn_like(value))
    torch.testing.assert_close(m(query, ref, changed, SHAPES, mask), out)  # masked tokens do not matter
    assert not torch.allclose(m(query, ref, changed, SHAPES), m(query, ref, value, SHAPES), atol=1e-3)
    # all masked: every sample is zero (value_proj's bias included), only output_proj's bias remains
    none = m(query, ref, value, SHAPES, torch.zeros(2, S, dtype=torch.bool))
    torch.testing.assert_close(none, m.output_proj.bias.detach().expand(2, 3, 12))
    torch.testing.assert_close(m(query, ref, value, SHAPES, torch.ones(2, S, dtype=torch.bool)),
                               m(query, ref, value, SHAPES))
    with pytest.raises(ValueError, match="value_mask must be"):
        m(query, ref, value, SHAPES, mask[:, 1:])


@pytest.mark.parametrize("rtdetr_init", [True, False])
def test_gradients_reach_parameters_and_inputs(rtdetr_init):
    torch.manual_seed(0)
    m = (MSDeformableAttention(embed_dim=12, num_heads=3, num_levels=len(SHAPES), num_points=2)
         if rtdetr_init else _module())
    query = torch.randn(2, 3, 12, requires_grad=True)
    value = torch.randn(2, S, 12, requires_grad=True)
    ref = (torch.rand(2, 3, 1, 2) * 0.6 + 0.2).requires_grad_()
    (m(query, ref, value, SHAPES) * torch.randn(2, 3, 12)).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    inputs = [("value", value), ("reference_points", ref)]
    if rtdetr_init:
        # the init zeroes the weights of sampling_offsets and attention_weights: the query reaches the
        # output only through them, so its gradient is exactly zero until they have moved
        assert query.grad is not None and torch.all(query.grad == 0)
    else:
        inputs.append(("query", query))
    for name, t in inputs:
        assert t.grad is not None and t.grad.abs().sum() > 0, name


def test_constructor_and_forward_validation():
    with pytest.raises(ValueError, match=r"embed_dim \(10\) must be a multiple of num_heads \(4\)"):
        MSDeformableAttention(10, 4)
    with pytest.raises(ValueError, match="num_points must be >= 1, got 0"):
        MSDeformableAttention(8, 2, 2, 0)
    m = MSDeformableAttention(12, 3, len(SHAPES), 2)
    query, ref = torch.randn(1, 2, 12), torch.rand(1, 2, 1, 2)
    with pytest.raises(ValueError, match=f"value has {S - 1} tokens"):
        m(query, ref, torch.randn(1, S - 1, 12), SHAPES)
    with pytest.raises(ValueError, match="D = 12"):
        m(query, ref, torch.randn(1, S, 8), SHAPES)


def test_torchscript_matches_eager():
    m = _module().eval()
    scripted = torch.jit.script(m)
    query, ref, value = torch.randn(2, 3, 12), torch.rand(2, 3, 1, 4), torch.randn(2, S, 12)
    mask = torch.rand(2, S) > 0.3
    torch.testing.assert_close(scripted(query, ref, value, SHAPES, mask), m(query, ref, value, SHAPES, mask),
                               rtol=0, atol=1e-6)
    ref2 = ref[..., :2]
    torch.testing.assert_close(scripted(query, ref2, value, SHAPES), m(query, ref2, value, SHAPES),
                               rtol=0, atol=1e-6)


class _Wrapped(torch.nn.Module):
    """Fixed spatial shapes (export traces them as constants)."""

    def __init__(self, attn):
        super().__init__()
        self.attn = attn

    def forward(self, query, ref, value, mask):
        return self.attn(query, ref, value, SHAPES, mask)


def test_onnx_export_matches_eager(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    m = _Wrapped(_module()).eval()
    query, ref, value = torch.randn(2, 3, 12), torch.rand(2, 3, 1, 4), torch.randn(2, S, 12)
    mask = torch.rand(2, S) > 0.3
    path = tmp_path / "msda.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the shape checks trace as constants
        torch.onnx.export(m, (query, ref, value, mask), str(path), dynamo=False, opset_version=17,
                          input_names=["query", "ref", "value", "mask"], output_names=["out"],
                          dynamic_axes={"query": {0: "n", 1: "q"}, "ref": {0: "n", 1: "q"},
                                        "value": {0: "n"}, "mask": {0: "n"}, "out": {0: "n", 1: "q"}})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for nq in ((2, 3), (1, 5)):  # the traced shape and another batch / query count
        q_, r_ = torch.randn(nq[0], nq[1], 12), torch.rand(nq[0], nq[1], 1, 4)
        v_, k_ = value[:nq[0]], mask[:nq[0]]
        (got,) = sess.run(None, {"query": q_.numpy(), "ref": r_.numpy(), "value": v_.numpy(),
                                 "mask": k_.numpy()})
        with torch.no_grad():
            expected = m(q_, r_, v_, k_)
        torch.testing.assert_close(torch.from_numpy(got), expected, rtol=0, atol=1e-5)
