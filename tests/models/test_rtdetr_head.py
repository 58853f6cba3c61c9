"""evdet.models.rtdetr_decoder / rtdetr_head: proposals, query selection, refinement, denoising isolation,
gradients, decoding, class remapping and an overfit run."""

import math

import pytest
import torch
from detectors import RTDETR_SMALL, rtdetr_detector
from torch import nn

from evdet.models.denoising import denoising_groups, inverse_sigmoid
from evdet.models.rtdetr_decoder import RTDETRDecoder, anchor_proposals
from evdet.models.rtdetr_head import RTDETRHead
from evdet.ops import box_iou

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")]


def _feats(n=2, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, 4, 6, generator=g), torch.randn(n, d, 2, 3, generator=g),
            torch.randn(n, d, 1, 2, generator=g)]


def _decoder(**kw):
    torch.manual_seed(0)
    options = dict(hidden_dim=16, num_queries=5, dec_layers=2, nheads=2, dim_feedforward=32, num_points=2)
    options.update(kw)
    return RTDETRDecoder([16, 16, 16], 3, **options).eval()


def test_anchor_proposals_hand_computed():
    anchors, valid = anchor_proposals([(2, 2), (1, 60)])
    centres = torch.tensor([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    expected = torch.cat([centres, torch.full((4, 2), 0.05)], 1)
    torch.testing.assert_close(anchors[0, :4], torch.log(expected / (1 - expected)))
    # level 1: side 0.1; x centre of cell 0 is 0.5 / 60 < 0.01: invalid, +inf
    assert bool(torch.isinf(anchors[0, 4]).all()) and not bool(valid[0, 4, 0])
    assert bool(valid[0, 5, 0]) and anchors[0, 5, 2] == pytest.approx(math.log(0.1 / 0.9))


class _FixedScores(nn.Module):
    """Stands in for ``enc_score_head``: returns given logits whatever the tokens."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits.to(x.dtype)


def test_query_selection_takes_the_top_k_tokens_by_best_class_logit():
    dec = _decoder()
    feats = _feats()
    s = 24 + 6 + 2
    logits = torch.full((2, s, 3), -5.0)
    picks = [[3, 30, 7, 12, 0], [31, 1, 2, 29, 17]]  # in descending order of score
    for b, idx in enumerate(picks):
        for rank, tok in enumerate(idx):
            logits[b, tok, rank % 3] = 5.0 - rank  # best class of each picked token differs
    dec.enc_score_head = _FixedScores(logits)
    out_logits, out_boxes, enc_logits, enc_boxes = dec(feats)
    for b, idx in enumerate(picks):
        torch.testing.assert_close(enc_logits[b], logits[b, idx])
    # the proposals' boxes are the picked tokens' anchors plus the (zero-initialised) box head offsets
    anchors, _ = anchor_proposals([(4, 6), (2, 3), (1, 2)])
    torch.testing.assert_close(enc_boxes[0], anchors[0, picks[0]].sigmoid(), atol=1e-6, rtol=0)
    assert out_logits.shape == (2, 2, 5, 3) and out_boxes.shape == (2, 2, 5, 4)


def test_box_refinement_in_both_directions():
    dec = _decoder()
    feats = _feats()
    with torch.no_grad():
        _, boxes, _, enc_boxes = dec(feats)
        # zero-initialised box heads: every layer keeps the proposals' boxes
        torch.testing.assert_close(boxes[0], enc_boxes)
        torch.testing.assert_close(boxes[1], enc_boxes)
        delta = torch.tensor([0.5, -0.5, 1.0, -1.0])
        dec.dec_bbox_head[0].layers[-1].bias.copy_(delta)
        _, boxes, _, enc_boxes = dec(feats)
    expected = (inverse_sigmoid(enc_boxes) + delta).sigmoid()  # σ(δ + σ⁻¹(ref))
    torch.testing.assert_close(boxes[0], expected)
    torch.testing.assert_close(boxes[1], boxes[0])  # layer 1 refines layer 0's box by 0
    assert bool((boxes[0][..., 0] > enc_boxes[..., 0]).all())  # δ > 0 moves right, δ < 0 shrinks
    assert bool((boxes[0][..., 3] < enc_boxes[..., 3]).all())


def test_look_forward_twice_in_training_only():
    dec = _decoder().train()
    feats = _feats()
    with torch.no_grad():
        dec.dec_bbox_head[1].layers[-1].bias.fill_(0.3)
    _, boxes, _, _ = dec(feats)
    boxes[1].sum().backward()  # layer 1's box is built on layer 0's non-detached box
    assert dec.dec_bbox_head[0].layers[-1].bias.grad.abs().sum() > 0


def test_denoising_queries_do_not_leak_into_the_matching_queries():
    dec = _decoder()
    feats = _feats()
    labels = [torch.tensor([0, 2]), torch.tensor([1])]
    boxes = [torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.2, 0.3, 0.1, 0.1]]), torch.tensor([[0.6, 0.4, 0.3, 0.2]])]
    torch.manual_seed(0)
    dn = denoising_groups(labels, boxes, 3, 5, num_denoising=6)
    with torch.no_grad():
        plain_logits, plain_boxes, _, _ = dec(feats)
        logits, out_boxes, _, _ = dec(feats, dn.labels, dn.boxes_unact, dn.attn_mask)
        assert logits.shape[2] == dn.num_denoising + 5
        torch.testing.assert_close(logits[:, :, dn.num_denoising:], plain_logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(out_boxes[:, :, dn.num_denoising:], plain_boxes, atol=1e-5, rtol=0)
        # without the mask the denoising queries do change the matching queries
        leaked, _, _, _ = dec(feats, dn.labels, dn.boxes_unact, None)
        assert (leaked[:, :, dn.num_denoising:] - plain_logits).abs().max() > 1e-4


def _targets():
    return [torch.tensor([[4.0, 4.0, 20.0, 30.0, 0.0], [30.0, 10.0, 60.0, 40.0, 1.0]]), torch.zeros(0, 5),
            torch.tensor([[1.0, 1.0, 10.0, 10.0, 1.0]])]


def test_loss_reaches_every_parameter_and_logs_the_parts():
    torch.manual_seed(0)
    det = rtdetr_detector(2, 2, 4, 8)
    with torch.no_grad():  # the box heads' last layers start at zero, which blocks the layers before them
        for mlp in [det.head.decoder.enc_bbox_head, *det.head.decoder.dec_bbox_head]:
            mlp.layers[-1].weight.normal_(std=0.01)
    x = torch.rand(1, 3, 2, 48, 64)
    out = det.compute_loss(x, [_targets()], torch.ones(1, 3, dtype=torch.bool))
    assert set(RTDETRHead.loss_names) <= set(out) and "loss_vfl_dn_1" in out and "loss_giou_enc" in out
    assert 0.0 <= float(out["matched_iou"]) <= 1.0
    out["loss"].backward()
    missing = [n for n, p in det.head.named_parameters()
               if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert missing == [], missing
    assert det.backbone.levels[0].conv_x2h.weight.grad.abs().sum() > 0  # and on into the backbone


def test_detect_without_and_with_nms_and_scores_descending():
    torch.manual_seed(0)
    det = rtdetr_detector(2, 2, 4, 8).eval()
    x = torch.rand(1, 2, 2, 48, 64)
    with torch.no_grad():
        dets = det.detect(x, score_thresh=0.0, nms_thresh=0.5, max_detections=7)
    assert len(dets) == 2 and all(d.shape == (7, 6) for d in dets)
    for d in dets:
        assert bool((d[1:, 4] <= d[:-1, 4]).all()) and bool((d[:, :4] >= 0).all())
        assert bool((d[:, 2] <= 64).all()) and bool((d[:, 3] <= 48).all())
    det.head.nms = True
    det.reset_all()
    with torch.no_grad():
        with_nms = det.detect(x, score_thresh=0.0, nms_thresh=0.01, max_detections=100)
    for d in with_nms:  # no two boxes of one class overlap after NMS at IoU 0.01
        for c in (0.0, 1.0):
            b = d[d[:, 5] == c, :4]
            iou = box_iou(b, b) - torch.eye(b.shape[0])
            assert b.shape[0] == 0 or float(iou.max()) <= 0.01


def test_class_logit_layers_remap_by_name():
    torch.manual_seed(0)
    src = rtdetr_detector(2, 2, 4, 8)
    dst = rtdetr_detector(2, 3, 4, 8)
    dst.map_cls_weights(src.state_dict(), ["car", "pedestrian"], ["pedestrian", "bike", "car"])
    s, d = src.head.decoder, dst.head.decoder
    for a, b in [(s.enc_score_head, d.enc_score_head), (s.dec_score_head[1], d.dec_score_head[1])]:
        torch.testing.assert_close(b.weight[0], a.weight[1])
        torch.testing.assert_close(b.weight[2], a.weight[0])
    torch.testing.assert_close(d.denoising_class_embed.weight[0], s.denoising_class_embed.weight[1])
    # the padding row comes last
    torch.testing.assert_close(d.denoising_class_embed.weight[3], s.denoising_class_embed.weight[2])


def test_bad_options():
    with pytest.raises(ValueError, match="RTDETRHead: needs three levels"):
        RTDETRHead([8], [8], 2)
    with pytest.raises(ValueError, match="num_denoising"):
        RTDETRHead([8, 8, 8], [8, 16, 32], 2, num_denoising=-1)
    with pytest.raises(ValueError, match="loss weights"):
        RTDETRHead([8, 8, 8], [8, 16, 32], 2, loss_giou=-1.0)


def test_overfits_a_handful_of_frames():
    """Four frames of two recordings, 150 steps on CPU: every ground truth is found at IoU > 0.8 with its
    class among the confident detections."""
    torch.manual_seed(0)
    det = rtdetr_detector(2, 2, 8, 16, **{**RTDETR_SMALL, "hidden_dim": 32, "nheads": 4, "enc_ffn": 64,
                                         "dec_ffn": 64, "num_denoising": 20})
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(2, 2, 2, 32, 48, generator=g) < 0.05).float()
    targets = [[torch.tensor([[4.0, 4.0, 18.0, 20.0, 0.0], [26.0, 6.0, 44.0, 28.0, 1.0]]),
                torch.tensor([[10.0, 12.0, 30.0, 30.0, 1.0]])],
               [torch.tensor([[5.0, 4.0, 19.0, 20.0, 0.0], [27.0, 6.0, 45.0, 28.0, 1.0]]),
                torch.tensor([[12.0, 12.0, 32.0, 30.0, 1.0]])]]
    labeled = torch.ones(2, 2, dtype=torch.bool)
    opt = torch.optim.AdamW(det.parameters(), lr=2e-3)
    for _ in range(150):
        det.reset_all()
        loss = det.compute_loss(x, targets, labeled)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    det.eval()
    det.reset_all()
    with torch.no_grad():
        dets = det.detect(x, score_thresh=0.3, nms_thresh=0.5, max_detections=20)
    for t in range(2):
        for b in range(2):
            d, gt = dets[t * 2 + b], targets[t][b]
            for row in gt:
                same = d[d[:, 5] == row[4]]
                best = float(box_iou(row[None, :4], same[:, :4]).max()) if same.shape[0] else 0.0
                assert best > 0.8, (t, b, row.tolist(), best)
