"""Hand-made ``SequenceBatch`` streams for the training-layer tests."""

from __future__ import annotations

import torch

from evdet.data.batch import SequenceBatch, VideoInfo


def make_batch(
    T: int = 2,
    B: int = 2,
    C: int = 2,
    H: int = 8,
    W: int = 8,
    start_ts: int = 0,
    delta_t: int = 50_000,
    labeled: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    padding: torch.Tensor | None = None,
    paths: list[str] | None = None,
    sensor_size: tuple[int, int] = (16, 32),
    seed: int = 0,
) -> SequenceBatch:
    g = torch.Generator().manual_seed(seed)
    labeled = torch.ones(T, B, dtype=torch.bool) if labeled is None else labeled
    mask = torch.zeros(B) if mask is None else mask
    padding = torch.zeros(B, dtype=torch.bool) if padding is None else padding
    paths = [f"/data/video{b}.h5" for b in range(B)] if paths is None else paths
    labels = []
    for t in range(T):
        row = []
        for b in range(B):
            if labeled[t, b] and not padding[b]:
                x1, y1 = 1.0 + t, 2.0 + b
                row.append(torch.tensor([[x1, y1, x1 + 4.0, y1 + 3.0, float((t + b) % 2)]]))
            else:
                row.append(torch.zeros(0, 5))
        labels.append(row)
    infos = [
        VideoInfo(path="" if padding[b] else paths[b], start_ts=start_ts, delta_t=delta_t, duration=10**6,
                  sensor_size=sensor_size, scale=(sensor_size[0] / H, sensor_size[1] / W))
        for b in range(B)
    ]
    return SequenceBatch(
        inputs=torch.rand(T, B, C, H, W, generator=g),
        labels=labels,
        mask_keep_memory=mask.float(),
        frame_is_labeled=labeled,
        video_infos=infos,
        padding=padding,
    )


def make_stream(n: int = 4, **kw) -> list[SequenceBatch]:
    """``n`` consecutive batches of the same B videos (mask 0 at the first, 1 afterwards)."""
    T = kw.get("T", 2)
    delta_t = kw.get("delta_t", 50_000)
    B = kw.get("B", 2)
    return [
        make_batch(start_ts=i * T * delta_t, mask=torch.full((B,), 0.0 if i == 0 else 1.0), seed=i, **kw)
        for i in range(n)
    ]
