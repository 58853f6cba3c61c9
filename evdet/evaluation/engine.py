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
    descending score and truncated. Writes ``state[n_dt, T]`` (0 FP, 1 TP, 2 ignored).
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
        row_max = np.zeros(nd)
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
                if ious[i, j] > row_max[i]:
                    row_max[i] = ious[i, j]
        gtm = np.zeros(ng, np.bool_)
        for t in range(n_thr):
            gtm[:] = False
            thr = min(iou_thrs[t], 1 - 1e-10)
            for i in range(nd):
                best = thr
                m = -1
                # no ground truth reaches the threshold: unmatched (the loop below would find none)
                jmax = ng if row_max[i] >= thr else 0
                for j in range(jmax):
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
                    state[d, t] = _IGNORED if (a < lo or a > hi) else _FP
                else:
                    gtm[m] = True
                    state[d, t] = _IGNORED if ig[m] else _TP


@numba.njit(cache=True)
def _accumulate_category(state, rank, max_dets, npig, rec_thrs, precision, recall):  # pragma: no cover
    """Precision at ``rec_thrs`` and final recall of one category and area range.

    ``state[n, T]`` and ``rank[n]`` (position of the detection within its image after the score sort)
    hold the category's detections in global descending-score order. Writes ``precision[T, R, M]`` and
    ``recall[T, M]``.

    Same numbers as pycocotools' cumulative sums, computed only where they matter: recall rises only at
    true positives, and between two true positives precision can only fall (false positives) or stay
    (ignored detections), so the interpolated precision at a recall threshold is the maximum of
    ``tp / (fp + tp + eps)`` over the true positives from the first one reaching that recall on.
    """
    n, n_thr = state.shape
    eps = np.spacing(1.0)
    tp = np.zeros(n_thr)
    fp = np.zeros(n_thr)
    ntp = np.zeros(n_thr, np.int64)
    cap = max(min(n, npig), 1)  # a true positive uses up one non-ignored ground truth
    rc = np.empty((n_thr, cap))
    pr = np.empty((n_thr, cap))
    for mi in range(max_dets.shape[0]):
        md = max_dets[mi]
        tp[:] = 0.0
        fp[:] = 0.0
        ntp[:] = 0
        nd = 0
        for i in range(n):
            if rank[i] >= md:
                continue
            nd += 1
            for t in range(n_thr):
                s = state[i, t]
                if s == _TP:
                    tp[t] += 1.0
                    j = ntp[t]
                    rc[t, j] = tp[t] / npig
                    pr[t, j] = tp[t] / (fp[t] + tp[t] + eps)
                    ntp[t] = j + 1
                elif s == _FP:
                    fp[t] += 1.0
        for t in range(n_thr):
            recall[t, mi] = tp[t] / npig if nd > 0 else 0.0
            k = ntp[t]
            for j in range(k - 2, -1, -1):
                if pr[t, j + 1] > pr[t, j]:
                    pr[t, j] = pr[t, j + 1]
            p = 0
            for r in range(rec_thrs.shape[0]):
                while p < k and rc[t, p] < rec_thrs[r]:
                    p += 1
                precision[t, r, mi] = pr[t, p] if p < k else 0.0


@numba.njit(cache=True)
def _sort_groups_by_score(score, starts, ends, perm, rank):  # pragma: no cover - compiled; py_func is tested
    """Stable sort by descending score inside each group ``[starts[g], ends[g])``.

    Writes ``perm`` (positions into ``score``, group by group) and ``rank`` (position within the group).
    Ties keep their input order, as pycocotools' mergesort does.
    """
    for g in range(starts.shape[0]):
        s0, s1 = starts[g], ends[g]
        n = s1 - s0
        if n <= 32:  # stable insertion sort
            for i in range(n):
                perm[s0 + i] = s0 + i
            for i in range(1, n):
                cur = perm[s0 + i]
                j = i - 1
                while j >= 0 and score[perm[s0 + j]] < score[cur]:
                    perm[s0 + j + 1] = perm[s0 + j]
                    j -= 1
                perm[s0 + j + 1] = cur
        else:
            order = np.argsort(-score[s0:s1], kind="mergesort")
            for i in range(n):
                perm[s0 + i] = s0 + order[i]
        for i in range(n):
            rank[s0 + i] = i


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` with a fast path for already sorted input (the usual case here)."""
    if a.size > 1 and np.all(a[1:] >= a[:-1]):
        return a[np.r_[True, a[1:] != a[:-1]]]
    return np.unique(a)


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
    sort_groups = _sort_groups_by_score if use_numba else _sort_groups_by_score.py_func
    accumulate = _accumulate_category if use_numba else _accumulate_category.py_func
    cat_ids = [int(c) for c in cat_ids]
    n_cat = len(cat_ids)
    precision = -np.ones((len(IOU_THRS), len(REC_THRS), n_cat, len(AREA_RANGES), len(MAX_DETS)))
    recall = -np.ones((len(IOU_THRS), n_cat, len(AREA_RANGES), len(MAX_DETS)))
    if n_cat == 0:
        return precision, recall
    if len(set(cat_ids)) != n_cat:
        raise ValueError(f"coco_bbox_eval: duplicate category ids in {cat_ids}")
    cat_arr = np.array(cat_ids, dtype=np.int64)
    if cat_arr.min() >= 0 and cat_arr.max() < 1 << 20:
        lut = np.full(int(cat_arr.max()) + 2, -1, dtype=np.int64)  # last slot: out-of-range ids
        lut[cat_arr] = np.arange(n_cat)

        def cat_idx(cats: np.ndarray) -> np.ndarray:  # [n] index into cat_ids, -1 when not evaluated
            cats = np.asarray(cats, dtype=np.int64)
            return lut[np.where((cats >= 0) & (cats < len(lut) - 1), cats, len(lut) - 1)]
    else:
        keys_sorted = np.sort(cat_arr)
        key_to_k = np.argsort(cat_arr, kind="stable")

        def cat_idx(cats: np.ndarray) -> np.ndarray:
            cats = np.asarray(cats, dtype=np.int64)
            pos = np.clip(np.searchsorted(keys_sorted, cats), 0, n_cat - 1)
            return np.where(keys_sorted[pos] == cats, key_to_k[pos], -1)

    g_k = cat_idx(gt_cat)
    d_k = cat_idx(dt_cat)
    gt_image = np.asarray(gt_image, np.int64)
    dt_image = np.asarray(dt_image, np.int64)
    all_img = np.union1d(_sorted_unique(gt_image), _sorted_unique(dt_image))
    if len(all_img) and all_img[-1] - all_img[0] + 1 == len(all_img):  # contiguous ids (the protocol)
        g_img, d_img = gt_image - all_img[0], dt_image - all_img[0]
    else:
        g_img, d_img = np.searchsorted(all_img, gt_image), np.searchsorted(all_img, dt_image)
    n_img = max(len(all_img), 1)

    # ground truth grouped by (category, image), annotation order kept
    g_sel = np.flatnonzero(g_k >= 0)
    g_key = g_k[g_sel] * n_img + g_img[g_sel]
    g_sel = g_sel[np.argsort(g_key, kind="stable")]
    g_key = g_k[g_sel] * n_img + g_img[g_sel]
    # detections grouped by (category, image), descending score (stable), at most max(MAX_DETS) per group
    dt_score = np.asarray(dt_score, dtype=np.float64)
    d_sel = np.flatnonzero(d_k >= 0)
    key = d_k[d_sel] * n_img + d_img[d_sel]
    if n_cat < 2**15 and np.all(np.diff(d_img[d_sel]) >= 0):
        # images already in order (the protocol's pooling): a radix sort on the small category index
        by_key = np.argsort(d_k[d_sel].astype(np.int16), kind="stable")
    else:
        by_key = np.argsort(key, kind="stable")
    d_sel, d_key = d_sel[by_key], key[by_key]
    if len(d_key):
        starts = np.flatnonzero(np.r_[True, d_key[1:] != d_key[:-1]])
        ends = np.r_[starts[1:], len(d_key)]
    else:
        starts = ends = np.zeros(0, np.int64)
    perm = np.empty(len(d_sel), np.int64)
    rank = np.empty(len(d_sel), np.int64)
    sort_groups(dt_score[d_sel], starts, ends, perm, rank)
    d_sel = d_sel[perm]
    keep = rank < MAX_DETS[-1]
    d_sel, d_key, rank = d_sel[keep], d_key[keep], rank[keep]

    keys = np.union1d(_sorted_unique(g_key), _sorted_unique(d_key))
    gt_start = np.searchsorted(g_key, keys, "left")
    gt_end = np.searchsorted(g_key, keys, "right")
    dt_start = np.searchsorted(d_key, keys, "left")
    dt_end = np.searchsorted(d_key, keys, "right")

    # gather first (inputs may be float32), then widen: IoU and areas are compared in float64
    gb = np.asarray(gt_xywh).reshape(-1, 4)[g_sel].astype(np.float64)
    ga = np.asarray(gt_area)[g_sel].astype(np.float64)
    db = np.asarray(dt_xywh).reshape(-1, 4)[d_sel].astype(np.float64)
    da = np.asarray(dt_area)[d_sel].astype(np.float64)
    ds = dt_score[d_sel]
    dk = d_k[d_sel]
    gk = g_k[g_sel]

    # per category: global stable sort by descending score of the (image, rank)-ordered detections
    cat_bounds = np.searchsorted(dk, np.arange(n_cat + 1))
    cat_order = [cat_bounds[k] + np.argsort(-ds[cat_bounds[k]:cat_bounds[k + 1]], kind="stable")
                 for k in range(n_cat)]
    max_dets = np.array(MAX_DETS, dtype=np.int64)
    state = np.zeros((len(d_sel), len(IOU_THRS)), dtype=np.uint8)  # [D, T]
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
            accumulate(state[idx], rank[idx], max_dets, npig, REC_THRS, prec, rec)  # [n_k, T] contiguous
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
