import pytest
import torch
from detectors import detr_detector

from evdet.models import decode_set_predictions
from evdet.ops import box_iou

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:`torch.jit.[a-z]+` is deprecated:DeprecationWarning")]


def _small(num_classes=3, **kw):
    torch.manual_seed(0)
    args = dict(num_queries=6, dec_layers=2, hidden_dim=16, nheads=2, dim_feedforward=32, dropout=0.0)
    args.update(kw)
    return detr_detector(2, num_classes, 4, 8, **args)


def _targets(t, b):
    return [[torch.tensor([[4.0 + i, 6, 40, 30 + j, (i + j) % 3]]) for j in range(b)] for i in range(t)]


def test_loss_keys_and_every_parameter_gets_a_gradient():
    det = _small()
    x = torch.rand(2, 2, 2, 64, 64)
    labeled = torch.tensor([[True, False], [False, True]])
    tg = _targets(2, 2)
    tg[1][1] = torch.zeros(0, 5)  # a labelled frame without objects
    out = det.compute_loss(x, tg, labeled)
    for k in ("loss", "loss_ce", "loss_bbox", "loss_giou", "cardinality_error", "loss_ce_0", "loss_bbox_0",
              "loss_giou_0", "cardinality_error_0", "slot_recall", "slot_precision", "slot_tnr",
              "slot_class_acc"):
        assert k in out, k
    expected = sum(w * (out[k] + out[f"{k}_0"]) for k, w in (("loss_ce", 1.0), ("loss_bbox", 5.0),
                                                              ("loss_giou", 2.0)))
    torch.testing.assert_close(out["loss"].detach(), expected)
    out["loss"].backward()
    for name, p in det.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_targets_are_normalised_cxcywh():
    det = _small()
    (t,) = det.head.set_targets([torch.tensor([[8.0, 16, 24, 48, 2]])], height=64, width=32)
    torch.testing.assert_close(t["boxes"], torch.tensor([[0.5, 0.5, 0.5, 0.5]]))
    assert t["labels"].tolist() == [2] and t["labels"].dtype == torch.int64


def test_no_labelled_bin_and_bad_targets():
    det = _small()
    out = det.compute_loss(torch.rand(1, 1, 2, 32, 32), _targets(1, 1), torch.zeros(1, 1, dtype=torch.bool))
    assert out["loss"].item() == 0.0
    out["loss"].backward()
    assert all(p.grad is not None for p in det.parameters())
    tg = _targets(1, 2)
    tg[0][1] = torch.tensor([[4.0, 6, 40, 30, 7]])
    with pytest.raises(ValueError, match=r"targets\[0\]\[1\] box 0 has class_idx 7"):
        det.compute_loss(torch.rand(1, 2, 2, 32, 32), tg, torch.ones(1, 2, dtype=torch.bool))


def test_decode_hand_case():
    # one frame, 2 queries, C = 2 (+ no-object)
    logits = torch.tensor([[[4.0, 0.0, 0.0], [0.0, 0.0, 4.0]]])
    boxes = torch.tensor([[[0.5, 0.5, 0.5, 0.25], [0.9, 0.9, 0.4, 0.4]]])
    (d,) = decode_set_predictions(logits, boxes, 40, 80, score_thresh=0.5)
    p = torch.softmax(logits[0, 0], 0)[0]
    torch.testing.assert_close(d, torch.tensor([[20.0, 15.0, 60.0, 25.0, float(p), 0.0]]))
    # the second query's box is clipped to the image when kept
    (d2,) = decode_set_predictions(logits, boxes, 40, 80, score_thresh=0.0, nms_thresh=1.0, max_detections=10)
    assert d2.shape == (4, 6) and (d2[:, 2] <= 80).all() and (d2[:, 3] <= 40).all()
    assert (d2[1:, 4] <= d2[:-1, 4]).all()


def test_get_boxes_structure_and_script_matches_eager():
    det = _small().eval()
    x = torch.rand(2, 3, 2, 48, 64)
    with torch.no_grad():
        boxes = det.get_boxes(x, score_thresh=0.0, nms_thresh=0.5, max_detections=4)
        assert len(boxes) == 2 and all(len(row) == 3 for row in boxes)
        assert all(d.shape[1] == 6 and d.shape[0] <= 4 for row in boxes for d in row)
        det.reset_all()
        ref = det.detect(x, 0.0, 0.5, 100)
        det.reset_all()
        scripted = torch.jit.script(det)
        scripted.reset_all()
        got = scripted.detect(x, 0.0, 0.5, 100)
    assert len(got) == 6
    for a, b in zip(ref, got, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


def test_export_torchscript_round_trip(tmp_path):
    pytest.importorskip("evdet.export")
    from evdet.export.torchscript import script_detector

    det = _small().eval()
    x = torch.rand(2, 2, 2, 32, 32)
    scripted = script_detector(det, 0.5, 10)
    assert hasattr(scripted, "reset")
    path = tmp_path / "m.pt"
    torch.jit.save(scripted, str(path))
    loaded = torch.jit.load(str(path))
    det.reset_all()
    loaded.reset_all()
    with torch.no_grad():
        ref = det.detect(x, 0.0, 0.5, 10)
        got = loaded(x, 0.0)
    for a, b in zip(ref, got, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


def test_map_cls_weights_by_name():
    src = _small(num_classes=3)
    dst = _small(num_classes=2)
    torch.nn.init.normal_(dst.head.transformer.class_embed.weight)
    before = dst.head.transformer.class_embed.weight.detach().clone()
    dst.map_cls_weights(src.state_dict(), ["car", "pedestrian", "truck"], ["truck", "bus"])
    w = dst.head.transformer.class_embed.weight
    torch.testing.assert_close(w[0], src.head.transformer.class_embed.weight[2])  # truck
    torch.testing.assert_close(w[2], src.head.transformer.class_embed.weight[3])  # no-object
    torch.testing.assert_close(w[1], before[1])  # bus: unknown in the source, kept
    torch.testing.assert_close(dst.head.transformer.query_pos.weight, src.head.transformer.query_pos.weight)
    with pytest.raises(ValueError, match="new_classes has 1 names"):
        dst.map_cls_weights(src.state_dict(), ["a", "b", "c"], ["x"])


def test_overfit_tiny_sequence_recovers_boxes():
    torch.manual_seed(0)
    det = _small(num_classes=2, num_queries=4, hidden_dim=32, nheads=4, dim_feedforward=64)
    # two bright rectangles on a 32x32 frame, a fixed chunk of T = 2 bins
    x = torch.zeros(2, 1, 2, 32, 32)
    x[:, 0, 0, 4:14, 3:17] = 1.0
    x[:, 0, 1, 18:30, 20:28] = 1.0
    gt = torch.tensor([[3.0, 4, 17, 14, 0], [20, 18, 28, 30, 1]])
    tg = [[gt], [gt]]
    labeled = torch.ones(2, 1, dtype=torch.bool)
    opt = torch.optim.AdamW(det.parameters(), lr=2e-3)
    for _ in range(150):
        det.reset_all()
        out = det.compute_loss(x, tg, labeled)
        opt.zero_grad()
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(det.parameters(), 1.0)
        opt.step()
    det.eval().reset_all()
    with torch.no_grad():
        d = det.get_boxes(x, score_thresh=0.3, nms_thresh=0.5, max_detections=10)[1][0]
    for row in gt:
        same = d[d[:, 5] == row[4]]
        assert same.shape[0] >= 1, (row, d)
        assert float(box_iou(same[:1, :4], row[None, :4])) > 0.7, (row, d)
