"""Hand-computed cases of the published protocol and cross-checks against pycocotools."""

import contextlib
import io

import numpy as np
import pytest

from evdet.evaluation import METRIC_NAMES, evaluate_detection, evaluate_recordings, pool_by_time
from evdet.io import BBOX_DTYPE

EPS = 1e-12


def boxes(rows, score=1.0):
    """rows: (t, x, y, w, h, class_id[, score])."""
    b = np.zeros(len(rows), BBOX_DTYPE)
    for i, r in enumerate(rows):
        b[i]["t"], b[i]["x"], b[i]["y"], b[i]["w"], b[i]["h"], b[i]["class_id"] = r[:6]
        b[i]["class_confidence"] = r[6] if len(r) > 6 else score
        b[i]["track_id"] = i
    return b


def test_perfect_detections_give_ap_one():
    gt = boxes([(t, 10 + t / 1e4, 20, 50, 40, c) for t in range(0, 2_000_000, 100_000) for c in (0, 1)])
    m = evaluate_detection([gt], [gt.copy()], ["car", "pedestrian"], 240, 304)
    assert set(METRIC_NAMES) <= set(m) and {"AP_car", "AP_pedestrian"} <= set(m)
    for k in ("AP", "AP50", "AP75", "AP_M", "AP_car", "AP_pedestrian", "AR_100", "AR_M"):
        assert m[k] == pytest.approx(1.0, abs=EPS), k
    assert m["AR_1"] == pytest.approx(1.0, abs=EPS)  # one box per class per image
    assert m["AP_S"] == -1 and m["AP_L"] == -1  # no small/large ground truth: undefined, as COCO


def test_50ms_spacing_neighbours_are_false_positives():
    # a static object labelled every 50 ms and detected perfectly at the same instants: with the
    # inclusive ±50 ms tolerance each image also receives its neighbours' detections (false positives)
    ts = [0, 50_000, 100_000]
    gt = boxes([(t, 100, 100, 50, 50, 0) for t in ts])
    dt = boxes([(t, 100, 100, 50, 50, 0) for t in ts], score=0.9)
    r = evaluate_recordings([gt], [dt], ["car"], 240, 304)
    assert r.num_images == 3 and r.num_dt == 7  # 2 + 3 + 2 pooled detections
    # sequence T F | T F F | T F -> precision envelope 1 (r ≤ 1/3), 2/3 (≤ 2/3), 1/2 (≤ 1)
    expected = (34 * 1.0 + 33 * 2 / 3 + 34 * 0.5) / 101
    m = r.metrics()
    assert m["AP"] == pytest.approx(expected, abs=1e-9) and m["AP50"] == pytest.approx(expected, abs=1e-9)
    assert m["AR_100"] == pytest.approx(1.0) and m["AR_1"] == pytest.approx(1.0)
    # a tolerance just below the spacing removes the neighbours: every detection is a true positive
    assert evaluate_detection([gt], [dt], ["car"], time_tol=49_999)["AP"] == pytest.approx(1.0, abs=EPS)


@pytest.mark.parametrize("dt_time, pooled", [(1_050_000, True), (950_000, True), (1_050_001, False),
                                             (949_999, False)])
def test_time_tolerance_is_inclusive(dt_time, pooled):
    gt = boxes([(1_000_000, 10, 10, 40, 40, 0)])
    dt = boxes([(dt_time, 10, 10, 40, 40, 0, 0.7)])
    r = evaluate_recordings([gt], [dt], ["car"], 240, 304, time_tol=50_000)
    assert r.num_dt == int(pooled)
    assert r.metrics()["AP"] == pytest.approx(1.0 if pooled else 0.0, abs=EPS)


def test_empty_detections_give_zeros_not_a_crash():
    gt = boxes([(t, 10, 10, 40, 40, t // 100_000 % 2) for t in range(100_000, 600_000, 100_000)])
    m = evaluate_detection([gt, gt], [np.zeros(0, BBOX_DTYPE)] * 2, ["car", "pedestrian"])
    for k in ("AP", "AP50", "AP75", "AP_M", "AR_1", "AR_10", "AR_100", "AR_M", "AP_car", "AP_pedestrian"):
        assert m[k] == 0.0, k
    assert m["AP_S"] == -1 and m["AR_L"] == -1


def test_no_recordings_and_detections_without_ground_truth():
    m = evaluate_detection([], [], ["car"])
    assert all(m[k] == -1 for k in METRIC_NAMES)
    # detections far from any labelled timestamp are never scored
    gt = boxes([(0, 10, 10, 40, 40, 0)])
    dt = boxes([(500_000, 10, 10, 40, 40, 0, 0.9)])
    assert evaluate_detection([gt], [dt], ["car"])["AP"] == 0.0


def test_class_confusion():
    gt = boxes([(0, 10, 10, 40, 40, 0), (0, 150, 100, 40, 60, 1)])  # a car at A, a pedestrian at B
    dt = boxes([(0, 10, 10, 40, 40, 0, 0.5), (0, 150, 100, 40, 60, 0, 0.9)])  # the pedestrian called car
    m = evaluate_detection([gt], [dt], ["car", "pedestrian"])
    # car: F (0.9) then T (0.5): precision 1/2 at every recall -> AP 0.5; pedestrian: missed -> 0
    assert m["AP_car"] == pytest.approx(0.5, abs=1e-9)
    assert m["AP_pedestrian"] == 0.0
    assert m["AP"] == pytest.approx(0.25, abs=1e-9)
    # category = class_id + 1: with the class names swapped the per-class results swap too
    m2 = evaluate_detection([gt], [dt], {0: "pedestrian", 1: "car"})
    assert m2["AP_pedestrian"] == pytest.approx(0.5, abs=1e-9) and m2["AP_car"] == 0.0


def test_unknown_class_ids_are_not_scored():
    gt = boxes([(0, 10, 10, 40, 40, 0), (0, 100, 10, 40, 40, 5)])
    dt = boxes([(0, 10, 10, 40, 40, 0, 0.9), (0, 100, 100, 40, 40, 7, 0.95)])
    assert evaluate_detection([gt], [dt], ["car"])["AP"] == pytest.approx(1.0, abs=EPS)


def test_validation_errors():
    gt = boxes([(0, 10, 10, 40, 40, 0)])
    with pytest.raises(ValueError, match="paired"):
        evaluate_detection([gt], [], ["car"])
    bad = gt.copy()
    bad["w"] = np.nan
    with pytest.raises(ValueError, match="recording 1: box 0 has w = nan"):
        evaluate_detection([gt, bad], [gt, gt], ["car"])
    with pytest.raises(ValueError, match="time_tol"):
        evaluate_detection([gt], [gt], ["car"], time_tol=-1)
    with pytest.raises(ValueError, match="duplicate"):
        evaluate_detection([gt], [gt], ["car", "car"])
    with pytest.raises(TypeError):
        evaluate_detection([gt], [gt], "car")
    with pytest.raises(ValueError, match="engine"):
        evaluate_detection([gt], [gt], ["car"], engine="detectron")


def test_unsorted_input_is_sorted_not_modified():
    gt = boxes([(100_000, 10, 10, 40, 40, 0), (0, 10, 10, 40, 40, 0)])
    before = gt.copy()
    r = pool_by_time([gt], [gt], 0)
    assert r.image_ts.tolist() == [0, 100_000] and np.array_equal(gt, before)
    assert r.gt.dtype == BBOX_DTYPE and r.dt.dtype == BBOX_DTYPE and r.dt_image.tolist() == [1, 2]


# ---------------------------------------------------------------- independent pycocotools reference

def reference_pycocotools(gt_list, dt_list, classes, height, width, time_tol):
    """The published protocol written out plainly: pointer-walk time matching, dicts, pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, results = [], [], []
    for gt, dt in zip(gt_list, dt_list, strict=True):
        lo_dt = hi_dt = 0
        for ts in np.unique(gt["t"]):
            while lo_dt < len(dt) and dt[lo_dt]["t"] < ts - time_tol:
                lo_dt += 1
            hi_dt = max(hi_dt, lo_dt)
            while hi_dt < len(dt) and dt[hi_dt]["t"] <= ts + time_tol:
                hi_dt += 1
            im = len(images) + 1
            images.append({"id": im, "height": height, "width": width})
            for b in gt[gt["t"] == ts]:
                anns.append({"id": len(anns) + 1, "image_id": im, "category_id": int(b["class_id"]) + 1,
                             "bbox": [b["x"], b["y"], b["w"], b["h"]], "area": float(b["w"] * b["h"]),
                             "iscrowd": 0})
            for b in dt[lo_dt:hi_dt]:
                results.append({"image_id": im, "category_id": int(b["class_id"]) + 1,
                                "score": float(b["class_confidence"]),
                                "bbox": [b["x"], b["y"], b["w"], b["h"]]})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": anns,
                           "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes)]}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.imgIds = list(range(1, len(images) + 1))
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def random_recordings(rng, n_rec=3, n_classes=3):
    gts, dts = [], []
    for _ in range(n_rec):
        ts = np.sort(rng.choice(np.arange(0, 2_000_000, 25_000), 20, replace=False))
        n = 80
        g = np.zeros(n, BBOX_DTYPE)
        g["t"] = np.sort(rng.choice(ts, n))
        g["x"], g["y"] = rng.uniform(0, 250, n), rng.uniform(0, 200, n)
        # sizes around the 32²/96² area limits, integers (exact areas) and fractions
        g["w"] = rng.choice([8, 16, 31.5, 32, 33, 64, 96, 97, 120], n)
        g["h"] = rng.choice([16, 32, 48, 96, 100.25], n)
        g["class_id"] = rng.integers(0, n_classes, n)
        g["class_confidence"] = 1
        # detections: jittered copies (some with the wrong class), random boxes, tied scores
        j = rng.choice(n, 150)
        d = g[j].copy()
        d["t"] += rng.choice([-50_000, -25_000, 0, 0, 0, 10_000, 50_001], 150)
        d["x"] += rng.normal(0, 4, 150).astype(np.float32)
        d["w"] *= rng.uniform(0.7, 1.3, 150).astype(np.float32)
        d["class_id"] = np.where(rng.random(150) < 0.1, rng.integers(0, n_classes + 1, 150), d["class_id"])
        d["class_confidence"] = np.round(rng.uniform(0, 1, 150), 1)
        extra = g[rng.choice(n, 60)].copy()
        extra["x"] = rng.uniform(0, 250, 60)
        extra["class_confidence"] = rng.uniform(0, 1, 60)
        d = np.concatenate([d, extra])
        d = d[np.argsort(d["t"], kind="stable")]
        gts.append(g)
        dts.append(d)
    return gts, dts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_pycocotools_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    gts, dts = random_recordings(rng)
    classes = ["car", "pedestrian", "two wheeler"]
    ref = reference_pycocotools(gts, dts, classes, 240, 304, 50_000)
    ours = evaluate_recordings(gts, dts, classes, 240, 304, 50_000)
    assert np.array_equal(ours.precision, ref.eval["precision"])
    assert np.array_equal(ours.recall, ref.eval["recall"])
    assert np.array_equal(ours.stats, np.asarray(ref.stats))
    assert ours.num_images == len(ref.params.imgIds)
    # per-class AP as pycocotools' precision averaged for that class
    m = ours.metrics()
    p = ref.eval["precision"][:, :, 1, 0, -1]
    assert m["AP_pedestrian"] == pytest.approx(float(np.mean(p[p > -1])), abs=0)


def test_faster_coco_eval_engine_equals_pycocotools(rng):
    gts, dts = random_recordings(rng, n_rec=2)
    classes = ["car", "pedestrian", "two wheeler"]
    ref = reference_pycocotools(gts, dts, classes, 240, 304, 50_000)
    fce = evaluate_recordings(gts, dts, classes, 240, 304, 50_000, engine="faster-coco-eval")
    np.testing.assert_allclose(fce.precision, ref.eval["precision"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(fce.stats, ref.stats, rtol=0, atol=1e-12)
    empty = evaluate_recordings(gts, [np.zeros(0, BBOX_DTYPE)] * 2, classes, 240, 304,
                                engine="faster-coco-eval")
    assert empty.stats[0] == 0.0


def test_equals_pycocotools_beyond_100_detections_per_image(rng):
    # crowded images: > 100 pooled detections each (COCO keeps the 100 best), many tied scores
    gt = np.zeros(30, BBOX_DTYPE)
    gt["t"] = np.repeat([0, 100_000, 200_000], 10)
    gt["x"], gt["y"] = rng.uniform(0, 200, 30), rng.uniform(0, 150, 30)
    gt["w"], gt["h"] = rng.choice([20.0, 32.0, 60.0, 100.0], 30), rng.choice([20.0, 32.0, 60.0], 30)
    dt = gt[rng.integers(0, 30, 480)].copy()
    dt["x"] += rng.normal(0, 6, 480).astype(np.float32)
    dt["t"] = np.sort(rng.choice([0, 100_000, 200_000], 480))
    dt["class_confidence"] = rng.choice([0.2, 0.5, 0.9], 480)
    ref = reference_pycocotools([gt], [dt], ["car"], 240, 304, 0)
    ours = evaluate_recordings([gt], [dt], ["car"], 240, 304, 0)
    assert np.array_equal(ours.precision, ref.eval["precision"]) and np.array_equal(ours.stats, ref.stats)
