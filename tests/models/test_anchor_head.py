import pytest
import torch
from detectors import anchor_detector

from evdet.models import AnchorHead
from evdet.ops import box_iou

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")]

def _small(backbone="Vanilla", num_classes=3, **kw):
    torch.manual_seed(0)
    return anchor_detector(2, num_classes, 4, 8, backbone, **kw)


def _targets(t, b):
    return [[torch.tensor([[4.0 + i, 6, 40, 30 + j, (i + j) % 3]]) for j in range(b)] for i in range(t)]


def test_forward_shapes_at_96x128_with_1x1_level():
    det = _small()
    x = torch.rand(3, 2, 2, 96, 128)
    loc, cls = det(x)
    # Vanilla levels at 96x128: 12x16, 6x8, 3x4, 2x2, 1x1
    n_anchors = (192 + 48 + 12 + 4 + 1) * 6
    assert loc.shape == (6, n_anchors, 4) and cls.shape == (6, n_anchors, 4)
    assert det.num_classes == 3 and det.in_channels == 2
    with pytest.raises(ValueError, match="expected x of shape"):
        det(torch.rand(3, 2, 5, 96, 128))


def test_unknown_names():
    with pytest.raises(ValueError, match="Vanilla_VGG"):
        _small(backbone="Foo")
    with pytest.raises(ValueError, match="COCO_ANCHORS"):
        _small(anchor_list="FOO")


def test_gradient_reaches_every_parameter_and_unlabelled_bins_are_ignored():
    det = _small()
    x = torch.rand(2, 2, 2, 64, 64)
    labeled = torch.tensor([[True, False], [False, True]])
    tg = _targets(2, 2)
    out = det.compute_loss(x, tg, labeled)
    assert set(out) >= {"loss", "loss_cls", "loss_box"}
    assert out["loss_cls"] > 0 and out["loss_box"] > 0
    out["loss"].backward()
    for name, p in det.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # targets of unlabelled bins do not matter
    tg2 = _targets(2, 2)
    tg2[0][1] = torch.tensor([[0.0, 0, 60, 60, 2], [3, 3, 9, 9, 0]])
    det.reset_all()
    out_a = det.compute_loss(x, tg, labeled)
    det.reset_all()
    out_b = det.compute_loss(x, tg2, labeled)
    torch.testing.assert_close(out_a["loss"], out_b["loss"])


def test_no_labelled_bin_gives_zero_loss_connected_to_every_parameter():
    det = _small()
    out = det.compute_loss(torch.rand(2, 1, 2, 64, 64), _targets(2, 1), torch.zeros(2, 1, dtype=torch.bool))
    assert out["loss"].item() == 0.0
    out["loss"].backward()
    assert all(p.grad is not None for p in det.parameters())


def test_bad_targets_are_reported():
    det = _small()
    x = torch.rand(1, 2, 2, 64, 64)
    tg = _targets(1, 2)
    tg[0][1] = torch.tensor([[4.0, 6, 40, 30, 7]])
    with pytest.raises(ValueError, match=r"targets\[0\]\[1\] box 0 has class_idx 7"):
        det.compute_loss(x, tg, torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="frame_is_labeled"):
        det.compute_loss(x, tg, torch.ones(2, 2, dtype=torch.bool))


def test_chunk_equals_bins_one_at_a_time_and_reset():
    det = _small().eval()
    x = torch.rand(3, 2, 2, 64, 64)
    with torch.no_grad():
        loc, cls = det(x)
        det.reset_all()
        parts = [det(x[i : i + 1]) for i in range(3)]
        torch.testing.assert_close(loc, torch.cat([p[0] for p in parts]), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(cls, torch.cat([p[1] for p in parts]), rtol=1e-4, atol=1e-5)
        # reset column 0 only: column 0 restarts, column 1 continues
        det.reset(torch.tensor([0.0, 1.0]))
        loc2, _ = det(x[:1])
        torch.testing.assert_close(loc2[0], loc[0], rtol=1e-4, atol=1e-5)  # frame (t=0, b=0)
        assert not torch.allclose(loc2[1], loc[1], atol=1e-5)


def test_state_detached_between_batches_no_graph_growth():
    det = _small()
    opt = torch.optim.SGD(det.parameters(), lr=1e-4)
    x = torch.rand(1, 2, 2, 32, 32)
    tg = [[torch.tensor([[2.0, 2, 20, 20, 0]])] * 2]
    sizes = []
    for _ in range(30):  # 100 batches are run at the layer level in test_convrnn.py
        det.reset(torch.ones(2))  # trainer: keep memory, cut the graph
        out = det.compute_loss(x, tg, torch.ones(1, 2, dtype=torch.bool))
        sizes.append(_graph_size(out["loss"]))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert sizes[1] == sizes[-1]
    det.reset(torch.ones(2))
    assert all(level.prev_h.grad_fn is None for level in det.backbone.levels)


def _graph_size(t):
    seen, todo = set(), [t.grad_fn]
    while todo:
        f = todo.pop()
        if f is None or f in seen:
            continue
        seen.add(f)
        todo.extend(g for g, _ in f.next_functions)
    return len(seen)


def test_get_boxes_structure():
    det = _small().eval()
    x = torch.rand(2, 3, 2, 64, 80)
    with torch.no_grad():
        boxes = det.get_boxes(x, score_thresh=0.0, nms_thresh=0.5, max_detections=7)
    assert len(boxes) == 2 and all(len(row) == 3 for row in boxes)
    for row in boxes:
        for d in row:
            assert d.shape == (7, 6)
            assert (d[1:, 4] <= d[:-1, 4]).all()
            assert d[:, 0].min() >= 0 and d[:, 2].max() <= 80 and d[:, 3].max() <= 64
            assert ((d[:, 5] >= 0) & (d[:, 5] <= 2)).all()


@pytest.mark.parametrize("backbone", ["Vanilla", "Vanilla_VGG", "Vanilla_VGGRU"])
def test_scripted_detect_equals_eager(backbone):
    det = _small(backbone).eval()
    scripted = torch.jit.script(det)
    x = torch.rand(2, 2, 2, 64, 96)
    with torch.no_grad():
        for _ in range(2):  # the second call runs from the carried state
            eager = det.detect(x, 0.0, 0.5, 50)
            script = scripted.detect(x, 0.0, 0.5, 50)
            assert len(eager) == len(script) == 4
            for a, b in zip(eager, script, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    scripted.reset_all()
    det.reset_all()
    scripted.reset(torch.ones(2))
    scripted.detach()


def test_map_cls_weights_copies_shared_classes_for_every_anchor():
    src = _small(num_classes=3)
    with torch.no_grad():
        src.head.box_head.cls_pred.weight.normal_()
        src.head.box_head.cls_pred.bias.normal_()
    dst = _small(num_classes=2)
    fresh_w = dst.head.box_head.cls_pred.weight.detach().clone()
    fresh_b = dst.head.box_head.cls_pred.bias.detach().clone()
    dst.map_cls_weights(src.state_dict(), ["car", "pedestrian", "bus"], ["bus", "truck"])
    a = dst.head.anchors.num_anchors
    sw = src.head.box_head.cls_pred.weight.view(a, 4, -1)
    sb = src.head.box_head.cls_pred.bias.view(a, 4)
    dw = dst.head.box_head.cls_pred.weight.view(a, 3, -1)
    db = dst.head.box_head.cls_pred.bias.view(a, 3)
    assert torch.equal(dw[:, 2], sw[:, 3]) and torch.equal(db[:, 2], sb[:, 3])  # background (last)
    assert torch.equal(dw[:, 0], sw[:, 2]) and torch.equal(db[:, 0], sb[:, 2])  # bus, every anchor
    assert torch.equal(dw[:, 1], fresh_w.view(a, 3, -1)[:, 1])  # truck keeps the prior init
    assert torch.equal(db[:, 1], fresh_b.view(a, 3)[:, 1])
    assert torch.equal(dst.head.box_head.box_pred.weight, src.head.box_head.box_pred.weight)
    with pytest.raises(ValueError, match="new_classes"):
        dst.map_cls_weights(src.state_dict(), ["car", "pedestrian", "bus"], ["bus"])


def test_overfit_tiny_sequence():
    torch.manual_seed(0)
    t, b, h, w = 2, 2, 64, 64
    gt = [torch.tensor([[8.0, 10, 40, 34, 0]]), torch.tensor([[30.0, 20, 58, 60, 1]])]
    x = torch.zeros(t, b, 2, h, w)
    for j, g in enumerate(gt):
        x1, y1, x2, y2, c = (int(v) for v in g[0].tolist())
        x[:, j, c, y1:y2, x1:x2] = 1.0
    targets = [[gt[j] for j in range(b)] for _ in range(t)]
    det = anchor_detector(2, 2, 4, 16)
    opt = torch.optim.Adam(det.parameters(), lr=3e-3)
    labeled = torch.ones(t, b, dtype=torch.bool)
    losses = []
    for _ in range(50):
        det.reset_all()
        out = det.compute_loss(x, targets, labeled)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < losses[0] / 10
    det.eval()
    det.reset_all()
    with torch.no_grad():
        dets = det.get_boxes(x, score_thresh=0.3, nms_thresh=0.5)
    for ti in range(t):
        for j in range(b):
            top = dets[ti][j][:1]
            assert top.shape[0] == 1
            assert int(top[0, 5]) == int(gt[j][0, 4])
            assert box_iou(top[:, :4], gt[j][:, :4]).item() > 0.7


def test_levels_of_different_widths_are_projected_to_one_tower_width():
    head = AnchorHead([4, 8, 16], [4, 8, 16], 2, base_anchor_size=8.0)
    assert [p.in_channels for p in head.input_proj] == [4, 8, 16] and head.box_head.in_channels == 16
    feats = [torch.rand(2, c, 16 // 2 ** i, 16 // 2 ** i) for i, c in enumerate([4, 8, 16])]
    loc, cls = head(feats, 64, 64)
    assert loc.shape == (2, (256 + 64 + 16) * head.anchors.num_anchors, 4)
    assert AnchorHead([4, 8, 16], [4, 8, 16], 2, width=6).box_head.in_channels == 6
    assert len(AnchorHead([8, 8], [8, 16], 2).input_proj) == 0  # equal widths: no projection, same keys
    with pytest.raises(ValueError, match="equal width"):
        AnchorHead([8, 8], [8, 16], 2, width=4)
