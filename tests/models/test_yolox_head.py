"""evdet.models.yolox_*: grid order, decoding, SimOTA, losses, RVT's postprocess, remapping, scripting."""

import math

import torch

from evdet.models import RecurrentDetector, YoloxHead, build_backbone
from evdet.models.simota import dynamic_k_matching
from evdet.models.yolox_decoding import anchor_grid, decode_boxes, yolox_postprocess
from evdet.models.yolox_loss import iou_loss


def _detector(num_classes=2):
    torch.manual_seed(0)
    bb = build_backbone("Vanilla", 2, 4, 16)
    return RecurrentDetector(bb, YoloxHead(bb.channels, bb.strides, num_classes))


def test_grid_order_is_stride_8_16_32_row_major_and_boxes_decode():
    grid, strides = anchor_grid([[2, 3], [1, 2], [1, 1]], [8, 16, 32], torch.device("cpu"), torch.float32)
    assert grid.tolist() == [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1], [0, 0], [1, 0], [0, 0]]
    assert strides.tolist() == [8] * 6 + [16] * 2 + [32]
    raw = torch.zeros(1, 9, 4)
    raw[0, 4] = torch.tensor([0.5, -0.25, math.log(2.0), 0.0])
    box = decode_boxes(raw, grid, strides)[0, 4]
    assert torch.allclose(box, torch.tensor([(0.5 + 1) * 8, (-0.25 + 1) * 8, 16.0, 8.0]))


def test_dynamic_k_hand_computed():
    # box 0: top-3 IoUs 0.9+0.8+0.7 = 2.4 -> k = 2; box 1: 0.3+0.2+0.1 -> k = max(1, 0) = 1
    ious = torch.tensor([[0.9, 0.8, 0.7, 0.0], [0.3, 0.2, 0.0, 0.1]])
    cost = torch.tensor([[1.0, 2.0, 3.0, 9.0], [0.5, 9.0, 9.0, 9.0]])
    fg, gt, iou = dynamic_k_matching(cost, ious)
    # anchor 0 is wanted by both boxes: the lower cost (box 1, 0.5) wins
    assert fg.tolist() == [True, True, False, False]
    assert gt.tolist() == [1, 0] and torch.allclose(iou, torch.tensor([0.3, 0.8]))


def test_iou_loss_is_one_minus_iou_squared():
    pred = torch.tensor([[5.0, 5.0, 10.0, 10.0]])
    target = torch.tensor([[10.0, 5.0, 10.0, 10.0]])  # half overlap: IoU = 50 / 150
    assert torch.allclose(iou_loss(pred, target), torch.tensor([1 - (1 / 3) ** 2]))


def test_postprocess_threshold_on_product_classwise_nms_clip_after():
    # rows: cx, cy, w, h, obj, p(c0), p(c1)
    pred = torch.tensor([[[10.0, 10.0, 30.0, 20.0, 0.9, 0.8, 0.1],   # score 0.72, c0, x1 = -5
                          [11.0, 10.0, 30.0, 20.0, 0.9, 0.7, 0.1],   # 0.63, c0, overlaps row 0 -> removed
                          [11.0, 10.0, 30.0, 20.0, 0.9, 0.1, 0.6],   # 0.54, c1: other class, kept
                          [50.0, 50.0, 10.0, 10.0, 0.5, 0.19, 0.0]]])  # 0.095 < 0.1: dropped
    det = yolox_postprocess(pred, 40, 60, 0.1, 0.45, 10)[0]
    assert det[:, 5].tolist() == [0.0, 1.0]
    assert torch.allclose(det[:, 4], torch.tensor([0.72, 0.54]))
    assert torch.allclose(det[0, :4], torch.tensor([0.0, 0.0, 25.0, 20.0]))  # clipped after NMS
    cls_only = yolox_postprocess(pred, 40, 60, 0.1, 0.45, 10, class_score_only=True)[0]
    assert torch.allclose(cls_only[:, 4], torch.tensor([0.8, 0.6]))


def test_trains_loss_decreases_and_scripted_detect_equals_eager():
    det = _detector()
    x = torch.rand(2, 2, 2, 64, 64)
    tg = [[torch.tensor([[8.0, 8.0, 40.0, 30.0, 1.0]]), torch.zeros(0, 5)] for _ in range(2)]
    labeled = torch.ones(2, 2, dtype=torch.bool)
    opt = torch.optim.Adam(det.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        det.reset_all()
        out = det.compute_loss(x, tg, labeled)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert set(out) >= {"loss", "loss_iou", "loss_obj", "loss_cls"}
    assert losses[-1] < 0.7 * losses[0]
    det.eval().reset_all()
    ref = det.detect(x, 0.0, 0.45, 5)
    det.reset_all()
    got = torch.jit.script(det).detect(x, 0.0, 0.45, 5)
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(g, r)


def test_class_remapping_by_name():
    src, dst = _detector(2), _detector(3)
    with torch.no_grad():
        src.head.yolox_head.cls_preds[0].bias.copy_(torch.tensor([1.0, 2.0]))
    dst.map_cls_weights(src.state_dict(), ["car", "pedestrian"], ["pedestrian", "bus", "car"])
    b = dst.head.yolox_head.cls_preds[0].bias
    assert b[0].item() == 2.0 and b[2].item() == 1.0 and abs(b[1].item() + math.log(99)) < 1e-5


def test_upsample_equals_torch_nearest_exact():
    import torch.nn.functional as F

    from evdet.models.yolox_pafpn import upsample_to

    for (h, w), (oh, ow) in [((4, 5), (8, 10)), ((8, 10), (15, 19)), ((3, 7), (5, 13))]:
        x = torch.rand(2, 3, h, w)
        ref = F.interpolate(x, size=[oh, ow], mode="nearest-exact")
        assert torch.equal(upsample_to(x, torch.zeros(1, 1, oh, ow)), ref)
    x = torch.rand(1, 2, 4, 5)
    assert torch.equal(upsample_to(x, torch.zeros(1, 1, 8, 10)),
                       F.interpolate(x, scale_factor=2, mode="nearest-exact"))  # RVT's call


def test_loss_terms_hand_computed():
    from evdet.models.yolox_loss import yolox_loss

    grid, strides = anchor_grid([[2, 2]], [8], torch.device("cpu"), torch.float32)
    gt = torch.tensor([[0.0, 0.0, 16.0, 16.0, 1.0]])  # centre (8, 8): all four cells in the centre prior
    boxes = torch.tensor([[[8.0, 8.0, 16.0, 16.0]] * 4])
    boxes[0, 0] = torch.tensor([12.0, 8.0, 16.0, 16.0])  # IoU 8·16 / (2·256 − 128) = 1/3
    # dynamic k = int(1/3 + 1 + 1 + 1) = 3: the three exact boxes (lower cost) are foreground
    out = yolox_loss(boxes, torch.zeros(1, 4), torch.zeros(1, 4, 2), torch.zeros(1, 4, 4), grid, strides,
                     [gt])
    log2 = math.log(2.0)
    assert abs(out["loss_iou"].item()) < 1e-6  # 5 · Σ (1 − 1²) / 3
    assert abs(out["loss_obj"].item() - 4 * log2 / 3) < 1e-6  # BCE(0, ·) = log 2 on all 4 anchors
    # class targets IoU · onehot = (0, 1): BCE(0, 0) + BCE(0, 1) = 2 log 2 per foreground anchor
    assert abs(out["loss_cls"].item() - 2 * log2) < 1e-6
    assert abs(out["loss"].item() - (4 * log2 / 3 + 2 * log2)) < 1e-6
    assert abs(out["fg_per_gt"].item() - 3.0) < 1e-6
    assert "loss_l1" not in out  # off unless enabled, as in RVT

    # YOLOX's L1 term on the raw outputs of the 3 foreground cells (1, 0), (0, 1), (1, 1): targets
    # (cx/8 − gx, cy/8 − gy, log(16/8 + 1e-8), log(16/8 + 1e-8)) = (0, 1, ·), (1, 0, ·), (0, 0, ·)
    raw = torch.zeros(1, 4, 4)
    raw[0, 0] = 100.0  # the background anchor's raw outputs do not count
    raw[0, 3] = torch.tensor([0.25, -0.5, 0.0, 1.0])
    out_l1 = yolox_loss(boxes, torch.zeros(1, 4), torch.zeros(1, 4, 2), raw, grid, strides, [gt], use_l1=True)
    l1 = ((1 + 2 * log2) + (1 + 2 * log2) + (0.25 + 0.5 + log2 + abs(1 - log2))) / 3
    assert abs(out_l1["loss_l1"].item() - l1) < 1e-6
    assert abs(out_l1["loss"].item() - (out["loss"].item() + l1)) < 1e-6
    for name in ("loss_iou", "loss_obj", "loss_cls"):
        assert out_l1[name].item() == out[name].item()


def test_compute_loss_is_rvts_training_step():
    """RVT's training step: the backbone bin by bin on every frame (state carried), then PAFPN + head + loss
    once, in train mode, on the features of the labelled frames concatenated t-major (BatchNorm statistics
    over those frames only); targets of unlabelled frames are ignored."""
    from evdet.inference.model_config import ModelConfig, RVTConfig, YoloxHeadConfig, build_detector

    torch.manual_seed(0)
    config = ModelConfig(backbone="rvt-t", head="yolox", rvt=RVTConfig(partition_split_32=1),
                         yolox=YoloxHeadConfig(depth=0.33))
    det = build_detector(config, 20, 2).train()
    x = torch.randint(0, 11, (4, 2, 20, 30, 45)).float() * (torch.rand(4, 2, 20, 30, 45) < 0.2)  # → 32×64
    labelled = torch.tensor([[False, False], [True, False], [False, True], [True, True]])
    box = torch.tensor([[2.0, 3.0, 20.0, 22.0, 1.0], [10.0, 5.0, 40.0, 25.0, 0.0]])
    shift = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0])
    targets = [[box[: 1 + (t + b) % 2] + t * shift for b in range(2)] for t in range(4)]
    det.reset_all()
    got = det.compute_loss(x, targets, labelled)
    det.reset_all()
    per_bin = [det.backbone(x[t:t + 1]) for t in range(4)]  # each level [1, B, C, H, W]
    columns = [(t, b) for t in range(4) for b in range(2) if labelled[t, b]]
    feats = [torch.stack([per_bin[t][lvl][0, b] for t, b in columns]) for lvl in range(len(per_bin[0]))]
    ref = det.head.loss(feats, [targets[t][b] for t, b in columns], 30, 45)
    for name in ("loss", "loss_iou", "loss_obj", "loss_cls"):
        torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-6)
    targets[0][0] = torch.tensor([[0.0, 0.0, 29.0, 44.0, 1.0]])  # an unlabelled frame's boxes
    det.reset_all()
    torch.testing.assert_close(det.compute_loss(x, targets, labelled)["loss"], got["loss"])


def test_inference_runs_the_head_bin_by_bin_and_the_loss_on_all_labelled_frames():
    """As RVT: ``forward`` / ``detect`` run the PAFPN + head on each bin's B frames (the same batch sizes,
    so the same float32 kernels, as a bin-by-bin reference), bit for bit; ``compute_loss`` runs it once
    on all labelled frames."""
    det = _detector().eval()
    x = torch.rand(3, 2, 2, 64, 64)
    sizes = []

    def record_batch_size(module, args):
        sizes.append(args[0][0].shape[0])

    hook = det.head.fpn.register_forward_pre_hook(record_batch_size)
    det.reset_all()
    got = det.detect(x, 0.0, 0.45, 5)
    det.reset_all()
    out = det(x)[0]
    hook.remove()
    assert sizes == [2] * 6
    det.reset_all()
    levels = det.backbone(x)
    for t in range(3):
        bin_levels = [f[t] for f in levels]
        ref = det.head.detect(bin_levels, 64, 64, 0.0, 0.45, 5)
        for b in range(2):
            torch.testing.assert_close(got[2 * t + b], ref[b], rtol=0, atol=0)
        torch.testing.assert_close(out[2 * t:2 * t + 2], det.head(bin_levels, 64, 64)[0], rtol=0, atol=0)
    det.reset_all()
    scripted = torch.jit.script(det).detect(x, 0.0, 0.45, 5)
    for r, g in zip(got, scripted, strict=True):
        torch.testing.assert_close(g, r, rtol=0, atol=0)
    sizes.clear()
    labelled = torch.tensor([[True, False], [False, False], [True, True]])
    targets = [[torch.tensor([[8.0, 8.0, 40.0, 30.0, 1.0]])] * 2 for _ in range(3)]
    det.train().reset_all()
    hook = det.head.fpn.register_forward_pre_hook(record_batch_size)
    det.compute_loss(x, targets, labelled)
    hook.remove()
    assert sizes == [3]
