"""evdet.models.decoding: top-k candidate selection and per-frame NMS regrouping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evdet.models.decoding import nms_per_frame, top_candidates


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _reference(boxes, scores, frame_idx, class_idx, n_frames, thresh, max_det):
    """Plain greedy NMS per (frame, class), rows sorted by score descending, cut to max_det per frame."""
    b, s, f, c = boxes.numpy(), scores.numpy(), frame_idx.numpy(), class_idx.numpy()
    out = []
    for fr in range(n_frames):
        kept = []
        for i in sorted(np.flatnonzero(f == fr), key=lambda i: (-s[i], i)):
            if all(c[j] != c[i] or _iou(b[i], b[j]) <= thresh for j in kept):
                kept.append(i)
        kept = kept[:max_det]
        out.append(np.array([[*b[i], s[i], c[i]] for i in kept], dtype=np.float32).reshape(-1, 6))
    return out


def _random_case(rng, k=60, n_frames=3, num_classes=2):
    xy = rng.uniform(0, 40, (k, 2))
    wh = rng.uniform(5, 20, (k, 2))
    boxes = torch.tensor(np.concatenate([xy, xy + wh], 1), dtype=torch.float32)
    scores = torch.tensor(rng.permutation(k) / k + 0.01, dtype=torch.float32)  # distinct scores
    frame_idx = torch.tensor(rng.integers(0, n_frames, k), dtype=torch.int64)
    class_idx = torch.tensor(rng.integers(0, num_classes, k), dtype=torch.int64)
    return boxes, scores, frame_idx, class_idx


@pytest.mark.parametrize("thresh", [0.3, 0.5])
@pytest.mark.parametrize("max_det", [100, 4])
def test_nms_per_frame_matches_greedy_reference(rng, thresh, max_det):
    boxes, scores, frame_idx, class_idx = _random_case(rng)
    out = nms_per_frame(boxes, scores, frame_idx, class_idx, 3, 2, thresh, max_det)
    ref = _reference(boxes, scores, frame_idx, class_idx, 3, thresh, max_det)
    assert len(out) == 3
    for got, want in zip(out, ref, strict=True):
        assert got.shape[1] == 6 and got.shape[0] <= max_det
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-6)
        assert torch.all(got[1:, 4] <= got[:-1, 4])


def test_nms_per_frame_max_detections_cut_keeps_best(rng):
    boxes, scores, frame_idx, class_idx = _random_case(rng)
    full = nms_per_frame(boxes, scores, frame_idx, class_idx, 3, 2, 2.0, 1000)
    cut = nms_per_frame(boxes, scores, frame_idx, class_idx, 3, 2, 2.0, 5)
    for f, (a, b) in enumerate(zip(full, cut, strict=True)):
        assert a.shape[0] == int((frame_idx == f).sum())  # thresh >= 1: nothing suppressed
        torch.testing.assert_close(b, a[:5])
    zero = nms_per_frame(boxes, scores, frame_idx, class_idx, 3, 2, 0.5, 0)
    assert all(z.shape == (0, 6) for z in zero)


def test_nms_per_frame_thresh_ge_1_equals_no_suppression_and_tie_order():
    boxes = torch.tensor([[0, 0, 10, 10]] * 4, dtype=torch.float32)
    scores = torch.tensor([0.5, 0.9, 0.5, 0.7])
    frame_idx = torch.tensor([1, 1, 1, 1])
    class_idx = torch.tensor([0, 0, 0, 0])
    out = nms_per_frame(boxes, scores, frame_idx, class_idx, 2, 1, 1.0, 10)
    assert out[0].shape == (0, 6)
    assert out[1][:, 4].tolist() == pytest.approx([0.9, 0.7, 0.5, 0.5])
    # identical boxes of one class: NMS below 1 keeps only the best
    out = nms_per_frame(boxes, scores, frame_idx, class_idx, 2, 1, 0.5, 10)
    assert out[1].shape[0] == 1 and out[1][0, 4].item() == pytest.approx(0.9)
    # different classes never suppress each other
    out = nms_per_frame(boxes, scores, frame_idx, torch.tensor([0, 1, 2, 3]), 2, 4, 0.5, 10)
    assert out[1][:, 5].tolist() == [1.0, 3.0, 0.0, 2.0]


def test_nms_per_frame_empty_input():
    e = torch.zeros((0, 4))
    ei = torch.zeros(0, dtype=torch.int64)
    out = nms_per_frame(e, torch.zeros(0), ei, ei, 3, 2, 0.5, 10)
    assert len(out) == 3 and all(o.shape == (0, 6) for o in out)


def test_nms_per_frame_does_not_mutate_inputs(rng):
    boxes, scores, frame_idx, class_idx = _random_case(rng)
    copies = [t.clone() for t in (boxes, scores, frame_idx, class_idx)]
    nms_per_frame(boxes, scores, frame_idx, class_idx, 3, 2, 0.5, 10)
    for a, b in zip(copies, (boxes, scores, frame_idx, class_idx), strict=True):
        assert torch.equal(a, b)


def test_top_candidates_against_numpy(rng):
    n, p, c = 3, 7, 4
    scores = torch.tensor(rng.random((n, p * c)), dtype=torch.float32)
    fi, ii, ci, sc = top_candidates(scores, c, top_k=5, score_thresh=0.3)
    s = scores.numpy()
    rows = []
    for f in range(n):
        order = np.argsort(-s[f], kind="stable")[:5]
        rows += [(f, j // c, j % c, s[f, j]) for j in order if s[f, j] > 0.3]
    assert fi.tolist() == [r[0] for r in rows]
    assert ii.tolist() == [r[1] for r in rows]
    assert ci.tolist() == [r[2] for r in rows]
    np.testing.assert_allclose(sc.numpy(), [r[3] for r in rows])
    assert fi.dtype == ii.dtype == ci.dtype == torch.int64
    # score is the entry at (item, class)
    torch.testing.assert_close(scores[fi, ii * c + ci], sc)


def test_top_candidates_top_k_clamped_and_threshold():
    scores = torch.tensor([[0.2, 0.9, 0.5, 0.1]])
    fi, ii, ci, sc = top_candidates(scores, 2, top_k=100, score_thresh=0.0)
    assert sc.tolist() == pytest.approx([0.9, 0.5, 0.2, 0.1])
    assert ii.tolist() == [0, 1, 0, 1] and ci.tolist() == [1, 0, 0, 1]
    fi, ii, ci, sc = top_candidates(scores, 2, top_k=4, score_thresh=0.5)  # strictly greater
    assert sc.tolist() == pytest.approx([0.9])
    fi, ii, ci, sc = top_candidates(torch.zeros((2, 0)), 2, top_k=4, score_thresh=0.0)
    assert fi.numel() == ii.numel() == ci.numel() == sc.numel() == 0
