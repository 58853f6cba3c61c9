"""Demo videos: a trained detector run over recordings, rendered frame by frame (``evdet-demo-video``).

One video frame per time bin. Each recording is a panel (events in colour, ground truth thin white when
a ``_bbox.npy`` is present, detections in class colours with "name score", recording name and bin end
time); several recordings play side by side in a grid, each with its own recurrent state. A legend
strip runs along the bottom.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from torch import Tensor, nn

from evdet.inference.checkpoint import CheckpointInfo, load_detector
from evdet.inference.streaming import iter_detections
from evdet.io.boxes import label_path_for, recording_stem
from evdet.io.output_paths import check_output, record_output
from evdet.viz.grid import add_legend_strip, render_panel, tile_images
from evdet.viz.video import VideoWriter, format_for_path, png_fallback_for

TOOL = "evdet-demo-video"
TARGET_PANEL_HEIGHT = 360
"""Panels are upscaled by an integer factor until at least this tall (pixels), so labels stay legible."""


def default_scale(network_size: tuple[int, int]) -> int:
    """Integer upscaling of a ``(height, width)`` frame: ``ceil(360 / height)``, at least 1 (×4 for 96 px)."""
    return max(1, math.ceil(TARGET_PANEL_HEIGHT / int(network_size[0])))


def batch_frames(batch, detections: Sequence[Sequence[Tensor]], classes: Sequence[str],
                 representation: str | None = None, scale: int = 4, show_gt: bool = True,
                 cols: int | None = None, names: Sequence[str] | None = None) -> list[np.ndarray]:
    """Render the ``T`` bins of a batch as ``T`` grid images (one panel per column ``b``).

    Args:
        batch: a ``SequenceBatch`` (``inputs`` ``Tensor[T, B, C, H, W]``, labels xyxy network pixels).
        detections: ``T × B`` ``Tensor[n, 6]`` (x1, y1, x2, y2, score, class_idx), network pixels.
        classes: class names (index = class_idx).
        representation: input representation name (colouring), or ``None`` to guess.
        scale: integer upscaling of every panel.
        show_gt: draw ground truth at labelled bins.
        cols: grid columns (default ``ceil(sqrt(B))``).
        names: panel titles per column (default: the recording name of the column).

    Returns:
        ``T`` BGR ``uint8`` images (bins of the zero-padded tail of every column are left out).
    """
    inputs = batch.float_inputs()
    t_count = int(inputs.shape[0])
    valid = max((int(v.num_valid_bins) or t_count) if not bool(batch.padding[b]) else 0
                for b, v in enumerate(batch.video_infos))
    frames = []
    for t in range(min(t_count, valid)):
        panels = []
        for b, vinfo in enumerate(batch.video_infos):
            ended = bool(batch.padding[b]) or (vinfo.num_valid_bins and t >= int(vinfo.num_valid_bins))
            title = names[b] if names is not None else (recording_stem(vinfo.path) if vinfo.path else "")
            labelled = bool(batch.frame_is_labeled[t, b])
            panels.append(render_panel(
                inputs[t, b], representation=representation,
                gt=batch.labels[t][b].cpu().numpy() if (show_gt and labelled and not ended) else None,
                detections=None if ended else detections[t][b].detach().cpu().numpy(),
                classes=classes, scale=scale,
                t_us=None if ended else int(vinfo.start_ts) + (t + 1) * int(vinfo.delta_t),
                title=f"{title} (ended)" if ended else title, dim=bool(ended)))
        grid = tile_images(panels, cols=cols)
        frames.append(add_legend_strip(grid, classes, show_gt=show_gt))
    return frames


def demo_frames(detector: nn.Module, info: CheckpointInfo, inputs: Sequence[str | os.PathLike], *,
                scale: int | None = None, score_thresh: float | None = None, show_gt: bool = True,
                max_duration: int | None = None, cols: int | None = None) -> Iterator[np.ndarray]:
    """Yield demo frames (BGR ``uint8``, one per time bin) for recordings played side by side.

    ``max_duration`` (µs) stops after that much recording time; other arguments as
    :func:`render_demo_video`.
    """
    scale = default_scale(info.network_size) if scale is None else int(scale)
    max_frames = None if max_duration is None else max(1, int(max_duration) // int(info.delta_t))
    names = [recording_stem(p) for p in inputs]
    done = 0
    for batch, dets in iter_detections(detector, info, inputs, batch_size=len(inputs),
                                       score_thresh=score_thresh):
        for frame in batch_frames(batch, dets, info.classes, representation=info.representation, scale=scale,
                                  show_gt=show_gt, cols=cols, names=names):
            yield frame
            done += 1
            if max_frames is not None and done >= max_frames:
                return


def render_demo_video(checkpoint: str | os.PathLike | tuple[nn.Module, CheckpointInfo],
                      inputs: Sequence[str | os.PathLike], output: str | os.PathLike, *,
                      fmt: str | None = None, fps: float | None = None, scale: int | None = None,
                      score_thresh: float | None = None, show_gt: bool = True,
                      max_duration: int | None = None, cols: int | None = None,
                      overwrite: bool = False) -> Path:
    """Run a detector over recordings and write the demo video.

    Args:
        checkpoint: a ``.ckpt`` path (loaded with ``load_detector``) or a ``(detector, info)`` pair.
        inputs: recordings (``.dat``, ``.raw``, ``.h5``) compatible with the model; several play side by
            side in a grid. Ground truth is drawn when ``<name>_bbox.npy`` sits next to a recording.
        output: ``video.mp4``, ``video.gif`` (needs Pillow) or a folder for PNG frames (see ``fmt``).
        fmt: ``"mp4"``, ``"gif"`` or ``"png"``; default from ``output``'s suffix (no suffix: PNG folder).
        fps: frames per second; default real time (``1e6 / delta_t``, 20 fps for 50 ms bins).
        scale: integer upscaling of each panel; default :func:`default_scale` (×4 at 96 px height).
        score_thresh: detection threshold (default the checkpoint's).
        show_gt: draw ground truth (thin white) at labelled bins.
        max_duration: only the first ``max_duration`` µs of the recordings.
        cols: grid columns (default ``ceil(sqrt(len(inputs)))``).
        overwrite: replace an earlier evdet demo at ``output`` (:mod:`evdet.io.output_paths`: ``output``
            may not be, contain or lie inside an input, and what evdet did not write is never replaced).

    Returns:
        The path written (``output``, or ``<stem>_frames/`` if OpenCV could not write mp4; a warning says so).

    Raises:
        ValueError: no inputs, inputs that do not fit the model, an output suffix that is no format
            (e.g. ``.avi``), an output path refused by the policy (``OutputPathError``, checked before
            the model runs). FileNotFoundError: a missing file.
    """
    if not inputs:
        raise ValueError("render_demo_video: no input recordings given")
    output = Path(output)
    fmt = format_for_path(output) if fmt is None else fmt
    read = [*inputs, *(label_path_for(p) for p in inputs)]
    if not isinstance(checkpoint, tuple):
        read.append(checkpoint)
    check_output(output, inputs=read, overwrite=overwrite, folder=fmt == "png")
    if fmt == "mp4":  # replaced by PNG frames if OpenCV cannot write mp4
        check_output(png_fallback_for(output), inputs=read, overwrite=overwrite, folder=True)
    if isinstance(checkpoint, tuple):
        detector, info = checkpoint
    else:
        detector, info = load_detector(checkpoint)
    fps = 1e6 / info.delta_t if fps is None else float(fps)
    with VideoWriter(output, fps=fps, fmt=fmt) as writer:
        for frame in demo_frames(detector, info, inputs, scale=scale, score_thresh=score_thresh,
                                 show_gt=show_gt, max_duration=max_duration, cols=cols):
            writer.write(frame)
    record_output(writer.path, TOOL)
    return writer.path
