import math

import pytest
import torch

from evdet.models import ANCHOR_LISTS, AnchorLayer, Anchors, batched_decode, decode, encode
from evdet.ops import box_iou, box_xyxy_to_cxcywh, decode_boxes

VANILLA_STRIDES = [8, 16, 32, 64, 128]


def _sizes(h, w, strides=VANILLA_STRIDES):
    return [[math.ceil(h / s), math.ceil(w / s)] for s in strides]


def test_psee_anchor_sizes_and_layout():
    layer = AnchorLayer(32.0, ANCHOR_LISTS["PSEE_ANCHORS"])
    a = layer(2, 3, 16, 24)  # stride 8
    assert a.shape == (2 * 3 * 6, 4)
    c = box_xyxy_to_cxcywh(a).view(2, 3, 6, 4)
    # row i, column j centre at ((j + .5) * 8, (i + .5) * 8)
    torch.testing.assert_close(c[1, 2, 0, :2], torch.tensor([20.0, 12.0]))
    wh = c[0, 0, :, 2:]
    expected = [(1 / 3, 1), (1 / 2, 1), (1, 1), (1, 1.5), (2, 1), (3, 1)]
    for k, (r, s) in enumerate(expected):
        assert wh[k, 0].item() == pytest.approx(s * 32 * math.sqrt(r), rel=1e-6)
        assert wh[k, 1].item() == pytest.approx(s * 32 / math.sqrt(r), rel=1e-6)


@pytest.mark.parametrize("h,w", [(240, 304), (720, 1280), (96, 128)])
def test_centres_inside_image_at_every_level(h, w):
    anchors = Anchors(5, "PSEE_ANCHORS")
    sizes = _sizes(h, w)
    a = anchors(sizes, h, w)
    assert a.shape[0] == sum(fh * fw * 6 for fh, fw in sizes)
    start = 0
    for fh, fw in sizes:
        c = box_xyxy_to_cxcywh(a[start : start + fh * fw * 6])[:, :2]
        start += fh * fw * 6
        assert (c[:, 0] > 0).all() and (c[:, 0] < w).all() and (c[:, 1] > 0).all() and (c[:, 1] < h).all()
        # true stride: the last centre is half a cell from the border
        assert c[:, 0].max().item() == pytest.approx(w - w / fw / 2, rel=1e-5)
        assert c[:, 1].max().item() == pytest.approx(h - h / fh / 2, rel=1e-5)


def test_cache_is_invalidated_on_any_shape_change():
    anchors = Anchors(2, "COCO_ANCHORS")
    a1 = anchors([[4, 5], [2, 3]], 32, 40)
    assert anchors([[4, 5], [2, 3]], 32, 40) is a1
    a2 = anchors([[4, 5], [2, 2]], 32, 40)  # only the last level changes
    assert a2.shape[0] == (20 + 4) * 9
    a3 = anchors([[4, 5], [2, 2]], 32, 36)  # only the image size changes
    assert not torch.equal(a3, a2)
    fresh = Anchors(2, "COCO_ANCHORS")([[4, 5], [2, 2]], 32, 36)
    assert torch.equal(a3, fresh)


def test_anchor_list_by_name_or_pairs():
    assert Anchors(1, [(1.0, 1.0), (2.0, 0.5)]).num_anchors == 2
    with pytest.raises(ValueError, match="PSEE_ANCHORS"):
        Anchors(1, "YOLO")
    with pytest.raises(ValueError, match="entry 1"):
        Anchors(1, [(1.0, 1.0), (0.0, 1.0)])


def _gen_targets(rng, n_frames, h, w):
    out = []
    for i in range(n_frames):
        n = int(rng.integers(0, 5)) if i else 0  # frame 0 has no boxes
        xy = rng.uniform(0, [w - 40, h - 40], (n, 2))
        wh = rng.uniform(6, 40, (n, 2))
        cls = rng.integers(0, 3, (n, 1))
        out.append(torch.tensor(
            [[*p, *(p + s), c[0]] for p, s, c in zip(xy, wh, cls, strict=True)], dtype=torch.float32
        ).view(n, 5))
    return out


def test_encode_round_trip_and_low_quality_matches(rng):
    h, w = 120, 152
    anchors = Anchors(4, "PSEE_ANCHORS", base_size=16)(_sizes(h, w, [8, 16, 32, 64]), h, w)
    targets = _gen_targets(rng, 6, h, w)
    c = 3  # classes 0..2; background label C = 3
    loc, cls = encode(anchors, targets, c)
    assert loc.shape == (6, anchors.shape[0], 4) and cls.shape == (6, anchors.shape[0])
    pos_all = (cls >= 0) & (cls < c)
    assert not pos_all[0].any()
    for f, tg in enumerate(targets):
        pos = pos_all[f]
        dec = decode_boxes(loc[f][pos], anchors[pos])
        iou = box_iou(dec, tg[:, :4]) if tg.shape[0] else torch.zeros(0, 0)
        if pos.any():
            # every positive anchor decodes exactly to a GT box of its class
            best, j = iou.max(1)
            torch.testing.assert_close(best, torch.ones_like(best), rtol=1e-4, atol=1e-4)
            assert torch.equal(tg[j, 4].long(), cls[f][pos])
        # every GT has at least one positive anchor
        matched = iou.max(0)[0] if pos.any() else torch.zeros(tg.shape[0])
        assert (matched > 0.999).all()
    # ignore band exists and is between the thresholds
    iou_all = box_iou(anchors, torch.cat(targets)[:, :4])
    assert (cls == -1).any()
    assert loc[~pos_all].abs().sum() == 0
    assert ((cls == -1) | (cls == c) | pos_all).all()
    # without low-quality matching some small GT gets no positive at all
    _, cls_strict = encode(anchors, targets, c, allow_low_quality_matches=False)
    assert ((cls_strict >= 0) & (cls_strict < c)).sum() < pos_all.sum()
    assert (iou_all.max(0)[0] < 0.5).any()


def test_encode_batched_equals_per_frame_and_keeps_targets(rng):
    h, w = 64, 80
    anchors = Anchors(3, "PSEE_ANCHORS")(_sizes(h, w, [8, 16, 32]), h, w)
    targets = _gen_targets(rng, 4, h - 20, w - 20)
    copies = [t.clone() for t in targets]
    loc, cls = encode(anchors, targets, 3, 0.6, 0.2)
    for f, tg in enumerate(targets):
        lf, cf = encode(anchors, [tg], 3, 0.6, 0.2)
        torch.testing.assert_close(lf[0], loc[f])
        assert torch.equal(cf[0], cls[f])
        assert torch.equal(tg, copies[f])
    with pytest.raises(ValueError, match=r"targets\[1\]"):
        encode(anchors, [torch.zeros(0, 5), torch.zeros(3, 4)], 3)


def test_decode_nms_topk_threshold_and_max_detections():
    anchors = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [50, 50, 60, 60]])
    loc = torch.zeros(1, 4, 4)
    logits = torch.full((1, 4, 3), -10.0)
    logits[0, 0, 0] = 5  # class 0, best
    logits[0, 1, 0] = 4  # class 0, overlaps anchor 0 (IoU 0.82): suppressed
    logits[0, 2, 1] = 3  # class 1, same box as anchor 0: kept (class-wise NMS)
    logits[0, 3, 2] = 5  # background (last)
    logits[0, 3, 1] = 4.9  # class 1, ~0.48 score: below 0.5 threshold
    det = decode(loc[0], logits[0], anchors, 40, 40, score_thresh=0.5, nms_thresh=0.5)[0]
    assert det.shape == (2, 6)
    assert det[:, 5].tolist() == [0.0, 1.0]
    assert (det[1:, 4] <= det[:-1, 4]).all()
    assert det[:, :4].tolist() == [[0, 0, 10, 10], [0, 0, 10, 10]]
    assert decode(loc[0], logits[0], anchors, 40, 40, 0.5, 0.5, max_detections=1)[0].shape == (1, 6)
    assert decode(loc[0], logits[0], anchors, 40, 40, 0.5, 0.5, top_k=1)[0].shape == (1, 6)
    # boxes are clipped to the image
    big = decode(torch.tensor([[0.0, 0, 20, 20]] * 4), logits[0], anchors, 40, 40, 0.5, 0.5)[0]
    assert big[:, :4].min() >= 0 and big[:, [0, 2]].max() <= 40 and big[:, [1, 3]].max() <= 40


def test_batched_decode_equals_per_frame(rng):
    torch.manual_seed(0)
    h, w = 96, 128
    anchors = Anchors(3)(_sizes(h, w, [8, 16, 32]), h, w)
    loc = torch.randn(5, anchors.shape[0], 4) * 0.5
    cls = torch.randn(5, anchors.shape[0], 4) * 2
    batched = batched_decode(loc, cls, anchors, h, w, 0.2, 0.5, 30, 200)
    assert len(batched) == 5
    for f in range(5):
        single = decode(loc[f], cls[f], anchors, h, w, 0.2, 0.5, 30, 200)[0]
        assert torch.equal(single, batched[f])
        assert 0 < single.shape[0] <= 30


def test_declared_strides_space_the_anchors_of_a_padded_input_like_the_image_cells():
    """A backbone padding 240x304 to 256x320 (RVT): levels 64x80 ... 8x10 at strides 4 ... 32."""
    h, w, strides = 240, 304, [4, 8, 16, 32]
    padded = [[256 // s, 320 // s] for s in strides]
    anchors = Anchors(4, [(1.0, 1.0)], base_size=8, strides=strides)(padded, h, w)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    level0 = centres[:64 * 80].view(64, 80, 2)
    assert torch.allclose(level0[1:, 0, 1] - level0[:-1, 0, 1], torch.tensor(4.0))  # not 240 / 64
    assert torch.allclose(level0[0, 1:, 0] - level0[0, :-1, 0], torch.tensor(4.0))
    last = centres[-80:].view(8, 10, 2)
    assert torch.allclose(last[1, 0, 1] - last[0, 0, 1], torch.tensor(30.0))  # ceil(240/32) = 8 rows: 240/8
    ceil_sizes = [[math.ceil(h / s), math.ceil(w / s)] for s in strides]  # unpadded levels: no change
    assert torch.equal(Anchors(4, "PSEE_ANCHORS", strides=strides)(ceil_sizes, h, w),
                       Anchors(4, "PSEE_ANCHORS")(ceil_sizes, h, w))
