"""Benchmark: scoring one hour of 20 Hz labels (72 000 frames, ~4 ground-truth boxes and ~20 detections per
frame) with the published protocol. evdet's engine vs plain pycocotools (and faster-coco-eval) on the same
data; the dict-based libraries are timed on a subset of the frames and extrapolated linearly.

Detections are stamped at the label instants (a detector run with delta_t = 50 ms), so with the ±50 ms
inclusive tolerance each scored image pools the detections of its two neighbours too (~60 per image).

Run: python benchmarks/bench_eval.py [--frames 72000] [--subset 3000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import numpy as np

from evdet.evaluation import evaluate_recordings, pool_by_time
from evdet.evaluation.coco import coco_dataset
from evdet.io import BBOX_DTYPE

CLASSES = ["car", "pedestrian"]


def make_data(frames: int, gt_per_frame: int = 4, dt_per_frame: int = 20, frames_per_rec: int = 1200,
              seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for start in range(0, frames, frames_per_rec):
        n = min(frames_per_rec, frames - start)
        ts = np.arange(n, dtype=np.int64) * 50_000 + 50_000
        ng = 1 + rng.poisson(gt_per_frame - 1, n)  # every frame labelled
        g = np.zeros(int(ng.sum()), BBOX_DTYPE)
        g["t"] = np.repeat(ts, ng)
        g["x"], g["y"] = rng.uniform(0, 250, g.size), rng.uniform(0, 190, g.size)
        g["w"], g["h"] = rng.uniform(10, 120, g.size), rng.uniform(10, 100, g.size)
        g["class_id"] = rng.integers(0, 2, g.size)
        g["class_confidence"] = 1
        nd = rng.poisson(dt_per_frame, n)
        d = np.zeros(int(nd.sum()), BBOX_DTYPE)
        d["t"] = np.repeat(ts, nd)
        # half near a ground-truth box of the same frame (when there is one), half random
        src = np.minimum(np.searchsorted(g["t"], d["t"]) + rng.integers(0, 4, d.size), g.size - 1)
        near = (rng.random(d.size) < 0.5) & (g["t"][src] == d["t"])
        d["x"] = np.where(near, g["x"][src] + rng.normal(0, 5, d.size), rng.uniform(0, 250, d.size))
        d["y"] = np.where(near, g["y"][src] + rng.normal(0, 5, d.size), rng.uniform(0, 190, d.size))
        d["w"] = np.where(near, g["w"][src] * rng.uniform(0.8, 1.2, d.size), rng.uniform(10, 120, d.size))
        d["h"] = np.where(near, g["h"][src] * rng.uniform(0.8, 1.2, d.size), rng.uniform(10, 100, d.size))
        d["class_id"] = np.where(near, g["class_id"][src], rng.integers(0, 2, d.size))
        d["class_confidence"] = rng.uniform(0, 1, d.size)
        gts.append(g)
        dts.append(d)
    return gts, dts


def run_pycocotools(gts, dts) -> tuple[float, np.ndarray]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    t0 = time.perf_counter()
    pooled = pool_by_time(gts, dts, 50_000)
    dataset, results = coco_dataset(pooled, CLASSES, [1, 2], 240, 304)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.imgIds = list(range(1, pooled.num_images + 1))
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return time.perf_counter() - t0, np.asarray(ev.stats)


def subset(gts, dts, frames):
    """The first recordings holding ``frames`` labelled frames."""
    out_g, out_d, n = [], [], 0
    for g, d in zip(gts, dts, strict=True):
        if n >= frames:
            break
        out_g.append(g)
        out_d.append(d)
        n += len(np.unique(g["t"]))
    return out_g, out_d, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=72_000)
    ap.add_argument("--subset", type=int, default=3_600, help="frames scored by the dict-based libraries")
    args = ap.parse_args()
    gts, dts = make_data(args.frames)
    evaluate_recordings(gts[:1], dts[:1], CLASSES, 240, 304)  # numba compile/cache load, not timed
    t0 = time.perf_counter()
    full = evaluate_recordings(gts, dts, CLASSES, 240, 304)
    t_full = time.perf_counter() - t0
    print(f"evdet engine, {full.num_images} frames, {full.num_gt} GT, {full.num_dt} pooled detections: "
          f"{t_full:.2f} s")

    sg, sd, n_sub = subset(gts, dts, args.subset)
    t0 = time.perf_counter()
    ours = evaluate_recordings(sg, sd, CLASSES, 240, 304)
    t_ours_sub = time.perf_counter() - t0
    t_py, stats_py = run_pycocotools(sg, sd)
    t0 = time.perf_counter()
    fce = evaluate_recordings(sg, sd, CLASSES, 240, 304, engine="faster-coco-eval")
    t_fce = time.perf_counter() - t0
    scale = full.num_images / n_sub
    print(f"subset of {n_sub} frames: evdet {t_ours_sub:.2f} s, pycocotools {t_py:.2f} s, "
          f"faster-coco-eval {t_fce:.2f} s; identical stats: pycocotools "
          f"{np.array_equal(ours.stats, stats_py)}, faster-coco-eval {np.allclose(ours.stats, fce.stats)}")
    print(f"pycocotools extrapolated to {full.num_images} frames (x{scale:.1f}): {t_py * scale:.1f} s")
    print(f"faster-coco-eval extrapolated: {t_fce * scale:.1f} s")
    print(f"ratio pycocotools / evdet (full run): {t_py * scale / t_full:.1f}x; "
          f"same-subset ratio: {t_py / t_ours_sub:.1f}x; "
          f"faster-coco-eval / evdet: {t_fce * scale / t_full:.1f}x")


if __name__ == "__main__":
    main()
