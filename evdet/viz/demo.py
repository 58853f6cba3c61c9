"""Demo videos (``evdet-demo-video``, the quick start's ``demo.mp4``): what a detector sees, frame by frame.

One video frame per time bin. Each recording is a panel drawn at **sensor resolution** from its events
(:mod:`evdet.viz.event_frames`: the raw recording, or the source recording of an HDF5 tensor file; the
stored tensor enlarged only when no events can be found), enlarged by an integer factor until it is at
least :data:`DEMO_PANEL_HEIGHT` pixels tall. On it:

- ground truth (``<name>_bbox.npy`` beside the recording, or beside its event recording) as white dashed
  boxes, or, with ``layout="side-by-side"``, in a panel of its own left of the detections;
- detections in class colours with "name score" (and "#track" when the detections carry track ids),
  above a score threshold, after a class-agnostic NMS for display (one box per object when classes
  compete);
- a header with the recording name and the bin end time; a legend strip along the bottom.

Detections come either from a checkpoint run over the recordings (:func:`render_demo_video`; boxes
converted from network to sensor pixels by :func:`evdet.inference.batch_label_rows`, the one conversion)
or from ``_bbox.npy`` detection files (:func:`render_detections_video`; e.g. ``evdet-detect``'s or a
tracker's). Several recordings play side by side in a grid.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evdet.data.labels import assign_boxes_to_bins, has_real_track_ids
from evdet.data.rvt import is_rvt_sequence, rvt_ground_truth
from evdet.io.boxes import label_path_for, load_boxes, recording_stem
from evdet.io.dtypes import BBOX_DTYPE
from evdet.io.interrupts import check_interrupt
from evdet.io.label_map import EMPTY_CLASS
from evdet.io.output_paths import check_output, record_contents, record_output
from evdet.viz.draw import GT_BGR, draw_boxes, draw_text, text_size, upscale
from evdet.viz.event_frames import EventFrames, find_events_recording
from evdet.viz.grid import add_header, add_legend_strip, tile_images
from evdet.viz.video import VideoWriter, format_for_path, png_fallback_for

TOOL = "evdet-demo-video"
TARGET_PANEL_HEIGHT = 360
"""Default minimum height (pixels) of :func:`default_scale`."""
DEMO_PANEL_HEIGHT = 480
"""Demo panels are enlarged by an integer factor until at least this tall (×5 for a 96 px sensor, ×2 for
Gen1's 240 px, ×1 from 480 px on)."""
LAYOUTS = ("overlay", "side-by-side")
MAX_PANEL_SIDE = 8192
"""Largest side (pixels) of an enlarged panel: H.264's largest frames, and far beyond any screen."""


def default_scale(size: tuple[int, int], min_height: int = TARGET_PANEL_HEIGHT) -> int:
    """Integer upscaling of a ``(height, width)`` frame: ``ceil(min_height / height)``, at least 1."""
    return max(1, math.ceil(int(min_height) / int(size[0])))


@dataclass(frozen=True)
class DemoOptions:
    """How detections and ground truth are drawn.

    Attributes:
        score_thresh: detections with a lower score are not drawn.
        display_nms: IoU of the class-agnostic NMS applied for display (of overlapping boxes of any
            classes only the best-scored is drawn); None: off.
        layout: ``"overlay"`` (ground truth dashed white on the detections' panel) or ``"side-by-side"``
            (ground truth | detections).
        show_gt: draw ground truth where a label file exists.
        track_ids: write ``#id`` on detections; None: when the detections carry track ids (an id seen at
            more than one time).
        scale: integer enlargement of the sensor frame; None: :func:`default_scale` to
            :data:`DEMO_PANEL_HEIGHT`.
    """

    score_thresh: float = 0.3
    display_nms: float | None = 0.5
    layout: str = "overlay"
    show_gt: bool = True
    track_ids: bool | None = None
    scale: int | None = None

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"DemoOptions.layout: unknown layout {self.layout!r}; valid: {list(LAYOUTS)}")
        if not 0.0 <= self.score_thresh <= 1.0:
            raise ValueError(f"DemoOptions.score_thresh must be in [0, 1], got {self.score_thresh}")
        if self.display_nms is not None and not 0.0 < self.display_nms <= 1.0:
            raise ValueError(f"DemoOptions.display_nms must be in (0, 1] or None, got {self.display_nms}")
        if self.scale is not None and (int(self.scale) != self.scale or self.scale < 1):
            raise ValueError(f"DemoOptions.scale must be an integer >= 1, got {self.scale}")


@dataclass
class Panel:
    """One recording at one time bin.

    Attributes:
        name: recording name. events: BGR ``[H, W, 3]`` at sensor resolution. t_end: bin end (µs), None
            once the recording has ended. detections, ground_truth: ``BBOX_DTYPE`` rows in sensor pixels
            whose ``class_id`` is the model's class index (−1: a class the model does not know), or None.
        tensor_view: ``events`` is an enlarged stored tensor. track_ids: write detection track ids.
    """

    name: str
    events: np.ndarray
    t_end: int | None
    detections: np.ndarray | None = None
    ground_truth: np.ndarray | None = None
    tensor_view: bool = False
    track_ids: bool = False


def boxes_at(boxes: np.ndarray, t_end: int, delta_t: int) -> np.ndarray:
    """Rows of ``boxes`` (``BBOX_DTYPE`` sorted by ``t``) shown in the bin ``(t_end - delta_t, t_end]``: the
    latest annotation of each track in it (of the latest instant without real track ids; SPEC 4.1)."""
    per_bin, _ = assign_boxes_to_bins(boxes, int(t_end) - int(delta_t), int(delta_t), 1,
                                      real_track_ids=has_real_track_ids(boxes))
    return per_bin[0]


def class_indices(label_map: Mapping[int, str], classes: Sequence[str]) -> dict[int, int]:
    """``{label-map id: class index}`` by name (ids of classes not in ``classes`` are left out)."""
    index = {name: i for i, name in enumerate(classes)}
    return {int(cid): index[name] for cid, name in label_map.items() if name in index}


def _to_index(boxes: np.ndarray, mapping: Mapping[int, int], empty_ids: Sequence[int]) -> np.ndarray:
    """A copy with ``class_id`` replaced by the class index (−1 for unknown ids); "empty" boxes dropped."""
    boxes = boxes[~np.isin(boxes["class_id"], np.asarray(list(empty_ids), dtype=np.int64))]
    ids = boxes["class_id"].astype(np.int64)
    keys = np.asarray(sorted(mapping), dtype=np.int64)
    vals = np.asarray([mapping[k] for k in sorted(mapping)], dtype=np.int64)
    pos = np.clip(np.searchsorted(keys, ids), 0, max(len(keys) - 1, 0))
    known = (keys[pos] == ids) if keys.size else np.zeros(ids.shape, bool)
    out = boxes.astype(BBOX_DTYPE, copy=True)
    out["class_id"] = np.where(known, vals[pos] if vals.size else 0, -1).astype(np.int64).astype(np.uint32)
    return out


def _xyxy(rows: np.ndarray) -> np.ndarray:
    return np.stack([rows["x"], rows["y"], rows["x"] + rows["w"], rows["y"] + rows["h"]], axis=1)


def select_for_display(detections: np.ndarray, score_thresh: float, nms_iou: float | None) -> np.ndarray:
    """Detections (``BBOX_DTYPE``) with ``class_confidence >= score_thresh``, then, with ``nms_iou``, a
    class-agnostic NMS (a box is dropped when its IoU with a better-scored kept box is > ``nms_iou``);
    kept rows in decreasing score order."""
    kept = detections[detections["class_confidence"] >= score_thresh]
    if nms_iou is None or kept.size < 2:
        return kept[np.argsort(-kept["class_confidence"], kind="stable")]
    import torch

    from evdet.ops.nms import nms

    order = nms(torch.from_numpy(_xyxy(kept).astype(np.float32)),
                torch.from_numpy(kept["class_confidence"].astype(np.float32)), float(nms_iou))
    return kept[order.numpy()]


def _class_of(rows: np.ndarray) -> np.ndarray:
    ids = rows["class_id"].astype(np.int64)
    return np.where(ids >= 2 ** 31, -1, ids)  # -1 stored as uint32


def render_panel_image(panel: Panel, classes: Sequence[str], options: DemoOptions, scale: int,
                       font_scale: float) -> np.ndarray:
    """Draw one :class:`Panel` (see the module docstring); returns a BGR ``uint8`` image."""
    base = upscale(panel.events, scale)
    if panel.t_end is None:
        return add_header((base // 3).astype(np.uint8), f"{panel.name} (ended)", font_scale)
    line = max(2, round(scale / 2.5))
    gt_img = det_img = base
    gt = panel.ground_truth if options.show_gt else None
    if gt is not None and gt.size:
        labels = _class_of(gt) if options.layout == "side-by-side" else None
        gt_img = draw_boxes(base, _xyxy(gt), labels=labels, classes=classes, color=GT_BGR, thickness=line,
                            scale=scale, dashed=True, font_scale=font_scale,
                            show_text=options.layout == "side-by-side")
    if options.layout == "overlay":
        det_img = gt_img
    dets = panel.detections if panel.detections is not None else np.zeros(0, BBOX_DTYPE)
    dets = select_for_display(dets, options.score_thresh, options.display_nms)
    if dets.size:
        det_img = draw_boxes(det_img, _xyxy(dets), labels=_class_of(dets), scores=dets["class_confidence"],
                             classes=classes, thickness=line + 1, scale=scale, font_scale=font_scale,
                             track_ids=dets["track_id"] if panel.track_ids else None)
    time_text = f"t = {panel.t_end / 1e6:.3f} s"
    header = f"{panel.name}   {time_text}"
    if panel.tensor_view:
        header += "   [stored tensor: no event recording found, see --events]"
    if options.layout == "overlay":
        return add_header(det_img, header, font_scale)
    left = _caption(gt_img, "ground truth" if gt is not None else "ground truth: no label file", font_scale)
    right = _caption(det_img, "detections", font_scale)
    sep = np.full((left.shape[0], 4, 3), 90, np.uint8)
    return add_header(np.concatenate([left, sep, right], axis=1), header, font_scale)


def _caption(image: np.ndarray, text: str, font_scale: float) -> np.ndarray:
    _, h, base = text_size(text, font_scale)
    return draw_text(image, text, (image.shape[1], image.shape[0]), color=(255, 255, 255),
                     background=(0, 0, 0), font_scale=font_scale) if h + base < image.shape[0] else image


def compose_frame(panels: Sequence[Panel], classes: Sequence[str], options: DemoOptions,
                  cols: int | None = None) -> np.ndarray:
    """The video frame of one time step: every panel, tiled, with the legend strip."""
    size = panels[0].events.shape[:2]
    scale = options.scale or default_scale(size, DEMO_PANEL_HEIGHT)
    if max(size) * scale > MAX_PANEL_SIDE:
        raise ValueError(f"--scale {scale} enlarges the {size[0]}x{size[1]} sensor frame to "
                         f"{size[0] * scale}x{size[1] * scale} pixels; at most {MAX_PANEL_SIDE} per side "
                         f"(--scale {MAX_PANEL_SIDE // max(size)} here)")
    font_scale = float(np.clip(size[0] * scale / 800.0, 0.5, 1.0))
    images = [render_panel_image(p, classes, options, scale, font_scale) for p in panels]
    grid = tile_images(images, cols=cols)
    gt_label = "ground truth (white dashed)" if options.layout == "overlay" else "ground truth"
    note = f"score >= {options.score_thresh:.2f}"
    if options.display_nms is not None:
        note += f", class-agnostic NMS {options.display_nms:g}"
    return add_legend_strip(grid, classes, show_gt=options.show_gt, font_scale=font_scale,
                            gt_label=gt_label, note=note)


# -- sources of panels ---------------------------------------------------------------------------------


@dataclass
class _Recording:
    path: str
    frames: EventFrames
    ground_truth: np.ndarray | None  # class index rows, sensor pixels


def _open_recordings(inputs: Sequence[str | os.PathLike], events: Sequence[str | os.PathLike],
                     label_map: Mapping[int, str], classes: Sequence[str]) -> list[_Recording]:
    mapping = class_indices(label_map, classes)
    empty = [cid for cid, name in label_map.items() if name == EMPTY_CLASS]
    out = []
    for path in inputs:
        if not Path(path).exists():
            raise FileNotFoundError(f"recording not found: {path}")
        ev = find_events_recording(path, events)
        frames = EventFrames(path, ev)
        gt = None
        if is_rvt_sequence(path):
            gt = _to_index(rvt_ground_truth(path), mapping, empty)
        for candidate in () if gt is not None else (Path(path), ev):
            if candidate is not None and label_path_for(candidate).exists():
                gt = _to_index(load_boxes(label_path_for(candidate)), mapping, empty)
                break
        out.append(_Recording(str(path), frames, gt))
    return out


def _panel(rec: _Recording, t_end: int, delta_t: int, detections: np.ndarray | None,
           track_ids: bool) -> Panel:
    return Panel(recording_stem(rec.path), rec.frames.image(t_end, delta_t), t_end,
                 None if detections is None else boxes_at(detections, t_end, delta_t),
                 None if rec.ground_truth is None else boxes_at(rec.ground_truth, t_end, delta_t),
                 tensor_view=rec.frames.kind == "tensor", track_ids=track_ids)


def _ended(rec: _Recording) -> Panel:
    h, w = rec.frames.sensor_size
    return Panel(recording_stem(rec.path), np.zeros((h, w, 3), np.uint8), None)


def model_panels(detector, info, recordings: Sequence[_Recording], score_thresh: float
                 ) -> Iterator[list[Panel]]:
    """Run ``detector`` (with its :class:`~evdet.inference.CheckpointInfo` ``info``) over the recordings,
    side by side, and yield the panels of every time bin."""
    from evdet.inference.label_rows import batch_label_rows
    from evdet.inference.streaming import iter_detections

    paths = [r.path for r in recordings]
    for batch, dets in iter_detections(detector, info, paths, batch_size=len(paths),
                                       score_thresh=score_thresh):
        rows = {r.path: r.detections for r in batch_label_rows(batch, dets, labeled_only=False)}
        columns = {}  # input index -> (video info, valid bins)
        for b, vi in enumerate(batch.video_infos):
            if bool(batch.padding[b]) or not vi.path:
                continue
            i = b if b < len(paths) and paths[b] == vi.path else paths.index(vi.path)
            columns[i] = (vi, int(vi.num_valid_bins) or batch.num_tbins)
        for k in range(batch.num_tbins):
            if not any(k < valid for _, valid in columns.values()):
                return
            panels = []
            for i, rec in enumerate(recordings):
                vi, valid = columns.get(i, (None, 0))
                if k >= valid:
                    panels.append(_ended(rec))
                    continue
                found = rows.get(vi.path, np.zeros(0, BBOX_DTYPE))
                panels.append(_panel(rec, vi.bin_end(k), int(vi.delta_t), found, False))
            yield panels


def file_panels(detections: Sequence[np.ndarray], recordings: Sequence[_Recording], delta_t: int,
                track_ids: bool | None) -> Iterator[list[Panel]]:
    """Yield the panels of every time bin for detections read from files (class index rows, sensor px)."""
    from evdet.data.sources import probe_video

    specs = []
    for rec in recordings:
        raw = rec.path.lower().endswith((".dat", ".raw"))
        specs.append(probe_video(rec.path, delta_t=delta_t if raw else None))
    show_ids = [has_real_track_ids(d) if track_ids is None else bool(track_ids) for d in detections]
    for k in range(max(s.num_frames for s in specs)):
        panels = []
        for rec, spec, dets, ids in zip(recordings, specs, detections, show_ids, strict=True):
            if k >= spec.num_frames:
                panels.append(_ended(rec))
            else:
                panels.append(_panel(rec, spec.bin_end(k), spec.delta_t, dets, ids))
        yield panels


def _num_frames(inputs: Sequence[str | os.PathLike], delta_t: int) -> int:
    from evdet.data.sources import probe_video

    return max(probe_video(p, delta_t=delta_t if str(p).lower().endswith((".dat", ".raw")) else None
                           ).num_frames for p in inputs)


def check_demo_output(output: str | os.PathLike, fmt: str | None, read: Sequence[str | os.PathLike],
                      overwrite: bool) -> str:
    """Apply :mod:`evdet.io.output_paths` to a demo output (and to its PNG fallback folder for mp4) before
    any frame is drawn; returns the format (``fmt`` or the one implied by ``output``'s suffix)."""
    fmt = format_for_path(output, fmt)
    check_output(output, inputs=read, overwrite=overwrite, folder=fmt == "png", tool=TOOL)
    if fmt == "mp4":  # replaced by PNG frames if no ffmpeg is found
        check_output(png_fallback_for(output), inputs=read, overwrite=overwrite, folder=True, tool=TOOL)
    return fmt


def _write(panels: Iterator[list[Panel]], classes: Sequence[str], options: DemoOptions,
           output: str | os.PathLike, fmt: str, fps: float, cols: int | None, max_frames: int | None,
           total: int, progress: bool) -> Path:
    from tqdm.auto import tqdm

    total = total if max_frames is None else min(total, max_frames)
    frames = (compose_frame(step, classes, options, cols) for step in panels)
    first = next(frames)  # a frame size refused (compose_frame) before anything is opened
    Path(output).parent.mkdir(parents=True, exist_ok=True)  # as every evdet output: its folders are made
    with VideoWriter(output, fps=fps, fmt=fmt) as writer, \
            tqdm(total=total, unit="frame", desc="demo video", disable=not progress) as bar:
        for frame in itertools.chain([first], frames):
            check_interrupt()
            writer.write(frame)
            bar.update(1)
            if max_frames is not None and writer.num_frames >= max_frames:
                break
    record_output(writer.path, TOOL)
    if writer.fmt == "png":  # its frames too: a later --overwrite deletes nothing else put there
        record_contents(writer.path, TOOL)
    return writer.path


def render_demo_video(checkpoint, inputs: Sequence[str | os.PathLike], output: str | os.PathLike, *,
                      options: DemoOptions | None = None, events: Sequence[str | os.PathLike] = (),
                      fmt: str | None = None, fps: float | None = None, max_duration: int | None = None,
                      cols: int | None = None, progress: bool = False, overwrite: bool = False) -> Path:
    """Run a detector over recordings and write the demo video.

    Args:
        checkpoint: a ``.ckpt`` path (loaded with ``load_detector``) or a ``(detector, info)`` pair.
        inputs: recordings (``.dat``, ``.raw``, ``.h5``) compatible with the model; several play side by
            side in a grid. Ground truth: ``<name>_bbox.npy`` beside a recording (or its event recording).
        output: ``video.mp4`` (H.264), ``video.gif`` or a folder for PNG frames (see ``fmt``).
        options: drawing options (:class:`DemoOptions`; default ``DemoOptions()``).
        events: event recordings, or folders searched recursively, where the source recordings of HDF5
            inputs are looked for by name (see :func:`evdet.viz.event_frames.find_events_recording`).
        fmt: ``"mp4"``, ``"gif"`` or ``"png"``; default from ``output``'s suffix (no suffix: PNG folder).
        fps: frames per second; default real time (``1e6 / delta_t``, 20 fps for 50 ms bins).
        max_duration: only the first ``max_duration`` µs of the recordings.
        cols: grid columns (default ``ceil(sqrt(len(inputs)))``).
        progress: a progress bar with ETA on stderr.
        overwrite: replace an earlier evdet demo at ``output`` (:mod:`evdet.io.output_paths`: ``output``
            may not be, contain or lie inside an input, and what evdet did not write is never replaced).

    Returns:
        The path written (``output``, or ``<stem>_frames/`` when no ffmpeg is available; a warning says so).

    Raises:
        ValueError: no inputs, inputs that do not fit the model, an output suffix that is no format
            (e.g. ``.avi``), an output path refused by the policy (``OutputPathError``, checked before
            the model runs). FileNotFoundError: a missing file.
    """
    from evdet.inference.checkpoint import load_detector

    if not inputs:
        raise ValueError("render_demo_video: no input recordings given")
    read = [*inputs, *(label_path_for(p) for p in inputs), *events]
    fmt = check_demo_output(output, fmt, read + ([] if isinstance(checkpoint, tuple) else [checkpoint]),
                            overwrite)
    options = options or DemoOptions()
    detector, info = checkpoint if isinstance(checkpoint, tuple) else load_detector(checkpoint)
    recordings = _open_recordings(inputs, events, info.label_map, info.classes)
    try:
        fps = 1e6 / info.delta_t if fps is None else float(fps)
        max_frames = None if max_duration is None else max(1, int(max_duration) // int(info.delta_t))
        return _write(model_panels(detector, info, recordings, options.score_thresh), info.classes, options,
                      output, fmt, fps, cols, max_frames, _num_frames(inputs, info.delta_t), progress)
    finally:
        for rec in recordings:
            rec.frames.close()


def render_detections_video(detections: Sequence[str | os.PathLike | np.ndarray],
                            inputs: Sequence[str | os.PathLike], output: str | os.PathLike, *,
                            label_map: Mapping[int, str], options: DemoOptions | None = None,
                            events: Sequence[str | os.PathLike] = (), delta_t: int = 50_000,
                            fmt: str | None = None, fps: float | None = None, max_duration: int | None = None,
                            cols: int | None = None, progress: bool = False, overwrite: bool = False) -> Path:
    """Draw detections read from files (``BBOX_DTYPE``, sensor pixels, label-map ``class_id``; e.g.
    ``evdet-detect``'s output or a tracker's) over their recordings; no model is run.

    Args:
        detections: one ``_bbox.npy`` path or ``BBOX_DTYPE`` array per input.
        label_map: ``{class id: name}`` of the detections and ground truth ("empty" left out of the legend).
        delta_t: bin length (µs) for raw recordings (HDF5 files use their own).
        others: as :func:`render_demo_video`.

    Raises:
        ValueError: not one detection file per input, no inputs. FileNotFoundError: a missing file.
    """
    if not inputs or len(detections) != len(inputs):
        raise ValueError(f"render_detections_video: need one detection file per input, got "
                         f"{len(detections)} for {len(inputs)} inputs")
    read = [*inputs, *(label_path_for(p) for p in inputs), *events]
    fmt = check_demo_output(output, fmt, read + [d for d in detections if not isinstance(d, np.ndarray)],
                            overwrite)
    options = options or DemoOptions()
    classes = [name for _, name in sorted(label_map.items()) if name != EMPTY_CLASS]
    mapping = class_indices(label_map, classes)
    empty = [cid for cid, name in label_map.items() if name == EMPTY_CLASS]
    dets = [_to_index(d if isinstance(d, np.ndarray) else load_boxes(d), mapping, empty) for d in detections]
    recordings = _open_recordings(inputs, events, label_map, classes)
    try:
        fps = 1e6 / delta_t if fps is None else float(fps)
        max_frames = None if max_duration is None else max(1, int(max_duration) // int(delta_t))
        return _write(file_panels(dets, recordings, delta_t, options.track_ids), classes, options, output,
                      fmt, fps, cols, max_frames, _num_frames(inputs, delta_t), progress)
    finally:
        for rec in recordings:
            rec.frames.close()
