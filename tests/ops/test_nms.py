import numpy as np
import pytest
import torch

from evdet.ops import batched_nms, nms, nms_reference

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")]


def _boxes(rng, n, size=300.0, max_wh=60.0, integer=False):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(2, max_wh, (n, 2))
    b = np.concatenate([xy, xy + wh], 1)
    if integer:
        b = np.round(b)
    return torch.tensor(b, dtype=torch.float32)


def _batched_reference(boxes, scores, idxs, thr):
    keep = []
    for c in torch.unique(idxs).tolist():
        sel = (idxs == c).nonzero().view(-1)
        keep.append(sel[nms_reference(boxes[sel], scores[sel], thr)])
    keep = torch.cat(keep) if keep else torch.empty(0, dtype=torch.int64)
    keep = torch.sort(keep)[0]
    return keep[torch.sort(scores[keep], descending=True, stable=True)[1]]


@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_greedy_reference(rng, thr):
    boxes = _boxes(rng, 2000)
    scores = torch.tensor(rng.uniform(0, 1, 2000), dtype=torch.float32)
    keep = nms(boxes, scores, thr)
    assert keep.dtype == torch.int64
    assert torch.equal(keep, nms_reference(boxes, scores, thr))
    assert (scores[keep][:-1] >= scores[keep][1:]).all()


def test_batched_nms_matches_per_class_reference_many_classes_and_duplicates(rng):
    n = 2000
    boxes = _boxes(rng, n, integer=True)
    boxes[100:400] = boxes[:300].clone()  # exact duplicates
    scores = torch.tensor(rng.uniform(0, 1, n), dtype=torch.float32)
    scores[500:600] = scores[600:700]  # tied scores
    idxs = torch.tensor(rng.integers(0, 17, n))
    keep = batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(keep, _batched_reference(boxes, scores, idxs, 0.5))
    # different classes never suppress each other: duplicates of other classes survive
    two = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 10]])
    assert batched_nms(two, torch.tensor([0.9, 0.8]), torch.tensor([0, 1]), 0.5).tolist() == [0, 1]
    assert batched_nms(two, torch.tensor([0.9, 0.8]), torch.tensor([3, 3]), 0.5).tolist() == [0]


def test_iou_exactly_at_threshold_is_not_suppressed():
    # box 1 has IoU 0.5 with box 0, box 2 has IoU 0.4 with box 0 and 0 with box 1
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 5], [0.0, 6, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [0, 1, 2]
    assert nms(boxes, scores, 0.49).tolist() == [0, 2]
    assert nms(boxes, scores, 0.39).tolist() == [0]


def test_chain_longer_than_a_block(rng):
    # each box overlaps only its neighbours: greedy keeps every other box, across block borders
    n = 700
    x = torch.arange(n, dtype=torch.float32) * 6.0
    boxes = torch.stack([x, torch.zeros(n), x + 10, torch.full((n,), 10.0)], 1)
    scores = torch.linspace(1, 0.1, n)
    keep = nms(boxes, scores, 0.2)
    assert torch.equal(keep, nms_reference(boxes, scores, 0.2))
    assert keep.tolist() == list(range(0, n, 2))


def test_empty_and_bad_input():
    e = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert e.dtype == torch.int64 and e.numel() == 0
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5).numel() == 0
    with pytest.raises(ValueError, match="scores"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(ValueError, match="idxs"):
        batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2), 0.5)


def test_nms_is_scriptable_and_does_not_mutate(rng):
    boxes = _boxes(rng, 300)
    scores = torch.tensor(rng.uniform(0, 1, 300), dtype=torch.float32)
    b0, s0 = boxes.clone(), scores.clone()
    scripted = torch.jit.script(batched_nms)
    idxs = torch.tensor(rng.integers(0, 3, 300))
    assert torch.equal(scripted(boxes, scores, idxs, 0.5), batched_nms(boxes, scores, idxs, 0.5))
    assert torch.equal(boxes, b0) and torch.equal(scores, s0)
