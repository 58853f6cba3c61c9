"""Validation bookkeeping: batches + detections → per-video ``BBOX_DTYPE`` arrays, DDP gathering, scoring.

Semantics (SPEC 6, docs/architecture.md): only bins with ``frame_is_labeled`` in non-padding columns are
kept; ground truth and detections of bin ``k`` are stamped with the bin end time
``video_infos[b].bin_end(k)`` (µs) and scaled from network to sensor pixels; they are
accumulated per video (``video_infos[b].path``) and scored once, over all videos, at epoch end.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from evdet.evaluation.accumulator import DetectionAccumulator
from evdet.evaluation.detections import boxes_to_bbox_array
from evdet.evaluation.presets import EvalPreset
from evdet.io.boxes import recording_stem, save_boxes
from evdet.io.dtypes import BBOX_DTYPE

__all__ = [
    "accumulate_batch",
    "accumulate_all_detections",
    "write_detections",
    "evaluate_accumulator",
    "gather_accumulator",
]

def _scale_of(
    info, network_size: tuple[int, int], sensor_size: tuple[int, int] | None
) -> tuple[float, float]:
    """``(sx, sy)`` sensor pixels per network pixel for one column."""
    if sensor_size is None or min(sensor_size) <= 0:
        sensor_size = tuple(getattr(info, "sensor_size", (0, 0)) or (0, 0))
    if min(sensor_size) <= 0:
        return (1.0, 1.0)
    return (sensor_size[1] / network_size[1], sensor_size[0] / network_size[0])


def accumulate_batch(
    accumulator: DetectionAccumulator,
    batch,
    detections: Sequence[Sequence[Tensor]],
    sensor_size: tuple[int, int] | None = None,
) -> int:
    """Add the labelled bins of one streamed batch to ``accumulator``.

    Args:
        accumulator: per-video store (``evdet.evaluation.DetectionAccumulator``).
        batch: a ``SequenceBatch`` (inputs ``Tensor[T, B, C, H, W]``; labels T × B ``Tensor[n, 5]`` xyxy
            network pixels + class_idx).
        detections: T × B ``Tensor[m, 6]`` ``(x1, y1, x2, y2, score, class_idx)`` in network pixels, as
            returned by the detector's ``get_boxes``.
        sensor_size: ``(height, width)`` of the recordings (pixels); None uses ``video_infos[b].sensor_size``.
            Boxes are scaled by sensor / network size.

    Returns:
        the number of labelled bins added.

    Raises:
        ValueError: ``detections`` is not T × B.
    """
    T, B = int(batch.inputs.shape[0]), int(batch.inputs.shape[1])
    net_hw = (int(batch.inputs.shape[-2]), int(batch.inputs.shape[-1]))
    if len(detections) != T or any(len(row) != B for row in detections):
        raise ValueError(f"accumulate_batch: detections must be T × B = {T} × {B} lists, got "
                         f"{len(detections)} × {[len(r) for r in detections]}")
    labeled = batch.frame_is_labeled.detach().cpu().numpy().astype(bool)  # [T, B]
    padding = batch.padding.detach().cpu().numpy().astype(bool)  # [B]
    added = 0
    for b in range(B):
        if padding[b] or not labeled[:, b].any():
            continue
        vi = batch.video_infos[b]
        own = sensor_size if sensor_size is not None else tuple(getattr(vi, "sensor_size", (0, 0)))
        scale = _scale_of(vi, net_hw, own)
        gts, dts = [], []
        for k in np.flatnonzero(labeled[:, b]):
            t_end = vi.bin_end(int(k))
            gt = batch.labels[k][b].detach().float().cpu()
            dt = detections[k][b].detach().float().cpu()
            gts.append(boxes_to_bbox_array(gt[:, :4].numpy(), gt[:, 4].numpy().astype(np.int64), t_end,
                                           scale=scale))
            dts.append(boxes_to_bbox_array(dt[:, :4].numpy(), dt[:, 5].numpy().astype(np.int64), t_end,
                                           scores=dt[:, 4].numpy(), scale=scale))
            added += 1
        accumulator.add(str(vi.path), np.concatenate(gts), np.concatenate(dts))
    return added


def accumulate_all_detections(
    accumulator: DetectionAccumulator,
    batch,
    detections: Sequence[Sequence[Tensor]],
    sensor_size: tuple[int, int] | None = None,
) -> None:
    """Add the detections of every bin holding data (labelled or not; padding columns and the zero tail
    of a video excluded), stamped with the bin end time, in sensor pixels, with no ground truth.
    Used by ``evdet-train --just-test`` to write ``<recording>_bbox.npy`` detection files."""
    T, B = int(batch.inputs.shape[0]), int(batch.inputs.shape[1])
    net_hw = (int(batch.inputs.shape[-2]), int(batch.inputs.shape[-1]))
    padding = batch.padding.detach().cpu().numpy().astype(bool)  # [B]
    empty = np.zeros(0, dtype=BBOX_DTYPE)
    for b in range(B):
        if padding[b]:
            continue
        vi = batch.video_infos[b]
        valid = int(getattr(vi, "num_valid_bins", T) or T)
        own = sensor_size if sensor_size is not None else tuple(getattr(vi, "sensor_size", (0, 0)))
        scale = _scale_of(vi, net_hw, own)
        dts = []
        for k in range(min(T, valid)):
            t_end = vi.bin_end(k)
            dt = detections[k][b].detach().float().cpu()
            dts.append(boxes_to_bbox_array(dt[:, :4].numpy(), dt[:, 5].numpy().astype(np.int64), t_end,
                                           scores=dt[:, 4].numpy(), scale=scale))
        if dts:
            accumulator.add(str(vi.path), empty, np.concatenate(dts))


def write_detections(accumulator: DetectionAccumulator, out_dir: str | os.PathLike) -> list[Path]:
    """Write each video's detections as ``out_dir/<recording stem>_bbox.npy`` (``BBOX_DTYPE``, sorted
    by ``t``, atomic); returns the written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for video in accumulator.videos:
        _, dt = accumulator.boxes(video)
        path = out / f"{recording_stem(video)}_bbox.npy"
        save_boxes(path, dt)
        written.append(path)
    return written


def gather_accumulator(accumulator: DetectionAccumulator) -> DetectionAccumulator:
    """Merge the accumulators of every DDP rank (``all_gather_object``); the input itself when not
    distributed. Every rank gets the same merged result, so every rank computes the same metrics."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return accumulator
    parts: list[DetectionAccumulator | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, accumulator)
    merged = DetectionAccumulator()
    return merged.merge([p for p in parts if p is not None])


def evaluate_accumulator(
    accumulator: DetectionAccumulator, classes: Sequence[str], preset: EvalPreset
) -> dict[str, float]:
    """COCO metrics of everything accumulated (see ``DetectionAccumulator.evaluate``): the 12 COCO numbers
    (−1 where COCO leaves one undefined, e.g. no ground truth left after the box filter) and ``AP_<class>``.

    With no ground truth accumulated at all (e.g. a very short ``--limit-val-batches`` run) AP, AP50 and
    AP75 are 0, so that logging and checkpointing still work.
    """
    has_gt = any(len(accumulator.boxes(v)[0]) for v in accumulator.videos)
    if not has_gt:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    return {k: float(v) for k, v in accumulator.evaluate(list(classes), preset=preset).items()}
