"""Charts drawn with OpenCV and numpy (no plotting library): line charts, grouped bars, histograms.

Used for the training curves (``training_curves.png`` of ``evdet-train``), the per-class AP bars of
``evdet-eval --pr-plot`` and the histograms of ``evdet-info``. Every function returns a BGR ``uint8``
image ``[H, W, 3]`` on a white background; :func:`save_png` writes one atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from evdet.io.atomic import atomic_path
from evdet.io.output_paths import check_output
from evdet.viz.draw import cv2_text, png_bytes

__all__ = ["PALETTE_BGR", "bar_chart", "check_png_output", "histogram_chart", "line_chart", "save_png",
           "training_curves_image"]

PALETTE_BGR = ((180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
               (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23))
"""Series colours (BGR; the usual tab10 palette)."""

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BLACK = (0, 0, 0)
_GRID = (225, 225, 225)
_MARGINS = (62, 18, 36, 46)  # left, right, top, bottom (pixels)


def _nice_ticks(lo: float, hi: float, count: int = 5) -> np.ndarray:
    """About ``count`` round tick values covering ``[lo, hi]``."""
    if not hi > lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return np.arange(math.floor(lo / step) * step, hi + step * 0.5, step)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if 1000 <= abs(v) < 1e7:
        return f"{v:.0f}"
    if abs(v) >= 1e7 or abs(v) < 0.01:
        return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{v:g}" if abs(v) >= 10 else f"{v:.2f}".rstrip("0").rstrip(".")


class _Axes:
    """A plot area with data-to-pixel mapping, grid, tick labels, title and axis labels."""

    def __init__(self, size: tuple[int, int], x_range: tuple[float, float], y_range: tuple[float, float],
                 title: str, xlabel: str, ylabel: str, x_ticks: Sequence[float] | None = None,
                 x_tick_labels: Sequence[str] | None = None, log_y: bool = False):
        height, width = size
        left, right, top, bottom = _MARGINS
        self.img = np.full((height, width, 3), 255, np.uint8)
        self.x0, self.y0, self.pw, self.ph = left, top, width - left - right, height - top - bottom
        if self.pw < 60 or self.ph < 40:
            raise ValueError(f"chart size {size} (height, width) is too small")
        self.log_y = log_y
        ylo, yhi = (math.log10(v) for v in y_range) if log_y else y_range
        self.xr, self.yr = x_range, (ylo, yhi if yhi > ylo else ylo + 1.0)
        if x_ticks is None:
            x_ticks = [v for v in _nice_ticks(*x_range) if x_range[0] <= v <= x_range[1]]
        ticks_y = np.arange(math.floor(ylo), math.ceil(yhi) + 1) if log_y else _nice_ticks(*self.yr)
        ticks_y = [v for v in ticks_y if self.yr[0] - 1e-9 <= v <= self.yr[1] + 1e-9]
        for i, v in enumerate(x_ticks):
            x = self.px(v, self.yr[0])[0]
            cv2.line(self.img, (x, top), (x, top + self.ph), _GRID, 1)
            text = x_tick_labels[i] if x_tick_labels is not None else _fmt(v)
            self.text(text, (x, top + self.ph + 16), center=True)
        for v in ticks_y:
            y = self.px(self.xr[0], 10 ** v if log_y else v)[1]
            cv2.line(self.img, (left, y), (left + self.pw, y), _GRID, 1)
            self.text(_fmt(10 ** v) if log_y else _fmt(v), (left - 6, y + 4), right_align=True)
        cv2.rectangle(self.img, (left, top), (left + self.pw, top + self.ph), _BLACK, 1)
        self.text(title, (left + self.pw // 2, top - 12), scale=0.55, center=True)
        self.text(xlabel, (left + self.pw // 2, height - 10), center=True)
        self.text(ylabel, (4, top - 12), scale=0.45)

    def px(self, x, y) -> tuple[int, int]:
        (x0, x1), (y0, y1) = self.xr, self.yr
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        if self.log_y:
            y = np.log10(np.maximum(y, 1e-300))
        xs = self.x0 + (x - x0) / max(x1 - x0, 1e-12) * self.pw
        ys = self.y0 + (1 - (y - y0) / max(y1 - y0, 1e-12)) * self.ph
        return np.rint(xs).astype(np.int64), np.rint(ys).astype(np.int64)

    def text(self, text: str, org: tuple[int, int], scale: float = 0.4, color=_BLACK, center: bool = False,
             right_align: bool = False) -> None:
        text = cv2_text(text)
        (w, _), _ = cv2.getTextSize(text, _FONT, scale, 1)
        x = org[0] - (w // 2 if center else w if right_align else 0)
        cv2.putText(self.img, text, (int(x), int(org[1])), _FONT, scale, color, 1, cv2.LINE_AA)

    def legend(self, entries: Sequence[tuple[str, tuple[int, int, int]]]) -> None:
        """Colour key in the top-right corner of the plot area, on a white box."""
        if not entries:
            return
        width = max(cv2.getTextSize(cv2_text(name), _FONT, 0.4, 1)[0][0] for name, _ in entries) + 34
        x = self.x0 + self.pw - width - 6
        y = self.y0 + 6
        cv2.rectangle(self.img, (x, y), (x + width, y + 16 * len(entries) + 4), (255, 255, 255), -1)
        cv2.rectangle(self.img, (x, y), (x + width, y + 16 * len(entries) + 4), (200, 200, 200), 1)
        for i, (name, color) in enumerate(entries):
            yy = y + 12 + 16 * i
            cv2.line(self.img, (x + 6, yy - 4), (x + 24, yy - 4), color, 2)
            self.text(name, (x + 28, yy))


def _range(values: Sequence[np.ndarray], pad: float = 0.05) -> tuple[float, float]:
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo or max(abs(hi), 1.0)
    return lo - pad * span, hi + pad * span


def line_chart(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, title: str = "",
               xlabel: str = "", ylabel: str = "", size: tuple[int, int] = (360, 560),
               y_range: tuple[float, float] | None = None, x_range: tuple[float, float] | None = None,
               log_y: bool = False, markers: bool = True,
               styles: Mapping[str, tuple[tuple[int, int, int], int]] | None = None) -> np.ndarray:
    """Lines ``name -> (x, y)``; a series of one point shows as a marker.

    Args:
        series: values in data units (NaN points are skipped).
        size: ``(height, width)`` in pixels. y_range, x_range: axis limits (default: the data, padded).
        log_y: logarithmic y axis (positive values). markers: draw a dot at every point (≤ 60 points).
        styles: ``name -> (BGR colour, thickness)``; default palette colours, 2 px (thin lines get no
            markers, e.g. raw values under their mean).
    """
    xs = [np.asarray(x, np.float64) for x, _ in series.values()]
    ys = [np.asarray(y, np.float64) for _, y in series.values()]
    if log_y:
        ys = [np.where(y > 0, y, np.nan) for y in ys]
    if y_range is None:
        y_range = _range(ys) if not log_y else (np.nanmin(np.concatenate(ys)) * 0.8,
                                                np.nanmax(np.concatenate(ys)) * 1.25)
    ax = _Axes(size, x_range or _range(xs, 0.02), y_range, title, xlabel, ylabel, log_y=log_y)
    keys = []
    for i, (name, x, y) in enumerate(zip(series, xs, ys, strict=True)):
        color, thick = (styles or {}).get(name, (PALETTE_BGR[i % len(PALETTE_BGR)], 2))
        ok = np.isfinite(x) & np.isfinite(y)
        y_lo, y_hi = (10 ** v for v in ax.yr) if log_y else ax.yr
        px, py = ax.px(x[ok], np.clip(y[ok], y_lo, y_hi))  # values off the axis run along its edge
        pts = np.stack([px, py], axis=1).astype(np.int32)
        if len(pts) > 1:
            cv2.polylines(ax.img, [pts.reshape(-1, 1, 2)], False, color, thick, cv2.LINE_AA)
        if markers and (len(pts) <= 60 or len(pts) == 1) and thick > 1:
            for p in pts:
                cv2.circle(ax.img, (int(p[0]), int(p[1])), 3, color, -1, cv2.LINE_AA)
        keys.append((name, color))
    ax.legend(keys)
    return ax.img


def bar_chart(groups: Sequence[str], series: Mapping[str, Sequence[float]], *, title: str = "",
              ylabel: str = "", size: tuple[int, int] = (360, 560),
              y_range: tuple[float, float] | None = None, value_labels: bool = True) -> np.ndarray:
    """Grouped vertical bars: for each group (x label) one bar per series (``name -> values per group``).

    ``value_labels`` writes each bar's value above it. Negative values (e.g. −1 for undefined) are
    drawn as ``n/a``.
    """
    n_groups, n_series = len(groups), max(1, len(series))
    values = [np.asarray(v, np.float64) for v in series.values()]
    top = max([float(np.nanmax(v)) for v in values if v.size] + [0.0])
    y_range = y_range or (0.0, top * 1.15 if top > 0 else 1.0)
    ax = _Axes(size, (0.0, float(n_groups)), y_range, title, "", ylabel,
               x_ticks=[g + 0.5 for g in range(n_groups)], x_tick_labels=[str(g) for g in groups])
    width = 0.8 / n_series
    for s, v in enumerate(values):
        color = PALETTE_BGR[s % len(PALETTE_BGR)]
        for g in range(n_groups):  # one rectangle per bar: a few dozen at most
            left = g + 0.1 + s * width
            x1, y_base = ax.px(left, max(y_range[0], 0.0))
            if not np.isfinite(v[g]) or v[g] < 0:
                ax.text("n/a", (int(ax.px(left + width / 2, 0)[0]), int(y_base) - 4), scale=0.35,
                        center=True)
                continue
            x2, y_top = ax.px(left + width * 0.92, v[g])
            cv2.rectangle(ax.img, (int(x1), int(y_top)), (int(x2), int(y_base)), color, -1)
            if value_labels:
                ax.text(f"{v[g]:.3f}" if v[g] < 10 else f"{v[g]:.0f}",
                        (int((x1 + x2) // 2), int(y_top) - 4), scale=0.4, center=True)
    ax.legend([(name, PALETTE_BGR[s % len(PALETTE_BGR)]) for s, name in enumerate(series)]
              if len(series) > 1 else [])
    return ax.img


def histogram_chart(series: Mapping[str, Sequence[float]], bin_edges: Sequence[float], *, title: str = "",
                    xlabel: str = "", size: tuple[int, int] = (360, 560), log_x: bool = False,
                    vlines: Mapping[str, float] | None = None) -> np.ndarray:
    """Histograms (counts per bin) of several series drawn as step lines over shared ``bin_edges``;
    ``log_x`` places the edges on a log scale (for sizes); ``vlines`` marks values (e.g. anchor sizes)
    with labelled vertical dashes."""
    edges = np.asarray(bin_edges, np.float64)
    pos = np.log10(edges) if log_x else edges
    counts = {name: np.histogram(np.asarray(v, np.float64), bins=edges)[0] for name, v in series.items()}
    top = max([int(c.max()) for c in counts.values() if c.size] + [1])
    ticks = None
    labels = None
    if log_x:
        decades = [2.0 ** k for k in range(-4, 12) if edges[0] <= 2.0 ** k <= edges[-1]]
        ticks, labels = [math.log10(v) for v in decades], [_fmt(v) for v in decades]
    ax = _Axes(size, (float(pos[0]), float(pos[-1])), (0.0, top * 1.1), title, xlabel, "count",
               x_ticks=ticks, x_tick_labels=labels)
    keys = []
    for i, (name, c) in enumerate(counts.items()):
        color = PALETTE_BGR[i % len(PALETTE_BGR)]
        xs = np.repeat(pos, 2)[1:-1]
        ys = np.repeat(c, 2)
        px, py = ax.px(xs, ys)
        pts = np.stack([px, py], axis=1).astype(np.int32)
        cv2.polylines(ax.img, [pts.reshape(-1, 1, 2)], False, color, 2, cv2.LINE_AA)
        keys.append((name, color))
    for j, (name, value) in enumerate((vlines or {}).items()):
        v = math.log10(value) if log_x else value
        if not pos[0] <= v <= pos[-1]:
            continue
        x = int(ax.px(v, 0)[0])
        for y in range(ax.y0, ax.y0 + ax.ph, 8):
            cv2.line(ax.img, (x, y), (x, min(y + 4, ax.y0 + ax.ph)), (90, 90, 90), 1)
        (tw, th), _ = cv2.getTextSize(cv2_text(name), _FONT, 0.35, 1)
        tx = min(x + 3, ax.x0 + ax.pw - tw - 3)  # kept inside the plot, on a white box
        ty = ax.y0 + ax.ph - 6 - 13 * (j % 3)
        cv2.rectangle(ax.img, (tx - 1, ty - th - 2), (tx + tw + 1, ty + 2), (255, 255, 255), -1)
        ax.text(name, (tx, ty), scale=0.35, color=(90, 90, 90))
    ax.legend(keys if len(keys) > 1 else [])
    return ax.img


def training_curves_image(loss_steps: tuple[Sequence[float], Sequence[float]],
                          loss_epochs: tuple[Sequence[float], Sequence[float]],
                          val: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                          size: tuple[int, int] = (360, 1120)) -> np.ndarray:
    """The training-curves figure: training loss (per step, faint, and its mean per epoch) | validation
    metrics per epoch (``name -> (epochs, values)``, e.g. AP and AP50). x axes in epochs."""
    height, width = size
    steps_x, steps_y = (np.asarray(v, np.float64) for v in loss_steps)
    series = {}
    styles = {}
    if steps_x.size:
        series["loss per step"] = (steps_x, steps_y)
        styles["loss per step"] = ((200, 200, 200), 1)
    series["training loss (epoch mean)"] = loss_epochs
    # the first steps' loss is often 10x the rest: the axis covers 99 % of the steps and every epoch mean
    top = [float(np.percentile(steps_y, 99))] if steps_y.size else []
    top += [float(v) for v in loss_epochs[1]]
    y_range = (0.0, 1.15 * max(top) if top and max(top) > 0 else 1.0)
    x_hi = max([float(np.max(x)) for x, _ in [*series.values(), *val.values()] if len(x)] + [1.0])
    left = line_chart(series, title="training loss", xlabel="epoch", ylabel="loss", size=(height, width // 2),
                      x_range=(0.0, x_hi), y_range=y_range, styles=styles)
    if val:
        right = line_chart(val, title="validation", xlabel="epoch", ylabel="COCO", size=(height, width // 2),
                           x_range=(0.0, x_hi), y_range=(0.0, 1.0))
    else:
        right = np.full_like(left, 255)
        cv2.putText(right, "no validation yet", (40, height // 2), _FONT, 0.6, _BLACK, 1, cv2.LINE_AA)
    return np.concatenate([left, right], axis=1)


def check_png_output(path: str | os.PathLike, option: str, *, tool: str,
                     inputs: Sequence[str | os.PathLike] = (), overwrite: bool = False) -> Path:
    """Before a command does its work: ``path`` (given as ``option``) names a ``.png`` file that may be
    written (:func:`evdet.io.output_paths.check_output`: outside ``inputs``, never over a file evdet did
    not write, over an earlier one of ``tool`` only with ``overwrite``).

    Raises:
        OutputPathError: (a ``ValueError``) naming the path and why.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{option} {path}: give a .png file name")
    check_output(path, inputs=inputs, overwrite=overwrite, tool=tool)
    return path


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a BGR ``uint8`` image as PNG atomically (a temporary in the destination folder, then renamed).

    Raises:
        OSError: the file cannot be written.
    """
    path = Path(path)
    with atomic_path(path, keep_suffix=True) as tmp:
        tmp.write_bytes(png_bytes(image))
    return path
