"""RVT's detectors (rvt-t/s/b backbone + YOLOX head) in evdet: parameter counts against RVT's published ones,
and per-bin forward time on CPU, eager vs TorchScript vs ONNX Runtime, next to Vanilla + anchor head.

    python benchmarks/bench_rvt_models.py [--quick] [--threads 1] [--bins 5] [--warmup 3]
                                          [--sizes gen1 1mpx-half] [--models Vanilla rvt-t rvt-s rvt-b]

(a) Parameters of each detector at Gen1's 2 classes and 20 input channels (RVT's stacked histogram,
    10 bins x 2 polarities), next to the totals RVT's paper publishes (RVT-T 4.4M, RVT-S 9.9M,
    RVT-B 18.5M) and the ratio evdet / RVT. YOLOX depth 0.33 for rvt-t/s and 0.67 for rvt-b, as RVT's
    ``config/experiment/*/{tiny,small,base}.yaml``.
(b) Streaming at batch 1, one bin per call, the recurrent state carried over: ``--warmup`` bins, then the
    median of ``--bins`` timed bins, at Gen1 240x304 (partition_split_32 1, as RVT on Gen1) and 1Mpx at
    half resolution 360x640 (partition_split_32 2, as RVT on 1Mpx). Per model and input:

    - ``eager``: ``detector(x)``, the raw head outputs (no decoding);
    - ``onnxrt``: the ONNX export (:func:`evdet.export.onnx.export_onnx`, T = 1), the same raw outputs, in
      ONNX Runtime with ``--threads`` intra-op threads, the state fed back as ``state_in``;
    - ``eager+dec``: ``detector.detect(x, 0.1, 0.45, 100)`` (RVT's thresholds), forward and decoding;
    - ``ts+dec``: the TorchScript export (:func:`evdet.export.torchscript.export_torchscript`), whose
      ``forward`` is that same detection.

    Ratios: ``onnxrt`` / ``eager`` and ``ts+dec`` / ``eager+dec`` of the same model, and each model's
    ``eager`` / Vanilla's ``eager`` at the same input (the baseline, measured in the same run). Both
    exports run their built-in checks against the eager model before they are timed. A failed export is
    reported in the table and listed with its error at the end, never skipped silently.

``--quick``: Gen1 size, Vanilla and rvt-t, 2 warm-up and 2 timed bins (under a minute).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from evdet.export.onnx import export_onnx
from evdet.export.torchscript import export_torchscript, load_exported
from evdet.inference.checkpoint import CheckpointInfo
from evdet.inference.config_dict import config_to_dict
from evdet.inference.model_config import ModelConfig, RVTConfig, YoloxHeadConfig, build_detector

#: RVT's published parameter counts (backbone + PAFPN + YOLOX head; Gehrig & Scaramuzza, CVPR 2023).
PUBLISHED = {"rvt-t": 4.4e6, "rvt-s": 9.9e6, "rvt-b": 18.5e6}
#: YOLOX depth of RVT's sizes (config/experiment/*/{tiny,small,base}.yaml)
YOLOX_DEPTH = {"rvt-t": 0.33, "rvt-s": 0.33, "rvt-b": 0.67}
#: name -> ((height, width), RVT's partition_split_32 there)
SIZES = {"gen1": ((240, 304), 1), "1mpx-half": ((360, 640), 2)}
CHANNELS, NUM_CLASSES = 20, 2
SCORE_THRESH, NMS_THRESH, MAX_DETECTIONS = 0.1, 0.45, 100


def model_config(name: str, partition_split_32: int = 1) -> ModelConfig:
    """Vanilla + anchor head (evdet's default detector), or rvt-* + YOLOX head at RVT's settings."""
    if name == "Vanilla":
        return ModelConfig(nms_thresh=NMS_THRESH, score_thresh=SCORE_THRESH)
    return ModelConfig(backbone=name, head="yolox", rvt=RVTConfig(partition_split_32=partition_split_32),
                       yolox=YoloxHeadConfig(depth=YOLOX_DEPTH[name]), nms_thresh=NMS_THRESH,
                       score_thresh=SCORE_THRESH)


def info_for(mc: ModelConfig, size: tuple[int, int]) -> CheckpointInfo:
    classes = ("car", "pedestrian")
    return CheckpointInfo(classes=classes, label_map=dict(enumerate(classes)),
                          representation="stacked_histogram", representation_params={}, delta_t=50_000,
                          num_tbins=1, in_channels=CHANNELS, sensor_size=size, network_size=size,
                          score_thresh=SCORE_THRESH, nms_thresh=NMS_THRESH, max_detections=MAX_DETECTIONS,
                          model_config=config_to_dict(mc))


def stream_ms(step, x: torch.Tensor, warmup: int) -> float:
    """Median ms of ``step(x[i])`` over bins ``warmup..``, after ``warmup`` untimed bins."""
    times = []
    with torch.no_grad():
        for i in range(x.shape[0]):
            t0 = time.perf_counter()
            step(x[i])
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def onnx_step(session, meta: dict):
    """A per-bin step running the ONNX session with its state fed back (zeros at the start)."""
    names = [i["name"] for i in meta["inputs"]]
    n_state = len(names) - 1
    state = [np.zeros([1, *i["shape"][1:]], np.float32) for i in meta["inputs"][1:]]

    def step(x: torch.Tensor) -> None:
        feed = {"x": x.numpy(), **dict(zip(names[1:], state, strict=True))}
        out = session.run(None, feed)
        state[:] = out[len(out) - n_state:]

    return step


def time_model(name: str, size_name: str, args, tmp: Path, errors: list[str]) -> dict[str, float | str]:
    (h, w), split = SIZES[size_name]
    torch.manual_seed(0)
    mc = model_config(name, split)
    det = build_detector(mc, CHANNELS, NUM_CLASSES).eval()
    info = info_for(mc, (h, w))
    gen = torch.Generator().manual_seed(1)
    shape = (args.warmup + args.bins, 1, 1, CHANNELS, h, w)  # [bins, T=1, B=1, C, H, W]
    x = torch.rand(shape, generator=gen) * (torch.rand(shape, generator=gen) < 0.1)  # sparse, as events
    row: dict[str, float | str] = {}
    det.reset_all()
    row["eager"] = stream_ms(det, x, args.warmup)
    det.reset_all()
    row["eager+dec"] = stream_ms(lambda b: det.detect(b, SCORE_THRESH, NMS_THRESH, MAX_DETECTIONS), x,
                                 args.warmup)
    det.reset_all()
    out = tmp / f"{name}_{size_name}"
    try:
        pt_path, _ = export_torchscript(det, out / "ts", info)
        scripted, _ = load_exported(pt_path)
        scripted.reset_all()
        row["ts+dec"] = stream_ms(lambda b: scripted(b, SCORE_THRESH), x, args.warmup)
    except Exception as exc:  # report any failure of the export or its checks
        row["ts+dec"] = "failed"
        errors.append(f"TorchScript {name} {size_name}: {type(exc).__name__}: {exc}")
    det.reset_all()
    try:
        import onnxruntime as ort

        onnx_path, json_path = export_onnx(det, out / "onnx", info, num_tbins=1)
        import json

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
        session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        row["onnxrt"] = stream_ms(onnx_step(session, json.loads(json_path.read_text())), x, args.warmup)
    except Exception as exc:  # report any failure of the export or its checks
        row["onnxrt"] = "failed"
        errors.append(f"ONNX {name} {size_name}: {type(exc).__name__}: {exc}")
    return row


def fmt(value: float | str, width: int = 8) -> str:
    return f"{value:>{width}.1f}" if isinstance(value, float) else f"{value:>{width}s}"


def ratio(a: float | str, b: float | str) -> str:
    return f"x{a / b:5.2f}" if isinstance(a, float) and isinstance(b, float) else "     -"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Gen1 size, Vanilla and rvt-t, 2+2 bins")
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    parser.add_argument("--bins", type=int, default=5, help="timed bins per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed bins before them")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--models", nargs="+", default=["Vanilla", *PUBLISHED],
                        choices=["Vanilla", *PUBLISHED])
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.models, args.warmup, args.bins = ["gen1"], ["Vanilla", "rvt-t"], 2, 2
    if "Vanilla" not in args.models:
        args.models = ["Vanilla", *args.models]  # the baseline
    torch.set_num_threads(args.threads)
    try:
        import onnxruntime as ort

        ort_version = ort.__version__
    except ImportError:
        ort_version = "missing"
    print(f"torch {torch.__version__}, onnxruntime {ort_version}, {args.threads} thread(s), CPU; "
          f"{args.warmup} warm-up + {args.bins} timed bins (median)")

    print(f"\n(a) parameters at {NUM_CLASSES} classes, {CHANNELS} input channels")
    print(f"{'model':18s} {'evdet':>12s} {'RVT paper':>10s} {'evdet/RVT':>9s}")
    for name in args.models:
        n = sum(p.numel() for p in build_detector(model_config(name), CHANNELS, NUM_CLASSES).parameters())
        label = "Vanilla + anchor" if name == "Vanilla" else f"{name} + yolox"
        if name in PUBLISHED:
            print(f"{label:18s} {n:>12,d} {PUBLISHED[name] / 1e6:>9.1f}M {n / PUBLISHED[name]:>9.3f}")
        else:
            print(f"{label:18s} {n:>12,d} {'-':>10s} {'-':>9s}")

    print("\n(b) ms per bin, batch 1, state carried")
    print(f"{'model':18s} {'input':10s} {'eager':>8s} {'onnxrt':>8s} {'/eager':>6s} {'eager+dec':>9s} "
          f"{'ts+dec':>8s} {'/e+dec':>6s} {'eager/Vanilla':>13s}")
    errors: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size_name in args.sizes:
            base = None
            for name in args.models:
                row = time_model(name, size_name, args, Path(tmp), errors)
                base = row["eager"] if base is None else base
                (h, w), _ = SIZES[size_name]
                label = "Vanilla + anchor" if name == "Vanilla" else f"{name} + yolox"
                print(f"{label:18s} {f'{h}x{w}':10s} {fmt(row['eager'])} {fmt(row['onnxrt'])} "
                      f"{ratio(row['onnxrt'], row['eager'])} {fmt(row['eager+dec'], 9)} "
                      f"{fmt(row['ts+dec'])} {ratio(row['ts+dec'], row['eager+dec'])} "
                      f"{ratio(row['eager'], base):>13s}", flush=True)
    if errors:
        print("\nfailed exports:")
        for line in errors:
            print(f"  {line}")


if __name__ == "__main__":
    main()
