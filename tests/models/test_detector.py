"""evdet.models.detector: the RecurrentDetector (state forwarding, explicit state, input/target checks,
get_boxes, class remapping by declared layers, parameter groups)."""

from __future__ import annotations

import pytest
import torch
from detectors import anchor_detector, detr_detector
from torch import Tensor, nn

from evdet.models.detector import RecurrentDetector
from evdet.models.head import ClassLogitLayer, DetectionHead


class _Backbone(nn.Module):
    """Per-column state [B, 3], recording the calls forwarded by the detector."""

    channels = [3]
    strides = [1]
    in_channels = 2

    def __init__(self) -> None:
        super().__init__()
        self.state: Tensor | None = None
        self.calls: list[str] = []

    def reset(self, mask: Tensor) -> None:
        self.calls.append("reset")
        self.state = self.state * mask.view(-1, 1)

    def reset_all(self) -> None:
        self.calls.append("reset_all")
        self.state = None

    def detach(self) -> None:
        self.calls.append("detach")


class _TinyHead(DetectionHead):
    """Detects one constant row per frame; two class layers (with and without background)."""

    def __init__(self, num_classes: int):
        super().__init__(num_classes)
        self.logits = nn.Linear(1, 2 * (num_classes + 1))  # 2 anchors x (C + background)
        self.sigm = nn.Parameter(torch.zeros(num_classes, 3))  # C rows, no background

    def detect(self, features, image_height, image_width, score_thresh, nms_thresh, max_detections):
        return [torch.full((1, 6), float(i)) for i in range(features[0].shape[0])]

    def class_logit_layers(self):
        return [ClassLogitLayer(("logits.weight", "logits.bias"), groups=2, background=True),
                ClassLogitLayer(("sigm",))]


class _StubBackbone(_Backbone):
    def forward(self, x: Tensor) -> list[Tensor]:
        return [x[:, :, :1]]


def _tiny(num_classes: int = 3) -> RecurrentDetector:
    return RecurrentDetector(_StubBackbone(), _TinyHead(num_classes))


def _small_real() -> RecurrentDetector:
    torch.manual_seed(0)
    return anchor_detector(2, 2, 4, 8, base_anchor_size=8.0)


def test_reset_zeroes_exactly_the_masked_columns_of_a_real_detector():
    det = _small_real().eval()
    x = torch.rand(2, 4, 2, 32, 32)
    with torch.no_grad():
        det(x)
    states = [lv.prev_h.clone() for lv in det.backbone.levels]
    assert all(s.abs().sum(dim=(1, 2, 3)).min() > 0 for s in states)
    det.reset(torch.tensor([1.0, 0.0, 1.0, 0.0]))
    for before, lv in zip(states, det.backbone.levels, strict=True):
        after = lv.prev_h
        assert torch.equal(after[[0, 2]], before[[0, 2]])
        assert torch.count_nonzero(after[[1, 3]]) == 0
        assert not after.requires_grad
    det.reset_all()
    assert all(lv.prev_h is None for lv in det.backbone.levels)


def test_reset_reset_all_detach_are_forwarded():
    det = _tiny()
    det.backbone.state = torch.ones(3, 3)
    det.reset(torch.tensor([0.0, 1.0, 0.0]))
    assert det.backbone.state.sum(1).tolist() == [0.0, 3.0, 0.0]
    det.detach()
    det.reset_all()
    assert det.backbone.calls == ["reset", "detach", "reset_all"]
    assert det.in_channels == 2 and det.num_classes == 3


def test_num_classes_below_one_names_the_head():
    with pytest.raises(ValueError, match="_TinyHead: num_classes must be >= 1, got 0"):
        _tiny(num_classes=0)


def test_get_boxes_regroups_t_by_b_and_checks_max_detections():
    det = _tiny()
    out = det.get_boxes(torch.zeros(3, 2, 2, 4, 4))
    assert len(out) == 3 and all(len(row) == 2 for row in out)
    assert [[int(o[0, 0]) for o in row] for row in out] == [[0, 1], [2, 3], [4, 5]]  # t-major
    with pytest.raises(ValueError, match="max_detections must be >= 0, got -1"):
        det.get_boxes(torch.zeros(1, 1, 2, 4, 4), max_detections=-1)


def test_check_input_rejects_bad_shapes():
    det = _tiny()
    det._check_input(torch.zeros(1, 1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"expected x of shape \[T, B, 2, H, W\], got \[1, 3, 4, 4\]"):
        det._check_input(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"got \[1, 1, 3, 4, 4\]"):
        det._check_input(torch.zeros(1, 1, 3, 4, 4))


def test_check_loss_inputs_shapes():
    det = _tiny()
    x = torch.zeros(2, 3, 2, 4, 4)
    good = [[torch.zeros(0, 5)] * 3] * 2
    det._check_loss_inputs(x, good, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"frame_is_labeled must have shape \[2, 3\], got \[3, 2\]"):
        det._check_loss_inputs(x, good, torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="targets must be a 2 x 3 nested list"):
        det._check_loss_inputs(x, [[torch.zeros(0, 5)] * 3, [torch.zeros(0, 5)] * 2],
                               torch.ones(2, 3, dtype=torch.bool))


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 4), r"targets\[1\]\[0\] must be a Tensor\[n, 5\], got \[2, 4\]"),
    ([[0, 0, 1, 1, 0]], r"targets\[1\]\[0\] must be a Tensor\[n, 5\], got list"),
    (torch.tensor([[0, 0, 4, 4, 0], [0, 0, 4, 4, 3.0]]), r"targets\[1\]\[0\] box 1 has class_idx 3.0"),
    (torch.tensor([[0, 0, 4, 4, 0.5]]), r"targets\[1\]\[0\] box 0 has class_idx 0.5"),
    (torch.tensor([[0, 0, 4, 4, -1.0]]), r"box 0 has class_idx -1.0"),
    (torch.tensor([[0, 0, 4, 4, 1], [0, 0, 4, 4, 1], [5, 0, 4, 4, 1]]),
     r"targets\[1\]\[0\] box 2 is not a valid xyxy box"),
    (torch.tensor([[0, 0, float("nan"), 4, 1]]), r"box 0 is not a valid xyxy box"),
    (torch.tensor([[0, 0, float("inf"), 4, 1]]), r"box 0 is not a valid xyxy box"),
])
def test_target_validation_names_frame_and_box(bad, message):
    det = _tiny()
    good = torch.tensor([[0, 0, 4, 4, 2.0]])
    targets = [[good, good], [bad, good]]
    idx = torch.tensor([0, 1, 2])  # t-major: (0, 0), (0, 1), (1, 0)
    with pytest.raises(ValueError, match=message):
        det._labeled_targets(targets, idx, 2)


def test_labeled_targets_picks_t_major_frames_and_allows_empty():
    det = _tiny()
    tg = [[torch.full((1, 5), float(t * 2 + b)) for b in range(2)] for t in range(2)]
    for row in tg:
        for t in row:
            t[0, :4] = torch.tensor([0.0, 0.0, 1.0, 1.0])
            t[0, 4] = 0
    tg[1][0] = torch.zeros(0, 5)
    out = det._labeled_targets(tg, torch.tensor([3, 2]), 2)
    assert out[0] is tg[1][1] and out[1] is tg[1][0]


def test_real_detector_compute_loss_names_the_bad_target():
    det = _small_real()
    x = torch.rand(1, 2, 2, 32, 32)
    tgs = [[torch.tensor([[1.0, 1.0, 9.0, 9.0, 1.0]]), torch.tensor([[1.0, 1.0, 9.0, 9.0, 7.0]])]]
    with pytest.raises(ValueError, match=r"targets\[0\]\[1\] box 0 has class_idx 7.0"):
        det.compute_loss(x, tgs, torch.ones(1, 2, dtype=torch.bool))


@pytest.mark.parametrize("build", [anchor_detector, detr_detector])
def test_explicit_state_round_trip_and_column_reset(build):
    torch.manual_seed(0)
    det = build(2, 2, 4, 8).eval()
    assert det.get_state() == []
    x1, x2 = torch.rand(2, 3, 2, 32, 32), torch.rand(2, 3, 2, 32, 32)
    with torch.no_grad():
        det(x1)
        state = [s.clone() for s in det.get_state()]
        assert len(state) == 10 and all(s.shape[0] == 3 for s in state)  # 5 ConvLSTM levels x (h, c)
        ref = det(x2)
        det.reset_all()
        det.set_state(state)  # restore: the second chunk gives the same outputs
        again = det(x2)
        for a, b in zip(ref, again, strict=True):
            torch.testing.assert_close(a, b)
        # zeroing a column's slice of every state tensor == reset of that column
        det.set_state([s.clone() for s in state])
        det.reset(torch.tensor([1.0, 0.0, 1.0]))
        by_reset = det(x2)
        zeroed = [s.clone() for s in state]
        for s in zeroed:
            s[1] = 0
        det.set_state(zeroed)
        by_zero = det(x2)
        for a, b in zip(by_reset, by_zero, strict=True):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="expected 10 state tensors"):
        det.set_state(state[:3])


def test_map_cls_weights_uses_the_declared_layers_and_keeps_background():
    src, dst = _TinyHead(3), _TinyHead(2)
    with torch.no_grad():
        for p in src.parameters():
            p.copy_(torch.arange(p.numel(), dtype=torch.float32).view_as(p))
    fresh_sigm = dst.sigm.detach().clone()
    det = RecurrentDetector(_StubBackbone(), dst)
    src_state = {"head." + k: v for k, v in src.state_dict().items()}
    det.map_cls_weights(src_state, ["a", "b", "c"], ["c", "new"])
    sb, db = src.logits.bias.view(2, 4), dst.logits.bias.view(2, 3)
    assert torch.equal(db[:, 0], sb[:, 2]) and torch.equal(db[:, 2], sb[:, 3])  # c, background, every block
    assert torch.equal(dst.sigm[0], src.sigm[2]) and torch.equal(dst.sigm[1], fresh_sigm[1])
    with pytest.raises(ValueError, match=r"head\.\w+ has shape \[\d+(, \d+)?\], expected .* 2 old classes"):
        det.map_cls_weights(src_state, ["a", "b"], ["c", "new"])


def test_param_groups_split_backbone_head_and_decay():
    det = detr_detector(2, 2, 4, 8, lr_mult=0.5)
    groups = det.param_groups(1e-3, 0.05)
    assert sum(len(g["params"]) for g in groups) == len(list(det.parameters()))
    assert {(g["lr"], g["weight_decay"]) for g in groups} == {(1e-3, 0.05), (1e-3, 0.0), (5e-4, 0.05),
                                                              (5e-4, 0.0)}
    assert all(p.ndim < 2 for g in groups if g["weight_decay"] == 0.0 for p in g["params"])
    assert det.grad_clip == 0.1 and anchor_detector().grad_clip == 0.0
