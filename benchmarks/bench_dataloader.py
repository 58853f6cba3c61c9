"""Bins per second delivered by evdet.data (B=8, T=12, histo 2x240x304 stored as uint8 + gzip) with 0, 1
and 2 DataLoader workers, against a plain h5py loop reading the same frames in the same order (the
floor set by the storage format). Batches arrive with the stored uint8 inputs (``DataConfig.uint8_inputs``,
the default), as the plain loop's frames do; "+float" rows also convert to float32 in this process, the
cost CPU-only training pays in its training step (on a GPU the conversion runs on the device).

Run: python benchmarks/bench_dataloader.py [--videos 64] [--frames 24] [--repeats 3] [--hflip-prob 0.5]
Training epochs have a fixed length (see docs/data.md), so their last batches hold padding columns: their
cost is included, only delivered (non-padding) bins are counted.
"steady" rows exclude the first batch; the others time the whole epoch. Workers are persistent
(build_dataloader), so with best of N > 1 the worker rows are epochs after the first (worker start-up,
paid once per DataLoader, is excluded; it is printed separately).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from evdet.data import DataConfig, build_dataloader
from evdet.io.boxes import save_boxes
from evdet.io.dtypes import BBOX_DTYPE
from evdet.io.h5 import H5TensorWriter
from evdet.io.label_map import save_label_map

SHAPE = (2, 240, 304)


def make_dataset(root: Path, videos: int, frames: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    save_label_map(root, {0: "car", 1: "pedestrian"})
    (root / "train").mkdir()
    for i in range(videos):
        data = np.zeros((frames, *SHAPE), dtype=np.float32)
        mask = rng.random(data.shape) < 0.05  # ~5 % active pixels, like a busy histogram
        data[mask] = rng.integers(1, 6, int(mask.sum())) / 5.0
        path = root / "train" / f"rec{i}.h5"
        with H5TensorWriter(path, SHAPE, representation="histo", delta_t=50_000, sensor_size=SHAPE[1:],
                            store_as_uint8=True, params={"max_incr_per_pixel": 5}) as w:
            w.write(data)
        boxes = np.zeros(frames // 2, dtype=BBOX_DTYPE)  # a moving box every 100 ms (interpolated)
        boxes["t"] = np.arange(frames // 2) * 100_000 + 100_000
        boxes["x"], boxes["y"], boxes["w"], boxes["h"] = np.arange(frames // 2), 60, 40, 30
        boxes["track_id"] = 1
        save_boxes(path.with_name(f"rec{i}_bbox.npy"), boxes)


def plain_h5py(loader, to_float: bool) -> tuple[float, int]:
    """Read the frames of every (non-padding) column of the loader's plan with h5py, same order; with
    ``to_float``, also write them as float32 / 255 into a new ``[T, B, C, H, W]`` array per batch (the
    least any loader must do to hand float tensors to a model)."""
    plan = list(loader.sampler)
    videos = loader.dataset.videos
    t = loader.dataset.num_tbins
    files: dict[str, h5py.File] = {}
    bins = 0
    start = time.perf_counter()
    for batch in plan:
        out = np.empty((t, len(batch), *SHAPE), dtype=np.float32) if to_float else None
        for col, item in enumerate(batch):
            if item.is_padding:
                continue
            spec = videos[item.video]
            f = files.get(spec.path)
            if f is None:
                f = files[spec.path] = h5py.File(spec.path, "r")
            raw = f["data"][item.start_frame:item.start_frame + t]
            if to_float:
                np.divide(raw, np.float32(255), out=out[:raw.shape[0], col], dtype=np.float32)
            bins += raw.shape[0]
    elapsed = time.perf_counter() - start
    for f in files.values():
        f.close()
    return elapsed, bins


def run_loader(loader, to_float: bool = False) -> tuple[float, int]:
    """Whole epoch, worker start-up included. The loader delivers the stored uint8 bytes (the training
    loop converts them on the accelerator, ``SequenceBatch.to``); ``to_float`` also converts them to
    float32 here, as CPU-only training does."""
    start = time.perf_counter()
    bins = 0
    for batch in loader:
        if to_float:
            batch.float_inputs()
        bins += sum(info.num_valid_bins for info in batch.video_infos)
    return time.perf_counter() - start, bins


def run_loader_steady(loader) -> tuple[float, int]:
    """From the first batch received to the end (worker start-up excluded)."""
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    bins = sum(sum(info.num_valid_bins for info in batch.video_infos) for batch in it)
    return time.perf_counter() - start, bins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=64)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3, help="best of N interleaved runs (contention)")
    parser.add_argument("--hflip-prob", type=float, default=0.0,
                        help="training flip augmentation (DataConfig's default is 0.5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_dataset(root, args.videos, args.frames)
        cfg = dict(num_tbins=12, batch_size=8, hflip_prob=args.hflip_prob)
        loaders = {w: build_dataloader(root, "train", DataConfig(**cfg, num_workers=w), train=True)
                   for w in (0, 1, 2)}
        runs = {
            "plain h5py": lambda: plain_h5py(loaders[0], to_float=False),
            "plain h5py+float": lambda: plain_h5py(loaders[0], to_float=True),
            **{f"evdet {w} workers": (lambda w=w: run_loader(loaders[w])) for w in (0, 1, 2)},
            "evdet 2 w. +float": lambda: run_loader(loaders[2], to_float=True),
            **{f"evdet {w} w. steady": (lambda w=w: run_loader_steady(loaders[w])) for w in (1, 2)},
        }
        best: dict[str, tuple[float, int]] = {}
        first: dict[str, tuple[float, int]] = {}
        for _ in range(args.repeats):
            for name, fn in runs.items():
                elapsed, bins = fn()
                first.setdefault(name, (elapsed, bins))
                if name not in best or elapsed < best[name][0]:
                    best[name] = (elapsed, bins)
        rate = {name: bins / elapsed for name, (elapsed, bins) in best.items()}
        print(f"B=8, T=12, histo {SHAPE} uint8+gzip, {args.videos} videos x {args.frames} frames, "
              f"best of {args.repeats}, torch threads {torch.get_num_threads()}")
        for name, (elapsed, bins) in best.items():
            print(f"{name:>18}: {bins} bins in {elapsed:.3f} s = {rate[name]:7.0f} bins/s | time ratio vs "
                  f"plain h5py {rate['plain h5py'] / rate[name]:.2f}x, vs plain h5py+float "
                  f"{rate['plain h5py+float'] / rate[name]:.2f}x")
        firsts = {w: first[f"evdet {w} workers"] for w in (1, 2)}
        startup = ", ".join(f"{w} workers {bins / elapsed:.0f}" for w, (elapsed, bins) in firsts.items())
        print(f"first epoch of each DataLoader (worker start-up included), bins/s: {startup}")


if __name__ == "__main__":
    main()
