"""RVT's MaxViT-RNN backbone: partitions, qkv grouping, ConvLSTM gates, geometry, sizes, state, heads."""

import math

import pytest
import torch

from evdet.inference.config_dict import config_from_dict, config_to_dict
from evdet.inference.model_config import (
    AnchorHeadConfig,
    DetrHeadConfig,
    ModelConfig,
    RVTConfig,
    build_detector,
)
from evdet.models import RVTBackbone, rvt_input_geometry
from evdet.models.dws_convlstm import DWSConvLSTM2d
from evdet.models.maxvit import (
    SelfAttentionCl,
    grid_partition,
    grid_reverse,
    window_partition,
    window_reverse,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _small(**kw) -> RVTBackbone:
    """A tiny RVT (stage widths 8, 16, 32, 64) for fast tests."""
    args = dict(embed_dim=8, dim_head=8, partition_split_32=1)
    args.update(kw)
    return RVTBackbone(2, **args)


# ---------------------------------------------------------------- partitions
def test_window_and_grid_partition_of_a_hand_made_image():
    x = torch.arange(16.0).view(1, 4, 4, 1)  # pixel (r, c) holds 4r + c
    win = window_partition(x, [2, 2])
    assert win.shape == (4, 2, 2, 1)
    assert win[0].flatten().tolist() == [0, 1, 4, 5]  # top-left 2x2 block
    assert win[1].flatten().tolist() == [2, 3, 6, 7]  # top-right block
    assert win[2].flatten().tolist() == [8, 9, 12, 13]
    grid = grid_partition(x, [2, 2])
    assert grid.shape == (4, 2, 2, 1)
    assert grid[0].flatten().tolist() == [0, 2, 8, 10]  # pixels 2 apart, starting at (0, 0)
    assert grid[1].flatten().tolist() == [1, 3, 9, 11]  # starting at (0, 1)
    assert grid[2].flatten().tolist() == [4, 6, 12, 14]  # starting at (1, 0)


def test_non_square_partitions_and_their_inverses():
    x = torch.arange(2 * 4 * 6 * 3, dtype=torch.float32).view(2, 4, 6, 3)
    win = window_partition(x, [2, 3])
    assert win.shape == (2 * 2 * 2, 2, 3, 3)
    assert torch.equal(win[1, :, :, 0], x[0, 0:2, 3:6, 0])  # image 0, window row 0, window column 1
    assert torch.equal(win[6, :, :, 0], x[1, 2:4, 0:3, 0])
    grid = grid_partition(x, [2, 3])
    assert torch.equal(grid[1, :, :, 0], x[0, 0::2, 1::2, 0])  # group (0, 1): rows 0, 2; columns 1, 3, 5
    assert torch.equal(window_reverse(win, [2, 3], 4, 6), x)
    assert torch.equal(grid_reverse(grid, [2, 3], 4, 6), x)
    with pytest.raises(ValueError, match="not divisible"):
        window_partition(x, [3, 3])


# ---------------------------------------------------------------- attention
def test_qkv_channels_are_grouped_per_head():
    """RVT's layout: head h owns qkv outputs [6h, 6h+6) = q (2), k (2), v (2) for dim_head 2."""
    torch.manual_seed(0)
    att = SelfAttentionCl(4, 2)
    with torch.no_grad():
        att.proj.weight.copy_(torch.eye(4))
        att.proj.bias.zero_()
    x = torch.randn(1, 1, 3, 4)  # one group of 3 tokens
    qkv = att.qkv(x).view(3, 12)
    expected = torch.empty(3, 4)
    for h in range(2):
        q, k, v = qkv[:, 6 * h:6 * h + 2], qkv[:, 6 * h + 2:6 * h + 4], qkv[:, 6 * h + 4:6 * h + 6]
        a = torch.softmax(q @ k.T / math.sqrt(2), dim=-1)
        expected[:, 2 * h:2 * h + 2] = a @ v
    got = att(x).view(3, 4)
    assert torch.allclose(got, expected, atol=1e-6)
    q, k, v = qkv[:, 0:4], qkv[:, 4:8], qkv[:, 8:12]  # nn.MultiheadAttention's layout differs
    a = torch.softmax(q[:, :2] @ k[:, :2].T / math.sqrt(2), dim=-1)
    assert not torch.allclose(got[:, :2], a @ v[:, :2], atol=1e-3)


# ---------------------------------------------------------------- ConvLSTM
def test_lstm_gate_order_and_input_order_on_one_pixel():
    """Gates forget, input, output, then the cell input; cat(x, h) with x first."""
    cell = DWSConvLSTM2d(1)
    bf, bi, bo, bg = 0.3, -0.7, 1.1, 0.4
    with torch.no_grad():
        cell.conv1x1.weight.zero_()
        cell.conv1x1.weight[3, 0] = 2.0  # x -> cell input
        cell.conv1x1.weight[0, 1] = -1.5  # h -> forget gate
        cell.conv1x1.bias.copy_(torch.tensor([bf, bi, bo, bg]))
    def sig(v):
        return 1.0 / (1.0 + math.exp(-v))

    x = torch.tensor([0.5, -0.25]).view(2, 1, 1, 1, 1)  # [T=2, B=1, C=1, 1, 1]
    with torch.no_grad():
        hs, h, c = cell(x, None, None)
    c1 = sig(bi) * math.tanh(bg + 2.0 * 0.5)  # c0 = 0
    h1 = sig(bo) * math.tanh(c1)
    c2 = sig(bf - 1.5 * h1) * c1 + sig(bi) * math.tanh(bg + 2.0 * -0.25)
    h2 = sig(bo) * math.tanh(c2)
    assert hs.flatten().tolist() == pytest.approx([h1, h2], abs=1e-6)
    assert float(c) == pytest.approx(c2, abs=1e-6) and torch.equal(h, hs[-1])


def test_depthwise_conv_applies_to_a_zero_hidden_state():
    cell = DWSConvLSTM2d(2, dws_conv=True)
    with torch.no_grad():
        cell.conv3x3_dws.bias.fill_(1.0)
        cell.conv1x1.weight.zero_()
        cell.conv1x1.bias.zero_()
        cell.conv1x1.weight[6:8, 2:4] = torch.eye(2).view(2, 2, 1, 1)  # dws(h) -> cell input
    hs, _, c = cell(torch.zeros(1, 1, 2, 3, 3), None, None)
    assert torch.allclose(c, torch.full_like(c, 0.5 * math.tanh(1.0)), atol=1e-6)  # bias 1 reached g


# ---------------------------------------------------------------- geometry
def test_padding_and_partition_sizes_as_rvts_config_modifier():
    assert rvt_input_geometry(240, 304, 32, 1, []) == [256, 320, 8, 10]  # Gen1 (partition_split_32 1)
    assert rvt_input_geometry(360, 640, 32, 2, []) == [384, 640, 6, 10]  # 1Mpx at half resolution
    assert rvt_input_geometry(720, 1280, 32, 2, []) == [768, 1280, 12, 20]
    assert rvt_input_geometry(64, 64, 32, 4, []) == [128, 128, 1, 1]
    assert rvt_input_geometry(50, 70, 32, 1, [2, 3]) == [64, 96, 2, 3]  # explicit partition: x 32·p


def test_input_is_zero_padded_right_and_bottom():
    torch.manual_seed(0)
    net = _small().eval()
    x = torch.rand(2, 1, 2, 40, 50)
    outs = net(x)
    assert [list(o.shape) for o in outs] == [[2, 1, 8, 16, 16], [2, 1, 16, 8, 8], [2, 1, 32, 4, 4],
                                              [2, 1, 64, 2, 2]]  # padded to 64 x 64
    padded = torch.zeros(2, 1, 2, 64, 64)
    padded[..., :40, :50] = x
    net.reset_all()
    for a, b in zip(outs, net(padded), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    shifted = torch.zeros(2, 1, 2, 64, 64)
    shifted[..., 24:, 14:] = x  # padding on the top / left instead gives other features
    net.reset_all()
    assert not torch.allclose(outs[0], net(shifted)[0], atol=1e-3)


# ---------------------------------------------------------------- sizes and weight names
def _rvt_param_count(in_channels: int, embed_dim: int) -> int:
    """Parameters of RVT's backbone from its layer definitions (4 stages, 1 block each, overlap, ratio 4)."""
    total, d_in = 0, in_channels
    for s, mult in enumerate((1, 2, 4, 8)):
        d, f = embed_dim * mult, 4 if s == 0 else 2
        k = 2 * f - 1
        total += d * d_in * k * k + 2 * d  # downsampling conv (no bias) + LayerNorm
        for window in (True, False):
            total += 0 if window else 2 * d  # norm1 (skipped in the first window block)
            total += 3 * d * d + 3 * d + d * d + d  # qkv, proj
            total += 2 * d + 2 * d  # ls1, ls2, norm2
            total += 4 * d * d + 4 * d + 4 * d * d + d  # MLP
        total += 4 * d * 2 * d + 4 * d  # ConvLSTM 1x1
        d_in = d
    return total


@pytest.mark.parametrize("name,rvt_count,embed_dim", [("rvt-t", 3_220_032, 32), ("rvt-s", 7_209_312, 48),
                                                      ("rvt-b", 12_784_768, 64)])
def test_parameter_counts_match_rvts_backbone(name, rvt_count, embed_dim):
    """``rvt_count``: ``sum(p.numel())`` of RVT's own ``RNNDetector`` (20 input channels, its yaml sizes)."""
    net = build_detector(ModelConfig(backbone=name, head="set"), 20, 2).backbone
    n = sum(p.numel() for p in net.parameters())
    assert n == rvt_count == _rvt_param_count(20, embed_dim)
    assert net.channels == [embed_dim * m for m in (1, 2, 4, 8)] and net.strides == [4, 8, 16, 32]


RVT_STAGE_KEYS = [  # RVT's RNNDetector.state_dict() keys of one stage (after "stages.{s}.")
    "downsample_cf2cl.conv.weight", "downsample_cf2cl.norm.weight", "downsample_cf2cl.norm.bias",
    *[f"att_blocks.0.att_{kind}.{name}" for kind in ("window", "grid")
      for name in ((() if kind == "window" else ("norm1.weight", "norm1.bias"))
                   + ("self_attn.qkv.weight", "self_attn.qkv.bias", "self_attn.proj.weight",
                      "self_attn.proj.bias", "ls1.gamma", "norm2.weight", "norm2.bias", "mlp.net.0.0.weight",
                      "mlp.net.0.0.bias", "mlp.net.2.weight", "mlp.net.2.bias", "ls2.gamma"))],
    "lstm.conv1x1.weight", "lstm.conv1x1.bias",
]


def test_state_dict_keys_are_rvts():
    keys = list(build_detector(ModelConfig(backbone="rvt-t", head="set"), 20, 2).state_dict())
    backbone = [k for k in keys if k.startswith("backbone.")]
    assert backbone == [f"backbone.stages.{s}.{k}" for s in range(4) for k in RVT_STAGE_KEYS]
    sd = dict(build_detector(ModelConfig(backbone="rvt-t", head="set"), 20, 2).state_dict())
    assert sd["backbone.stages.0.downsample_cf2cl.conv.weight"].shape == (32, 20, 7, 7)
    assert sd["backbone.stages.1.downsample_cf2cl.conv.weight"].shape == (64, 32, 3, 3)
    assert sd["backbone.stages.3.lstm.conv1x1.weight"].shape == (1024, 512, 1, 1)
    two = _small(num_blocks=(2, 1, 1, 1), lstm_dws_conv=True).state_dict()
    assert "stages.0.att_blocks.1.att_window.norm1.weight" in two  # only the first block skips norm1
    assert "stages.0.att_blocks.0.att_window.norm1.weight" not in two
    assert two["stages.0.lstm.conv3x3_dws.weight"].shape == (8, 1, 3, 3)


def test_config_sizes_and_errors():
    with pytest.raises(ValueError, match="contradicts backbone 'rvt-t'"):
        ModelConfig(backbone="rvt-t", rvt=RVTConfig(embed_dim=64))
    with pytest.raises(ValueError, match="partition_split_32"):
        RVTConfig(partition_split_32=3)
    with pytest.raises(ValueError, match="multiples of dim_head"):
        RVTBackbone(2, embed_dim=12, dim_head=8)
    net = build_detector(ModelConfig(backbone="rvt", head="set", rvt=RVTConfig(embed_dim=16, dim_head=8)), 2,
                         2).backbone
    assert net.channels == [16, 32, 64, 128]
    mc = ModelConfig(backbone="rvt", rvt=RVTConfig(embed_dim=16, dim_head=8, partition_size=(2, 3),
                                                   num_blocks=(1, 2, 1, 1), lstm_dws_conv=True))
    assert config_from_dict(ModelConfig, config_to_dict(mc)) == mc  # as stored in checkpoints


# ---------------------------------------------------------------- state
def test_reset_zeroes_columns_and_state_round_trips():
    torch.manual_seed(0)
    net = _small().eval()
    x = torch.rand(2, 2, 2, 64, 64)
    with torch.no_grad():
        net(x)
        state = net.get_state()
        assert len(state) == 8 and [list(s.shape) for s in state[:2]] == [[2, 8, 16, 16]] * 2
        net.reset(torch.tensor([0.0, 1.0]))
        after = net.get_state()
        assert all(s[0].abs().sum() == 0 and torch.equal(s[1], old[1]) for s, old in zip(after, state,
                                                                                        strict=True))
        y = torch.rand(1, 2, 2, 64, 64)
        out = net(y)
        net.reset_all()
        assert net.get_state() == []
        fresh = net(y[:, :1])  # column 0 alone from zeros
        assert all(torch.allclose(a[:, :1], b, atol=1e-6) for a, b in zip(out, fresh, strict=True))
        net.set_state(state)
        again = net(y)
        net.set_state(state)
        assert all(torch.equal(a, b) for a, b in zip(again, net(y), strict=True))
    with pytest.raises(ValueError, match="expected 8 state tensors"):
        net.set_state(state[:3])


# ---------------------------------------------------------------- with the existing heads
def _targets(t, b):
    box = torch.tensor([[8.0, 10.0, 30.0, 40.0, 1.0], [34.0, 6.0, 60.0, 28.0, 0.0]])
    return [[box.clone() for _ in range(b)] for _ in range(t)]


def test_rvt_t_with_the_anchor_head_trains():
    torch.manual_seed(0)
    mc = ModelConfig(backbone="rvt-t", head="anchor", anchor=AnchorHeadConfig(anchor_size=8.0, width=64))
    det = build_detector(mc, 2, 2)
    assert det.head.box_head.in_channels == 64 and len(det.head.input_proj) == 4
    opt = torch.optim.AdamW(det.parameters(), lr=1e-3)
    x = torch.rand(2, 2, 2, 64, 64)
    labeled = torch.ones(2, 2, dtype=torch.bool)
    losses = []
    for _ in range(10):
        det.reset_all()
        loss = det.compute_loss(x, _targets(2, 2), labeled)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses
    det.eval()
    det.reset_all()
    dets = det.get_boxes(torch.rand(1, 2, 2, 60, 50), score_thresh=0.0)
    assert dets[0][0].shape[1] == 6 and (dets[0][0][:, 2] <= 50).all() and (dets[0][0][:, 3] <= 60).all()


def test_rvt_t_with_the_set_head_builds_and_gives_a_loss():
    torch.manual_seed(0)
    mc = ModelConfig(backbone="rvt-t", head="set", set=DetrHeadConfig(num_queries=5, dec_layers=1,
                                                                      hidden_dim=32, nheads=4))
    det = build_detector(mc, 2, 2)
    out = det.compute_loss(torch.rand(1, 2, 2, 64, 64), _targets(1, 2), torch.ones(1, 2, dtype=torch.bool))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert all(p.grad is not None for p in det.backbone.parameters())


# ---------------------------------------------------------------- checkpoint and export
def _info(model_config=None):
    from evdet.inference.checkpoint import CheckpointInfo

    model_config = {"head": "anchor"} if model_config is None else model_config
    return CheckpointInfo(classes=("car", "pedestrian"), label_map={0: "car", 1: "pedestrian"},
                          representation="histo", representation_params={}, delta_t=50_000, num_tbins=2,
                          in_channels=2, sensor_size=(48, 60), network_size=(48, 60), score_thresh=0.1,
                          nms_thresh=0.5, max_detections=10, model_config=model_config)


def _small_config() -> ModelConfig:
    rvt = RVTConfig(embed_dim=8, dim_head=8, partition_split_32=1)
    anchor = AnchorHeadConfig(anchor_size=8.0, width=16)
    return ModelConfig(backbone="rvt", head="anchor", rvt=rvt, anchor=anchor)


def _small_detector():
    return build_detector(_small_config(), 2, 2)


def test_checkpoint_round_trip(tmp_path):
    from evdet.inference.checkpoint import load_detector, save_detector_checkpoint

    torch.manual_seed(0)
    det = _small_detector().eval()
    mc = _small_config()
    save_detector_checkpoint(tmp_path / "m.ckpt", det, _info(config_to_dict(mc)))
    loaded, info = load_detector(tmp_path / "m.ckpt")
    assert info.config == mc
    x = torch.rand(2, 2, 2, 48, 60)
    for a, b in zip(det(x), loaded(x), strict=True):
        assert torch.equal(a, b)


def test_scripts_and_matches_eager(tmp_path):
    from evdet.export.torchscript import export_torchscript

    torch.manual_seed(0)
    # export_torchscript runs the scripted detector against the eager one (two chunks, a column reset,
    # another batch size) and raises RuntimeError on a difference above atol
    path = export_torchscript(_small_detector().eval(), tmp_path, _info())
    assert path is not None


def test_exports_to_onnx_with_state(tmp_path):
    pytest.importorskip("onnxruntime")
    import json

    from evdet.export.onnx import export_onnx

    torch.manual_seed(0)
    _, json_path = export_onnx(_small_detector().eval(), tmp_path, _info())
    meta = json.loads(json_path.read_text())
    assert meta["checks"]["max_abs_diff"] <= 1e-4
    assert [i["name"] for i in meta["inputs"]] == ["x"] + [f"state_in.{i}" for i in range(8)]


def test_hidden_states_are_channels_last_as_rvts():
    # RVT hands permuted NHWC maps (channels-last strides) to its LSTMs, the next stage and the PAFPN; evdet
    # keeps that layout so that the convolutions pick RVT's kernels (float32 results identical to RVT's)
    from evdet.models.rvt_backbone import RVTBackbone

    bb = RVTBackbone(20, 16, (1, 2, 4, 8), (1, 1, 1, 1), 8, partition_split_32=1).eval()
    with torch.no_grad():
        outs = bb(torch.rand(2, 1, 20, 64, 64))
    for y in outs:
        assert y.flatten(0, 1).is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    assert all(s.is_contiguous(memory_format=torch.channels_last) for s in bb.state)
