"""Vectorised COCO bounding-box evaluation, numerically identical to pycocotools' ``COCOeval('bbox')``.

The protocol of SPEC 6 scores tens of thousands of images with millions of pooled detections; building
one Python dict per box (pycocotools, faster-coco-eval) dominates the run time there. This module runs
the same algorithm on flat arrays:

* per (image, category): detections sorted by descending score (stable, ties keep annotation order) and
  truncated to ``max(max_dets)``; ground truth outside an area range is "ignored" and sorted last;
  greedy matching per IoU threshold exactly as ``COCOeval.evaluateImg`` (a detection takes the
  not-yet-matched ground truth of highest IoU ≥ threshold, later ground truth winning IoU ties,
  non-ignored ground truth before ignored); unmatched detections outside the area range are ignored;
* per category: detections of all images concatenated in image order, stable-sorted by score, cumulative
  TP/FP, interpolated precision at the 101 recall thresholds, as ``COCOeval.accumulate``;
* ``summarize_stats`` gives the 12 numbers of ``COCOeval.summarize`` (−1 where undefined).

IoU is computed in float64 with pycocotools' formula; areas are whatever the caller passes (the protocol
passes ``w·h`` in float32, as the published evaluator does). The numba kernels run as plain Python through
their ``py_func`` attribute (the reference they are tested against, with pycocotools itself).
"""

from __future__ import annotations

import numba
import numpy as np

IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
"""The 10 COCO IoU thresholds 0.5:0.05:0.95 (same float values as pycocotools)."""
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
"""The 101 COCO recall thresholds 0:0.01:1."""
MAX_DETS = (1, 10, 100)
AREA_RANGES = ((0.0, 1e5**2), (0.0, 32.0**2), (32.0**2, 96.0**2), (96.0**2, 1e5**2))
AREA_LABELS = ("all", "small", "medium", "large")

# Per-detection outcome at one IoU threshold and area range.
_FP, _TP, _IGNORED = 0, 1, 2


@numba.njit(cache=True)
def _match_groups(gt_start, gt_end, dt_start, dt_end, gt_boxes, gt_area, dt_boxes, dt_area,
                  lo, hi, iou_thrs, state):  # pragma: no cover - compiled; py_func is tested
    """Greedy COCO matching of every (image, category) group for one area range ``[lo, hi]``.

    ``gt_boxes[g]``/``dt_boxes[d]`` are float64 xywh; the detections of a group are already sorted by
    descending score and truncated. Writes ``state[T, n_dt]`` (0 FP, 1 TP, 2 ignored).
    """
    n_thr = iou_thrs.shape[0]
    for grp in range(gt_start.shape[0]):
        g0, g1 = gt_start[grp], gt_end[grp]
        d0, d1 = dt_start[grp], dt_end[grp]
        ng = g1 - g0
        nd = d1 - d0
        if nd == 0:
            continue
        # ground truth order: not ignored first, then ignored (stable)
        order = np.empty(ng, np.int64)
        ig = np.empty(ng, np.bool_)
        k = 0
        for pass_ig in range(2):
            for j in range(ng):
                a = gt_area[g0 + j]
                is_ig = a < lo or a > hi
                if is_ig == (pass_ig == 1):
                    order[k] = g0 + j
                    ig[k] = is_ig
                    k += 1
        ious = np.zeros((nd, ng))
        for j in range(ng):
            g = order[j]
            gx, gy, gw, gh = gt_boxes[g, 0], gt_boxes[g, 1], gt_boxes[g, 2], gt_boxes[g, 3]
            ga = gw * gh
            for i in range(nd):
                d = d0 + i
                dx, dy, dw, dh = dt_boxes[d, 0], dt_boxes[d, 1], dt_boxes[d, 2], dt_boxes[d, 3]
                da = dw * dh
                w = min(dw + dx, gw + gx) - max(dx, gx)
                if w <= 0:
                    continue
                h = min(dh + dy, gh + gy) - max(dy, gy)
                if h <= 0:
                    continue
                inter = w * h
                ious[i, j] = inter / (da + ga - inter)
        gtm = np.zeros(ng, np.bool_)
        for t in range(n_thr):
            gtm[:] = False
            thr = min(iou_thrs[t], 1 - 1e-10)
            for i in range(nd):
                best = thr
                m = -1
                for j in range(ng):
                    if gtm[j]:
                        continue
                    if m > -1 and not ig[m] and ig[j]:
                        break
                    if ious[i, j] < best:
                        continue
                    best = ious[i, j]
                    m = j
                d = d0 + i
                if m == -1:
                    a = dt_area[d]
                    state[t, d] = _IGNORED if (a < lo or a > hi) else _FP
                else:
                    gtm[m] = True
                    state[t, d] = _IGNORED if ig[m] else _TP


@numba.njit(cache=True)
def _accumulate_category(state, rank, max_dets, npig, rec_thrs, precision, recall):  # pragma: no cover
    """Precision at ``rec_thrs`` and final recall of one category and area range.

    ``state[T, n]`` and ``rank[n]`` (position of the detection within its image after the score sort) are
    in global descending-score order. Writes ``precision[T, R, M]`` and ``recall[T, M]``.
    """
    n_thr, n = state.shape
    eps = np.spacing(1.0)
    rc = np.empty(n)
    pr = np.empty(n)
    for mi in range(max_dets.shape[0]):
        md = max_dets[mi]
        for t in range(n_thr):
            tp = 0.0
            fp = 0.0
            nd = 0
            for i in range(n):
                if rank[i] >= md:
                    continue
                s = state[t, i]
                if s == _TP:
                    tp += 1.0
                elif s == _FP:
                    fp += 1.0
                rc[nd] = tp / npig
                pr[nd] = tp / (fp + tp + eps)
                nd += 1
            recall[t, mi] = rc[nd - 1] if nd > 0 else 0.0
            for i in range(nd - 1, 0, -1):
                if pr[i] > pr[i - 1]:
                    pr[i - 1] = pr[i]
            p = 0
            for r in range(rec_thrs.shape[0]):
                while p < nd and rc[p] < rec_thrs[r]:
                    p += 1
                precision[t, r, mi] = pr[p] if p < nd else 0.0


def coco_bbox_eval(gt_image: np.ndarray, gt_cat: np.ndarray, gt_xywh: np.ndarray, gt_area: np.ndarray,
                   dt_image: np.ndarray, dt_cat: np.ndarray, dt_xywh: np.ndarray, dt_area: np.ndarray,
                   dt_score: np.ndarray, cat_ids: list[int], use_numba: bool = True,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """COCO ``evaluate`` + ``accumulate`` for boxes given as flat arrays.

    Annotations are given in annotation-id order (ground truth) and result order (detections): this order
    breaks score ties exactly as pycocotools does. Boxes of a category not in ``cat_ids`` are ignored.

    Args:
        gt_image: int ``[G]`` image id of each ground-truth box (any integers; images are sorted by id).
        gt_cat: int ``[G]`` category id.
        gt_xywh: ``[G, 4]`` boxes ``(x, y, w, h)``, pixels.
        gt_area: ``[G]`` areas used for the small/medium/large ranges (pixels²).
        dt_image, dt_cat, dt_xywh, dt_area: the same for ``D`` detections.
        dt_score: ``[D]`` detection scores (finite).
        cat_ids: category ids evaluated, in the output order.
        use_numba: False runs the kernels as plain Python (reference; slow).

    Returns:
        ``precision`` float64 ``[T=10, R=101, K, A=4, M=3]`` and ``recall`` ``[T, K, A, M]``, −1 where a
        category has no non-ignored ground truth (pycocotools' layout and conventions).
    """
    match = _match_groups if use_numba else _match_groups.py_func
    accumulate = _accumulate_category if use_numba else _accumulate_category.py_func
    cat_ids = [int(c) for c in cat_ids]
    n_cat = len(cat_ids)
    precision = -np.ones((len(IOU_THRS), len(REC_THRS), n_cat, len(AREA_RANGES), len(MAX_DETS)))
    recall = -np.ones((len(IOU_THRS), n_cat, len(AREA_RANGES), len(MAX_DETS)))
    if n_cat == 0:
        return precision, recall
    keys_sorted = np.array(sorted(cat_ids), dtype=np.int64)
    key_to_k = np.array([cat_ids.index(int(c)) for c in keys_sorted], dtype=np.int64)

    def cat_idx(cats: np.ndarray) -> np.ndarray:  # [n] index into cat_ids, -1 when not evaluated
        cats = np.asarray(cats, dtype=np.int64)
        pos = np.clip(np.searchsorted(keys_sorted, cats), 0, n_cat - 1)
        return np.where(keys_sorted[pos] == cats, key_to_k[pos], -1)

    g_k = cat_idx(gt_cat)
    d_k = cat_idx(dt_cat)
    all_img = np.unique(np.concatenate([np.asarray(gt_image, np.int64), np.asarray(dt_image, np.int64)]))
    g_img = np.searchsorted(all_img, np.asarray(gt_image, np.int64))
    d_img = np.searchsorted(all_img, np.asarray(dt_image, np.int64))
    n_img = max(len(all_img), 1)

    # ground truth grouped by (category, image), annotation order kept
    g_sel = np.flatnonzero(g_k >= 0)
    g_key = g_k[g_sel] * n_img + g_img[g_sel]
    g_sel = g_sel[np.argsort(g_key, kind="stable")]
    g_key = g_k[g_sel] * n_img + g_img[g_sel]
    # detections grouped by (category, image), descending score (stable), at most max(MAX_DETS) per group
    dt_score = np.asarray(dt_score, dtype=np.float64)
    d_sel = np.flatnonzero(d_k >= 0)
    order = np.lexsort((-dt_score[d_sel], d_k[d_sel] * n_img + d_img[d_sel]))  # stable per key
    d_sel = d_sel[order]
    d_key = d_k[d_sel] * n_img + d_img[d_sel]
    if len(d_key):
        first = np.r_[True, d_key[1:] != d_key[:-1]]
        starts = np.flatnonzero(first)
        rank = np.arange(len(d_key)) - np.repeat(starts, np.diff(np.r_[starts, len(d_key)]))
    else:
        rank = np.zeros(0, np.int64)
    keep = rank < MAX_DETS[-1]
    d_sel, d_key, rank = d_sel[keep], d_key[keep], rank[keep]

    keys = np.union1d(g_key, d_key)
    gt_start = np.searchsorted(g_key, keys, "left")
    gt_end = np.searchsorted(g_key, keys, "right")
    dt_start = np.searchsorted(d_key, keys, "left")
    dt_end = np.searchsorted(d_key, keys, "right")

    gb = np.ascontiguousarray(np.asarray(gt_xywh, dtype=np.float64).reshape(-1, 4)[g_sel])
    ga = np.ascontiguousarray(np.asarray(gt_area, dtype=np.float64)[g_sel])
    db = np.ascontiguousarray(np.asarray(dt_xywh, dtype=np.float64).reshape(-1, 4)[d_sel])
    da = np.ascontiguousarray(np.asarray(dt_area, dtype=np.float64)[d_sel])
    ds = dt_score[d_sel]
    dk = d_k[d_sel]
    gk = g_k[g_sel]

    # per category: global stable sort by descending score of the (image, rank)-ordered detections
    cat_bounds = np.searchsorted(dk, np.arange(n_cat + 1))
    cat_order = [cat_bounds[k] + np.argsort(-ds[cat_bounds[k]:cat_bounds[k + 1]], kind="mergesort")
                 for k in range(n_cat)]
    max_dets = np.array(MAX_DETS, dtype=np.int64)
    state = np.zeros((len(IOU_THRS), len(d_sel)), dtype=np.uint8)
    for a, (lo, hi) in enumerate(AREA_RANGES):
        match(gt_start, gt_end, dt_start, dt_end, gb, ga, db, da, float(lo), float(hi), IOU_THRS, state)
        not_ig = (ga >= lo) & (ga <= hi)
        for k in range(n_cat):
            npig = int(np.count_nonzero(not_ig & (gk == k)))
            if npig == 0:
                continue
            idx = cat_order[k]
            prec = np.zeros((len(IOU_THRS), len(REC_THRS), len(MAX_DETS)))
            rec = np.zeros((len(IOU_THRS), len(MAX_DETS)))
            accumulate(np.ascontiguousarray(state[:, idx]), rank[idx], max_dets, npig, REC_THRS, prec, rec)
            precision[:, :, k, a, :] = prec
            recall[:, k, a, :] = rec
    return precision, recall


def _mean_defined(s: np.ndarray) -> float:
    s = s[s > -1]
    return -1.0 if s.size == 0 else float(np.mean(s))


def summarize_stats(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """The 12 numbers of ``COCOeval.summarize`` for boxes: AP, AP50, AP75, AP_S, AP_M, AP_L (100 dets),
    AR_1, AR_10, AR_100, AR_S, AR_M, AR_L. Each is the mean over defined entries (> −1), −1 if none.

    Args:
        precision: ``[T, R, K, A, M]``; recall: ``[T, K, A, M]`` (from ``coco_bbox_eval``).

    Returns:
        float64 ``[12]``.
    """
    t50 = int(np.where(IOU_THRS == 0.5)[0][0])
    t75 = int(np.where(IOU_THRS == 0.75)[0][0])
    m100 = len(MAX_DETS) - 1
    stats = np.zeros(12)
    stats[0] = _mean_defined(precision[:, :, :, 0, m100])
    stats[1] = _mean_defined(precision[[t50], :, :, 0, m100])
    stats[2] = _mean_defined(precision[[t75], :, :, 0, m100])
    for i, a in enumerate((1, 2, 3)):
        stats[3 + i] = _mean_defined(precision[:, :, :, a, m100])
    for i in range(len(MAX_DETS)):
        stats[6 + i] = _mean_defined(recall[:, :, 0, i])
    for i, a in enumerate((1, 2, 3)):
        stats[9 + i] = _mean_defined(recall[:, :, a, m100])
    return stats


def per_class_ap(precision: np.ndarray) -> np.ndarray:
    """AP (IoU 0.5:0.95, all areas, 100 detections) of each category: float64 ``[K]``, −1 if undefined."""
    return np.array([_mean_defined(precision[:, :, k, 0, -1]) for k in range(precision.shape[2])])
