"""Validation bookkeeping: batches + detections → per-video ``BBOX_DTYPE`` arrays, DDP gathering, scoring.

Semantics (SPEC 6, docs/architecture.md): only bins with ``frame_is_labeled`` in non-padding columns are
kept, converted by :func:`evdet.inference.label_rows.batch_label_rows` (stamped with the bin end time,
in sensor pixels); they are accumulated per video (``video_infos[b].path``) and scored once, over all
videos, at epoch end.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from evdet.evaluation.accumulator import DetectionAccumulator
from evdet.evaluation.presets import EvalPreset
from evdet.inference.label_rows import batch_label_rows
from evdet.io.boxes import recording_stem, save_boxes
from evdet.io.dtypes import BBOX_DTYPE

__all__ = [
    "accumulate_batch",
    "accumulate_all_detections",
    "write_detections",
    "evaluate_accumulator",
    "gather_accumulator",
]

def accumulate_batch(accumulator: DetectionAccumulator, batch, detections: Sequence[Sequence[Tensor]]) -> int:
    """Add the labelled bins of one streamed batch (ground truth and detections) to ``accumulator``.

    Args:
        accumulator: per-video store (``evdet.evaluation.DetectionAccumulator``).
        batch: a ``SequenceBatch``.
        detections: T × B ``Tensor[m, 6]`` ``(x1, y1, x2, y2, score, class_idx)`` in network pixels, as
            returned by the detector's ``get_boxes``.

    Returns:
        the number of labelled bins added.

    Raises:
        ValueError: ``detections`` is not T × B.
    """
    added = 0
    for rows in batch_label_rows(batch, detections, labeled_only=True):
        accumulator.add(rows.path, rows.ground_truth, rows.detections)
        added += rows.bins
    return added


def accumulate_all_detections(accumulator: DetectionAccumulator, batch,
                              detections: Sequence[Sequence[Tensor]]) -> None:
    """Add the detections of every bin holding data (labelled or not; padding columns and the zero tail
    of a video excluded), with no ground truth. Used by ``evdet-train --just-test`` to write
    ``<recording>_bbox.npy`` detection files."""
    empty = np.zeros(0, dtype=BBOX_DTYPE)
    for rows in batch_label_rows(batch, detections, labeled_only=False):
        accumulator.add(rows.path, empty, rows.detections)


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
