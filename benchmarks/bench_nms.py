"""Benchmark: vectorised ``batched_nms`` vs the per-class one-box-at-a-time greedy reference.

Run: ``python benchmarks/bench_nms.py [--boxes 5000 --classes 10 --repeat 3]``.
Prints the times and the speed-up measured in the same run, and checks both give the same indices.
"""

import argparse
import time

import numpy as np
import torch

from evdet.ops import batched_nms, nms_reference


def per_class_reference(boxes, scores, idxs, thr):
    keep = []
    for c in torch.unique(idxs).tolist():
        sel = (idxs == c).nonzero().view(-1)
        keep.append(sel[nms_reference(boxes[sel], scores[sel], thr)])
    keep = torch.sort(torch.cat(keep))[0]
    return keep[torch.sort(scores[keep], descending=True, stable=True)[1]]


def best_time(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--boxes", type=int, default=5000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for small ops)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 600, (args.boxes, 2))
    wh = rng.uniform(8, 120, (args.boxes, 2))
    boxes = torch.tensor(np.concatenate([xy, xy + wh], 1), dtype=torch.float32)
    scores = torch.tensor(rng.uniform(0, 1, args.boxes), dtype=torch.float32)
    idxs = torch.tensor(rng.integers(0, args.classes, args.boxes))
    batched_nms(boxes, scores, idxs, args.iou)  # warm-up
    t_fast, keep_fast = best_time(lambda: batched_nms(boxes, scores, idxs, args.iou), args.repeat)
    t_ref, keep_ref = best_time(lambda: per_class_reference(boxes, scores, idxs, args.iou), args.repeat)
    assert torch.equal(keep_fast, keep_ref), "batched_nms disagrees with the greedy reference"
    print(f"{args.boxes} boxes x {args.classes} classes, IoU {args.iou}, "
          f"torch threads {torch.get_num_threads()}: kept {keep_fast.numel()}")
    print(f"batched_nms (vectorised):        {t_fast * 1e3:8.1f} ms")
    print(f"per-class greedy reference:      {t_ref * 1e3:8.1f} ms")
    print(f"speed-up vs reference:           {t_ref / t_fast:8.1f}x  (same indices)")


if __name__ == "__main__":
    main()
