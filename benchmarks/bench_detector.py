"""Benchmark the single-stage detector on CPU.

1. Decoding (top-k + class-wise batched NMS over all frames) of a T×B batch at 240×304 with
   Vanilla's anchors, as a fraction of the forward pass on the same batch (goal ≤ 10 %). Measured at
   the documented score threshold (0.1, what a freshly initialised model gives: few candidates) and at
   score threshold 0 (worst case: all top-k = 500 candidates per frame go through NMS).
2. Streaming inference: Vanilla, batch 1, one 50 ms bin per call (state carried), at 240×304 and
   360×640, eager and TorchScript: ms per bin (forward + decoding) and the real-time factor 50 ms / time.

Run: ``python benchmarks/bench_detector.py [--t 12 --b 8 --bins 5 --threads 2]``.
"""

import argparse
import time

import torch

from evdet.inference.model_config import ModelConfig, build_detector
from evdet.models import batched_decode


def best_of(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def decode_fraction(args) -> None:
    torch.manual_seed(0)
    det = build_detector(ModelConfig(), in_channels=2, num_classes=2).eval()  # Vanilla, base 16, cout 256
    h, w = 240, 304
    x = torch.rand(args.t, args.b, 2, h, w)
    with torch.no_grad():
        det.reset_all()
        det(x[:1, :1])  # warm-up
        t_fwd = best_of(lambda: (det.reset_all(), det(x)), 1)
        det.reset_all()
        loc, cls = det(x)
        feats = det.backbone(x[:1, :1])
        det.reset_all()
        anchors = det.head._anchors_for([f.flatten(0, 1) for f in feats], h, w)
        print(f"[decode] Vanilla (base 16, cout 256), T={args.t}, B={args.b}, {h}x{w}, "
              f"{anchors.shape[0]} anchors/frame; forward {t_fwd * 1e3:.0f} ms")
        for thr in (0.1, 0.0):
            n_dets = sum(d.shape[0] for d in batched_decode(loc, cls, anchors, h, w, thr, 0.5, 100))
            t_dec = best_of(lambda thr=thr: batched_decode(loc, cls, anchors, h, w, thr, 0.5, 100), 3)
            print(f"[decode] score_thresh {thr}: decode {t_dec * 1e3:7.1f} ms = "
                  f"{100 * t_dec / t_fwd:5.2f} % of forward ({n_dets} detections kept)")


def streaming(args) -> None:
    torch.manual_seed(0)
    for h, w in ((240, 304), (360, 640)):
        det = build_detector(ModelConfig(), in_channels=2, num_classes=2).eval()
        scripted = torch.jit.script(det)
        x = torch.rand(args.bins + 2, 1, 1, 2, h, w)
        for name, model in (("eager", det), ("scripted", scripted)):
            with torch.no_grad():
                model.reset_all()
                for i in range(2):  # warm-up (TorchScript profiles its first calls)
                    model.detect(x[i], 0.1, 0.5, 100)
                t0 = time.perf_counter()
                for i in range(2, args.bins + 2):
                    model.detect(x[i], 0.1, 0.5, 100)
                per_bin = (time.perf_counter() - t0) / args.bins
            print(f"[stream] {h}x{w} {name:8s}: {per_bin * 1e3:7.1f} ms/bin, real-time factor "
                  f"{0.05 / per_bin:5.2f} (50 ms bins)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--t", type=int, default=12)
    ap.add_argument("--b", type=int, default=8)
    ap.add_argument("--bins", type=int, default=5, help="timed bins per streaming measurement")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the shared dev machine: 1)")
    ap.add_argument("--skip-decode", action="store_true")
    ap.add_argument("--skip-stream", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    if not args.skip_decode:
        decode_fraction(args)
    if not args.skip_stream:
        streaming(args)


if __name__ == "__main__":
    main()
