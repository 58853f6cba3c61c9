"""Image grids: tile panels, render one (events + boxes + time) panel, and show a whole batch.

:func:`show_batch` renders a :class:`evdet.data.SequenceBatch` as a grid of ``T`` rows (time bins,
top to bottom) by ``B`` columns (streams, left to right), each panel upscaled, with ground truth in
thin white, detections in class colours with "name score" labels, and the bin end time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from evdet.viz.draw import (
    _check_image,
    default_font_scale,
    draw_detections,
    draw_ground_truth,
    draw_legend,
    draw_text,
    format_timestamp,
    text_size,
    upscale,
)
from evdet.viz.events import events_to_image

if TYPE_CHECKING:  # only for annotations: viz never needs the data layer at import time
    from evdet.data import SequenceBatch

PAD_BGR = (90, 90, 90)
"""Colour of the separators between grid cells."""


def tile_images(images: Sequence[np.ndarray], cols: int | None = None, pad: int = 2,
                pad_color: tuple[int, int, int] = PAD_BGR) -> np.ndarray:
    """Tile BGR images row by row into a grid.

    Args:
        images: ``n`` BGR ``uint8`` images ``[h_i, w_i, 3]``; cells take the largest height and width,
            smaller images sit at the top-left of their cell.
        cols: number of columns; default ``ceil(sqrt(n))``.
        pad: separator width in pixels (between cells and around the grid).
        pad_color: separator colour (BGR).

    Returns:
        ``ndarray[rows * (h + pad) + pad, cols * (w + pad) + pad, 3]`` ``uint8``.

    Raises:
        ValueError: no images, a bad image, ``cols < 1`` or ``pad < 0``.
    """
    if len(images) == 0:
        raise ValueError("tile_images: no images given")
    for i, img in enumerate(images):
        _check_image(img, f"tile_images: image {i}")
    n = len(images)
    cols = int(np.ceil(np.sqrt(n))) if cols is None else int(cols)
    if cols < 1 or pad < 0:
        raise ValueError(f"tile_images: need cols >= 1 and pad >= 0, got cols={cols}, pad={pad}")
    cols = min(cols, n)
    rows = -(-n // cols)
    h = max(img.shape[0] for img in images)
    w = max(img.shape[1] for img in images)
    out = np.empty((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), np.uint8)
    out[:] = np.asarray(pad_color, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y:y + img.shape[0], x:x + img.shape[1]] = img
    return out


def render_panel(tensor, representation: str | None = None, gt=None, detections=None,
                 classes: Sequence[str] | None = None, scale: int = 4, t_us: int | None = None,
                 title: str | None = None, dim: bool = False) -> np.ndarray:
    """One annotated frame: events coloured, upscaled, boxes, then a "title  t = ... s" header.

    Args:
        tensor: ``Tensor[C, H, W]`` / ``ndarray`` of one bin (see :func:`events_to_image`).
        representation: registered representation name or ``None`` (guess).
        gt: ground truth ``[n, >=4]`` xyxy in the tensor's pixels (extra columns ignored), or ``None``.
        detections: ``[n, 6]`` (x1, y1, x2, y2, score, class_idx) in the tensor's pixels, or ``None``.
        classes: class names for the labels.
        scale: integer upscaling factor applied before drawing (text stays readable on small sensors).
        t_us: time (µs) written in the header, or ``None``.
        title: text before the time (e.g. the recording name), or ``None``.
        dim: darken the panel (e.g. a padding column of a batch).

    Returns:
        BGR ``uint8`` ``ndarray[H * scale + header, W * scale, 3]`` (header: a text strip of a dozen
        pixels on top, present when ``title`` or ``t_us`` is given).
    """
    img = upscale(events_to_image(tensor, representation), scale)
    if gt is not None:
        img = draw_ground_truth(img, gt, scale=scale)
    if detections is not None:
        img = draw_detections(img, detections, classes=classes, scale=scale)
    if dim:
        img = (img // 3).astype(np.uint8)
    header = " ".join(s for s in (title, None if t_us is None else format_timestamp(t_us)) if s)
    if header:
        img = add_header(img, header)
    return img


def add_header(image: np.ndarray, text: str, font_scale: float | None = None) -> np.ndarray:
    """Put a black strip with ``text`` (shortened from the left to fit) above ``image``, so that the
    text never hides events or boxes; returns a new, taller image ``[h + strip, W, 3]``."""
    _check_image(image, "add_header")
    fs = default_font_scale(max(image.shape[0], 240)) if font_scale is None else font_scale
    _, h, base = text_size("Ag", fs)
    strip = np.zeros((h + base + 4, image.shape[1], 3), np.uint8)
    strip = draw_text(strip, _fit(text, image.shape[1], fs), (0, 0), font_scale=fs)
    return np.concatenate([strip, image], axis=0)


def _fit(text: str, width: int, font_scale: float) -> str:
    """Shorten ``text`` from the left ("...tail") until it fits in ``width`` pixels."""
    if text_size(text, font_scale)[0] + 4 <= width:
        return text
    while len(text) > 4 and text_size("..." + text, font_scale)[0] + 4 > width:
        text = text[1:]
    return "..." + text


def add_legend_strip(image: np.ndarray, classes: Sequence[str], show_gt: bool = True,
                     font_scale: float | None = None, gt_label: str = "ground truth",
                     note: str | None = None) -> np.ndarray:
    """Append a dark strip under ``image`` holding the class colour key (and ``note``, grey, right-aligned
    when it fits); returns a new, taller image."""
    _check_image(image, "add_legend_strip")
    fs = default_font_scale(min(image.shape[0], 480)) if font_scale is None else font_scale
    _, h, base = text_size("Ag", fs)
    strip = np.full((h + base + 8, image.shape[1], 3), 20, np.uint8)
    strip = draw_legend(strip, classes, show_gt=show_gt, font_scale=fs, gt_label=gt_label)
    if note:
        w = text_size(note, fs)[0]
        used = sum(text_size(n, fs)[0] + 8 for n in [*classes, *([gt_label] if show_gt else [])])
        if used + w + 12 > strip.shape[1]:  # no room beside the key: a line of its own
            strip = np.concatenate([strip, np.full_like(strip, 20)], axis=0)
        strip = draw_text(strip, _fit(note, strip.shape[1], fs),
                          (strip.shape[1] - w - 6, strip.shape[0] - h - base - 4), color=(170, 170, 170),
                          background=(20, 20, 20), font_scale=fs)
    return np.concatenate([image, strip], axis=0)


def _frame_array(x) -> np.ndarray | None:
    """Per-frame boxes of one (t, b) cell as ``ndarray``; accepts tensors or arrays."""
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def show_batch(batch: SequenceBatch, detections: Sequence[Sequence] | None = None,
               classes: Sequence[str] | None = None, representation: str | None = None,
               scale: int = 2, max_tbins: int | None = None, pad: int = 2) -> np.ndarray:
    """Render a batch as a grid: ``T`` rows (time bins) × ``B`` columns (streams).

    Each panel shows the events of ``batch.inputs[t, b]``, the ground truth ``batch.labels[t][b]``
    (thin white), the detections ``detections[t][b]`` when given (class colours, "name score") and the
    bin end time ``video_infos[b].bin_end(t)``; padding columns are darkened. A
    legend strip is added under the grid when ``classes`` is given.

    Args:
        batch: a ``SequenceBatch`` (``inputs`` ``Tensor[T, B, C, H, W]``; labels xyxy in network pixels).
        detections: ``T × B`` nested sequence of ``Tensor[n, 6]`` (x1, y1, x2, y2, score, class_idx in
            network pixels), as returned by ``detector.get_boxes``; or ``None``.
        classes: class names (index = class_idx).
        representation: name of the input representation, or ``None`` (guess).
        scale: integer upscaling factor of every panel.
        max_tbins: show only the first ``max_tbins`` bins.
        pad: separator width in pixels.

    Returns:
        BGR ``uint8`` ``ndarray[H', W', 3]`` with ``H' ≈ T·(H·scale + pad)`` (+ legend),
        ``W' ≈ B·(W·scale + pad)``.

    Raises:
        ValueError: ``inputs`` is not 5-D, or ``detections``/``labels`` are not ``T × B``.
    """
    inputs = batch.float_inputs()
    if len(inputs.shape) != 5:
        raise ValueError(f"show_batch: batch.inputs must be [T, B, C, H, W], got shape {tuple(inputs.shape)}")
    t_count, b_count = int(inputs.shape[0]), int(inputs.shape[1])
    for name, nested in (("labels", batch.labels), ("detections", detections)):
        if nested is None:
            continue
        if len(nested) != t_count or any(len(row) != b_count for row in nested):
            raise ValueError(f"show_batch: {name} must be a {t_count} x {b_count} nested list "
                             f"(T x B), got {len(nested)} rows of lengths {[len(r) for r in nested]}")
    shown = t_count if max_tbins is None else min(t_count, int(max_tbins))
    padding = getattr(batch, "padding", None)
    panels = []
    for t in range(shown):
        for b in range(b_count):
            info = batch.video_infos[b] if batch.video_infos is not None else None
            t_end = None if info is None else info.bin_end(t)
            is_pad = bool(padding[b]) if padding is not None else False
            panels.append(render_panel(
                inputs[t, b], representation=representation,
                gt=_frame_array(batch.labels[t][b]) if batch.labels is not None else None,
                detections=None if detections is None else _frame_array(detections[t][b]),
                classes=classes, scale=scale, t_us=None if is_pad else t_end,
                title="padding" if is_pad else None, dim=is_pad))
    grid = tile_images(panels, cols=b_count, pad=pad)
    if classes is not None:
        grid = add_legend_strip(grid, classes)
    return grid
