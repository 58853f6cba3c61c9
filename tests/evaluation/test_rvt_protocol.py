"""The rvt-gen1 / rvt-gen4 presets against an independent restatement of RVT's evaluation (validation.py ->
PropheseeEvaluator -> evaluate_list -> filter_boxes -> coco_eval._coco_eval with pycocotools), and the worked
example of docs/evaluation.md."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from evdet.evaluation import PRESETS, DetectionAccumulator, eval_preset_for, evaluate_with_preset
from evdet.io.dtypes import BBOX_DTYPE

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

KEYS = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L")


def rvt_reference(frames, classes, height, width, diag, side):
    """RVT's evaluation restated: ``frames`` is the list of (gt, dt) arrays of every label frame in the
    order they were added (one entry per frame, all boxes at the frame's time); both filtered (t > 0.5 s,
    diag, side); an entry without ground truth left gives no image; zeros when nothing is detected."""
    def keep(b):
        w, h = b["w"], b["h"]
        return b[(b["t"] > 500_000) & (w ** 2 + h ** 2 >= diag ** 2) & (w >= side) & (h >= side)]

    images, anns, results = [], [], []
    for gt, dt in frames:
        gt, dt = keep(gt), keep(dt)
        if gt.size == 0:
            continue
        im = len(images) + 1
        images.append({"id": im, "height": height, "width": width})
        for b in gt:
            anns.append({"area": float(b["w"] * b["h"]), "iscrowd": False, "image_id": im,
                         "bbox": [b["x"], b["y"], b["w"], b["h"]], "category_id": int(b["class_id"]) + 1,
                         "id": len(anns) + 1})
        for b in dt:
            results.append({"image_id": im, "category_id": int(b["class_id"]) + 1,
                            "score": float(b["class_confidence"]), "bbox": [b["x"], b["y"], b["w"], b["h"]]})
    if not results:
        return dict.fromkeys(KEYS, 0.0)
    gt_coco = COCO()
    gt_coco.dataset = {"images": images, "annotations": anns,
                       "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt_coco.createIndex()
        ev = COCOeval(gt_coco, gt_coco.loadRes(results), "bbox")
        ev.params.imgIds = np.arange(1, len(images) + 1, dtype=int)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(KEYS, ev.stats[:6], strict=True))


def _boxes(n, t, rng, size=(240, 304), scores=False):
    b = np.zeros(n, BBOX_DTYPE)
    b["t"] = t
    h, w = size
    b["w"], b["h"] = rng.uniform(5, w / 3, n), rng.uniform(5, h / 3, n)
    b["x"], b["y"] = rng.uniform(0, w - b["w"]), rng.uniform(0, h - b["h"])
    b["class_id"] = rng.integers(0, 2, n)
    b["class_confidence"] = rng.uniform(0, 1, n) if scores else 1.0
    return b


def _recording(rng, frame_ts, bins, size=(240, 304)):
    """GT at the label frames; detections at every bin (label frames included): near-copies of the GT at
    the frames plus random boxes everywhere."""
    gt = np.concatenate([_boxes(int(rng.integers(1, 5)), t, rng, size) for t in frame_ts])
    dts = [_boxes(int(rng.integers(0, 4)), t, rng, size, scores=True) for t in bins]
    near = gt.copy()
    near["x"] += rng.normal(0, 2, gt.size).astype(np.float32)
    near["class_confidence"] = rng.uniform(0, 1, gt.size)
    dt = np.concatenate([*dts, near])
    return gt, dt[np.argsort(dt["t"], kind="stable")]


def test_rvt_gen1_equals_rvt_per_frame_evaluation(rng):
    recs = []
    for _ in range(3):
        frames = np.array([620_000, 870_000, 1_121_000, 1_371_000, 1_621_500])
        # every representation: the 50 ms grid before the first frame, then 2 per 250 ms
        bins = np.unique(np.r_[frames, frames[:-1] + 125_000, frames[0] - 50_000 * np.arange(1, 12)])
        recs.append(_recording(rng, frames, bins))
    got = evaluate_with_preset([g for g, _ in recs], [d for _, d in recs], ["car", "pedestrian"],
                               PRESETS["rvt-gen1"]).metrics()
    frames = [(g[g["t"] == t], d[d["t"] == t]) for g, d in recs for t in np.unique(g["t"])]
    ref = rvt_reference(frames, ["car", "pedestrian"], 240, 304, 30, 10)
    for k in KEYS:
        assert got[k] == pytest.approx(ref[k], abs=1e-12), k
    assert got["AP"] > 0.05
    # evdet's gen1 preset pools +-50 ms: the representation 50 ms before the first frame joins it
    gen1 = evaluate_with_preset([g for g, _ in recs], [d for _, d in recs], ["car", "pedestrian"],
                                PRESETS["gen1"]).metrics()
    assert gen1 != got


def test_rvt_gen4_scores_1mpx_at_640x360_with_halved_thresholds(rng):
    frames = np.array([150_000, 250_002, 550_000, 650_001, 750_003, 1_050_000])
    bins = np.unique(np.r_[frames, np.arange(100_000, 1_100_000, 50_000)])
    gt, dt = _recording(rng, frames, bins, size=(720, 1280))
    gt["class_id"] = rng.integers(0, 3, gt.size)
    classes = ["pedestrian", "two wheeler", "car"]
    got = evaluate_with_preset([gt], [dt], classes, PRESETS["rvt-gen4"]).metrics()

    def half(b):
        b = b.copy()
        for f in ("x", "y", "w", "h"):
            b[f] *= np.float32(0.5)
        return b

    ref = rvt_reference([(half(gt[gt["t"] == t]), half(dt[dt["t"] == t])) for t in frames], classes, 360, 640,
                        30, 10)
    for k in KEYS:
        assert got[k] == pytest.approx(ref[k], abs=1e-12), k
    assert eval_preset_for("rvt-gen4", (720, 1280)).height == 360
    assert eval_preset_for("rvt-gen4", (720, 1280)).width == 640
    assert eval_preset_for("auto", (360, 640)).name == "gen4-half"  # auto never picks rvt-*


def test_accumulator_uses_the_same_protocol(rng):
    gt, dt = _recording(rng, np.array([600_000, 850_000, 1_100_000]), np.arange(550_000, 1_150_000, 125_000))
    acc = DetectionAccumulator()
    acc.add("a", gt, dt)
    direct = evaluate_with_preset([gt], [dt], ["car", "pedestrian"], PRESETS["rvt-gen1"]).metrics()
    assert acc.evaluate(["car", "pedestrian"], preset="rvt-gen1") == direct


def _one(t, x, score=1.0, cls=0, w=40.0, h=30.0):
    b = np.zeros(1, BBOX_DTYPE)
    b["t"], b["x"], b["y"], b["w"], b["h"] = t, x, 50.0, w, h
    b["class_id"], b["class_confidence"] = cls, score
    return b


def test_worked_example_of_the_docs():
    # Gen1: one car labelled at 600 ms. The representation 50 ms earlier (550 ms) also fires on it, with a
    # higher score. gen1 pools 550 ms into the 600 ms image: the 0.95 box matches first (TP) and the 0.9
    # box is a duplicate (FP) -> still AP 1. With the 0.95 box misplaced (FP, ranked first), gen1 scores
    # precision 1/2 at full recall (AP 0.5); rvt-gen1 only sees the 600 ms detection: AP 1.
    gt = _one(600_000, 100.0)
    dt = np.concatenate([_one(550_000, 200.0, 0.95), _one(600_000, 100.0, 0.9)])
    classes = ["car", "pedestrian"]
    gen1 = evaluate_with_preset([gt], [dt], classes, PRESETS["gen1"]).metrics()
    rvt = evaluate_with_preset([gt], [dt], classes, PRESETS["rvt-gen1"]).metrics()
    assert gen1["AP"] == pytest.approx(0.5) and rvt["AP"] == pytest.approx(1.0)
    # no detection at all: COCO's 0 / -1 (gen1) vs RVT's zeros
    none = np.zeros(0, BBOX_DTYPE)
    g = evaluate_with_preset([gt], [none], classes, PRESETS["gen1"]).metrics()
    r = evaluate_with_preset([gt], [none], classes, PRESETS["rvt-gen1"]).metrics()
    assert g["AP"] == 0.0 and g["AP_L"] == -1.0 and g["AP_M"] == 0.0
    assert all(r[k] == 0.0 for k in KEYS)
    # 1Mpx: a 60 x 40 box (sensor pixels) is "medium" for gen4 (area 2400 > 32²) but "small" for
    # rvt-gen4 (30 x 20 at 640x360, area 600)
    big = _one(600_000, 400.0, w=60.0, h=40.0)
    g4 = evaluate_with_preset([big], [big], ["pedestrian"], PRESETS["gen4"]).metrics()
    r4 = evaluate_with_preset([big], [big], ["pedestrian"], PRESETS["rvt-gen4"]).metrics()
    assert g4["AP_S"] == -1.0 and g4["AP_M"] == pytest.approx(1.0)
    assert r4["AP_S"] == pytest.approx(1.0) and r4["AP_M"] == -1.0
