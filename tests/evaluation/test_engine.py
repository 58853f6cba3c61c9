import numpy as np
import pytest

from evdet.evaluation.engine import REC_THRS, coco_bbox_eval, per_class_ap, summarize_stats


def _random_flat(rng, n_img=6, n_gt=30, n_dt=80, n_cat=2):
    gt_img = rng.integers(1, n_img + 1, n_gt)
    sizes = rng.choice([10.0, 32.0, 50.0, 100.0], (n_gt, 2))
    gt_box = np.column_stack([rng.uniform(0, 100, (n_gt, 2)), sizes])
    j = rng.integers(0, n_gt, n_dt)
    dt_box = gt_box[j] + np.column_stack([rng.normal(0, 3, (n_dt, 2)), np.zeros((n_dt, 2))])
    return dict(gt_image=gt_img, gt_cat=rng.integers(1, n_cat + 1, n_gt), gt_xywh=gt_box,
                gt_area=gt_box[:, 2] * gt_box[:, 3], dt_image=gt_img[j],
                dt_cat=rng.integers(1, n_cat + 1, n_dt),
                dt_xywh=dt_box, dt_area=dt_box[:, 2] * dt_box[:, 3],
                dt_score=np.round(rng.uniform(0, 1, n_dt), 1), cat_ids=list(range(1, n_cat + 1)))


def test_numba_kernels_equal_plain_python_reference(rng):
    args = _random_flat(rng)
    p_fast, r_fast = coco_bbox_eval(**args)
    p_ref, r_ref = coco_bbox_eval(**args, use_numba=False)
    assert np.array_equal(p_fast, p_ref) and np.array_equal(r_fast, r_ref)
    assert p_fast.shape == (10, 101, 2, 4, 3) and r_fast.shape == (10, 2, 4, 3)
    assert np.all((p_fast == -1) | ((p_fast >= 0) & (p_fast <= 1)))


def test_more_than_100_detections_per_image_are_truncated():
    # one ground truth, 150 false positives scored above the single true positive: with the COCO cap of
    # 100 detections per image the true positive (rank 151) is never seen
    gt_box = np.array([[0.0, 0.0, 50.0, 50.0]])
    dt_box = np.vstack([np.tile([[200.0, 200.0, 50.0, 50.0]], (150, 1)), gt_box])
    score = np.r_[np.full(150, 0.9), 0.1]
    p, r = coco_bbox_eval(np.array([1]), np.array([1]), gt_box, np.array([2500.0]), np.ones(151, int),
                          np.ones(151, int), dt_box, dt_box[:, 2] * dt_box[:, 3], score, [1])
    assert r[0, 0, 0, 2] == 0.0 and p[0, 0, 0, 0, 2] == 0.0
    score[-1] = 0.95  # now it is first
    p, r = coco_bbox_eval(np.array([1]), np.array([1]), gt_box, np.array([2500.0]), np.ones(151, int),
                          np.ones(151, int), dt_box, dt_box[:, 2] * dt_box[:, 3], score, [1])
    assert r[0, 0, 0, 0] == 1.0 and np.allclose(p[0, :, 0, 0, 0], 1.0, rtol=0, atol=1e-12)


def test_summaries_of_known_arrays():
    prec = -np.ones((10, 101, 2, 4, 3))
    rec = -np.ones((10, 2, 4, 3))
    prec[:, :, 0, 0, :] = 0.5
    prec[:, :, 1, 0, :] = np.linspace(0, 1, 101)[None, :, None]
    rec[:, 0, 0, :] = 1.0
    rec[:, 1, 0, :] = 0.5
    stats = summarize_stats(prec, rec)
    assert stats[0] == np.mean(np.r_[np.full(1010, 0.5), np.tile(REC_THRS, 10)])
    assert stats[3] == -1 and stats[8] == 0.75
    assert per_class_ap(prec) == pytest.approx([0.5, 0.5], abs=1e-12)


def test_image_and_category_ids_are_labels_only(rng):
    args = _random_flat(rng)
    p_ref, r_ref = coco_bbox_eval(**args)
    # sparse image ids in the same order, and category ids given in another order / far apart
    moved = dict(args, gt_image=args["gt_image"] * 7 + 3, dt_image=args["dt_image"] * 7 + 3,
                 gt_cat=np.where(args["gt_cat"] == 1, 10**7, 5),
                 dt_cat=np.where(args["dt_cat"] == 1, 10**7, 5),
                 cat_ids=[5, 10**7])
    p, r = coco_bbox_eval(**moved)
    assert np.array_equal(p, p_ref[:, :, ::-1]) and np.array_equal(r, r_ref[:, ::-1])
    with pytest.raises(ValueError, match="duplicate"):
        coco_bbox_eval(**dict(args, cat_ids=[1, 1]))
