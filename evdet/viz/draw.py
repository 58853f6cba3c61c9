"""Drawing on BGR ``uint8`` images: boxes with "name score" labels, timestamps, legends, upscaling.

Every function returns a new image and never modifies its input. Boxes are xyxy in the pixel frame
of the image they are drawn on (use ``scale`` to map network or sensor pixels onto an upscaled image).
Conventions of the demo: ground truth thin white, detections in their class colour with a label.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

GT_BGR = (255, 255, 255)
"""Ground-truth box colour (BGR): white."""

CLASS_COLORS_BGR: tuple[tuple[int, int, int], ...] = (
    (60, 220, 60),    # green
    (0, 220, 255),    # yellow
    (255, 80, 255),   # magenta
    (255, 220, 0),    # cyan
    (0, 140, 255),    # orange
    (180, 255, 150),  # mint
    (150, 150, 255),  # pink
    (255, 160, 120),  # light blue
    (0, 255, 180),    # lime
    (200, 120, 255),  # rose
)
"""Detection colours (BGR) by class index, cycling; chosen to stand out from the red/blue events."""

FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_color(class_idx: int) -> tuple[int, int, int]:
    """BGR colour of class ``class_idx`` (cycles through :data:`CLASS_COLORS_BGR`)."""
    return CLASS_COLORS_BGR[int(class_idx) % len(CLASS_COLORS_BGR)]


def _check_image(image: np.ndarray, where: str) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{where}: expected a numpy image, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{where}: expected a BGR uint8 image [H, W, 3], got {image.dtype} {image.shape}")
    return image


def _as_array(values, where: str, name: str, ndim: int) -> np.ndarray:
    if hasattr(values, "detach"):  # torch.Tensor
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        arr = arr.reshape((0, 4) if ndim == 2 else (0,))
    if arr.ndim != ndim or (ndim == 2 and arr.shape[1] < 4):
        raise ValueError(f"{where}: {name} must be {'[n, 4]' if ndim == 2 else '[n]'}, got shape {arr.shape}")
    return arr


def default_font_scale(image_height: int) -> float:
    """Font scale for labels on an image of this height (0.4 for 384 px, larger for larger frames)."""
    return float(np.clip(image_height / 960.0, 0.35, 1.2))


def cv2_text(text: str) -> str:
    """``text`` as OpenCV's Hershey fonts can draw it: ASCII, anything else as ``?``. A file name that is
    not valid UTF-8 (lone surrogates in Python) crashed OpenCV's text functions with a segmentation
    fault; accented letters were drawn as ``?`` anyway."""
    return text.encode("ascii", "replace").decode("ascii")


def png_bytes(image: np.ndarray) -> bytes:
    """A BGR ``uint8`` image encoded as PNG (written with Python's own file functions: ``cv2.imwrite``
    crashes on a path that is not valid UTF-8).

    Raises:
        OSError: OpenCV could not encode it.
    """
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"could not encode a {image.shape} image as PNG")
    return data.tobytes()


def text_size(text: str, font_scale: float, thickness: int = 1) -> tuple[int, int, int]:
    """``(width, height, baseline)`` in pixels of ``text`` drawn with :func:`draw_text`."""
    (w, h), base = cv2.getTextSize(cv2_text(text), FONT, font_scale, thickness)
    return w, h, base


def draw_text(image: np.ndarray, text: str, org: tuple[int, int], color=(255, 255, 255),
              background=(0, 0, 0), font_scale: float | None = None, thickness: int = 1) -> np.ndarray:
    """Write ``text`` with its top-left corner at ``org = (x, y)`` (pixels) on a filled background box.

    The box is moved inside the image when it would overflow. ``background=None`` draws no box (the
    text then gets a dark outline so that it reads on any colour). Returns a new image.
    """
    out = _check_image(image, "draw_text").copy()
    _put_text(out, text, org, color, background, font_scale, thickness)
    return out


def _put_text(out: np.ndarray, text: str, org: tuple[int, int], color, background,
              font_scale: float | None, thickness: int) -> None:
    """In-place text drawing on ``out`` (an image this module already copied)."""
    fs = default_font_scale(out.shape[0]) if font_scale is None else font_scale
    w, h, base = text_size(text, fs, thickness)
    pad = 2
    x = int(np.clip(org[0], 0, max(0, out.shape[1] - w - 2 * pad)))
    y = int(np.clip(org[1], 0, max(0, out.shape[0] - h - base - 2 * pad)))
    baseline_y = y + pad + h
    if background is not None:
        cv2.rectangle(out, (x, y), (x + w + 2 * pad, y + h + base + 2 * pad), background, -1)
    else:
        cv2.putText(out, cv2_text(text), (x + pad, baseline_y), FONT, fs, (0, 0, 0), thickness + 2,
                    cv2.LINE_AA)
    cv2.putText(out, cv2_text(text), (x + pad, baseline_y), FONT, fs, color, thickness, cv2.LINE_AA)


def _label_text(label: int | None, score: float | None, classes: Sequence[str] | None,
                track_id: int | None = None) -> str:
    parts = []
    if label is not None:
        parts.append(classes[label] if classes is not None and 0 <= label < len(classes) else str(label))
    if score is not None:
        parts.append(f"{score:.2f}")
    if track_id is not None:
        parts.append(f"#{track_id}")
    return " ".join(parts)


def dashed_rectangle(image: np.ndarray, pt1: tuple[int, int], pt2: tuple[int, int], color,
                     thickness: int = 1, dash: int = 6, gap: int = 4) -> None:
    """In place: a dashed axis-aligned rectangle from ``pt1`` to ``pt2`` (pixels, inclusive corners)."""
    (x1, y1), (x2, y2) = pt1, pt2
    period = dash + gap
    for a, b, fixed, horizontal in ((x1, x2, y1, True), (x1, x2, y2, True), (y1, y2, x1, False),
                                    (y1, y2, x2, False)):
        lo, hi = min(a, b), max(a, b)
        for s in range(lo, hi + 1, period):  # a few dozen dashes per box: drawing is per segment by nature
            e = min(s + dash - 1, hi)
            p, q = ((s, fixed), (e, fixed)) if horizontal else ((fixed, s), (fixed, e))
            cv2.line(image, p, q, color, thickness, cv2.LINE_8)


def draw_boxes(image: np.ndarray, boxes_xyxy, labels=None, scores=None, classes: Sequence[str] | None = None,
               color: tuple[int, int, int] | None = None, thickness: int = 1,
               scale: float | tuple[float, float] = 1.0, show_text: bool | None = None,
               font_scale: float | None = None, track_ids=None, dashed: bool = False) -> np.ndarray:
    """Draw boxes, with an optional "name score #track" label on each.

    Args:
        image: BGR ``uint8`` ``ndarray[H, W, 3]``; not modified.
        boxes_xyxy: ``ndarray`` / ``Tensor[n, >=4]``, xyxy (x1, y1, x2, y2) in pixels of the frame the
            boxes live in; extra columns (e.g. score, class of detector outputs) are ignored.
        labels: ``[n]`` class indices (0-based) or ``None``.
        scores: ``[n]`` confidences or ``None``.
        classes: class names indexed by label; a label outside the list is written as its number.
        color: one BGR colour for every box; ``None`` colours each box by its label
            (:func:`class_color`), white without labels.
        thickness: line thickness in pixels.
        scale: ``s`` or ``(sx, sy)`` multiplying box coordinates (e.g. 4 for a 4x upscaled frame).
        show_text: write labels; default: when labels or scores are given.
        font_scale: OpenCV font scale; default from the image height (:func:`default_font_scale`).
        track_ids: ``[n]`` track ids written as ``#id`` after the score, or ``None``.
        dashed: dashed outlines (the demo's ground-truth style).

    Returns:
        A new BGR ``uint8`` image ``[H, W, 3]``.

    Raises:
        TypeError / ValueError: wrong image type/shape; boxes not ``[n, 4]``; ``labels``/``scores``/
            ``track_ids`` length differs from the number of boxes; a non-finite coordinate (names the box
            index and value).
    """
    out = _check_image(image, "draw_boxes").copy()
    boxes = _as_array(boxes_xyxy, "draw_boxes", "boxes_xyxy", 2)[:, :4]
    n = boxes.shape[0]
    lab = None if labels is None else _as_array(labels, "draw_boxes", "labels", 1).astype(np.int64)
    sc = None if scores is None else _as_array(scores, "draw_boxes", "scores", 1)
    tid = None if track_ids is None else _as_array(track_ids, "draw_boxes", "track_ids", 1).astype(np.int64)
    for name, arr in (("labels", lab), ("scores", sc), ("track_ids", tid)):
        if arr is not None and arr.shape[0] != n:
            raise ValueError(f"draw_boxes: {name} has {arr.shape[0]} entries for {n} boxes")
    bad = np.argwhere(~np.isfinite(boxes))
    if bad.size:
        i, j = bad[0]
        raise ValueError(f"draw_boxes: box {i} has a non-finite coordinate {boxes[i, j]}")
    sx, sy = (scale, scale) if np.isscalar(scale) else scale
    pts = np.rint(boxes * np.array([sx, sy, sx, sy])).astype(np.int64)
    if show_text is None:
        show_text = lab is not None or sc is not None or tid is not None
    fs = default_font_scale(out.shape[0]) if font_scale is None else font_scale
    text_thickness = 2 if fs >= 0.8 else 1
    # best-scored boxes drawn last (on top); drawing calls are per box by nature (at most a few hundred)
    order = np.argsort(sc, kind="stable") if sc is not None else np.arange(n)
    colors = [color if color is not None else (class_color(lab[i]) if lab is not None and lab[i] >= 0
                                               else GT_BGR) for i in range(n)]
    for i in order:
        x1, y1, x2, y2 = (int(v) for v in pts[i])
        if dashed:
            dashed_rectangle(out, (x1, y1), (x2, y2), colors[i], thickness, dash=max(4, 3 * thickness),
                             gap=max(3, 2 * thickness))
        else:
            cv2.rectangle(out, (x1, y1), (x2, y2), colors[i], thickness, cv2.LINE_8)
    if not show_text:
        return out
    placed: list[tuple[int, int, int, int]] = []
    labels = []
    for i in order[::-1]:  # the best-scored box chooses its label place first
        text = _label_text(None if lab is None else int(lab[i]), None if sc is None else float(sc[i]),
                           classes, None if tid is None else int(tid[i]))
        if text:
            x1, y1, x2, y2 = (int(v) for v in pts[i])
            org = _free_label_place(out.shape, text, fs, text_thickness, (x1, y1, x2, y2), thickness, placed)
            labels.append((text, org, colors[i]))
    for text, org, c in labels[::-1]:
        _put_text(out, text, org, (0, 0, 0), c, fs, text_thickness)
    return out


def _text_rect(shape, text: str, org: tuple[int, int], font_scale: float, thickness: int
               ) -> tuple[int, int, int, int]:
    """``(x1, y1, x2, y2)`` covered by :func:`_put_text` at ``org`` (after moving it inside the image)."""
    w, h, base = text_size(text, font_scale, thickness)
    x = int(np.clip(org[0], 0, max(0, shape[1] - w - 4)))
    y = int(np.clip(org[1], 0, max(0, shape[0] - h - base - 4)))
    return x, y, x + w + 4, y + h + base + 4


def _free_label_place(shape, text: str, font_scale: float, thickness: int, box: tuple[int, int, int, int],
                      line: int, placed: list[tuple[int, int, int, int]]) -> tuple[int, int]:
    """Where a box's label goes: above its top-left corner, else just inside it, else under its bottom
    edge, whichever first overlaps no label already ``placed`` (then appended); above when all do."""
    x1, y1, x2, y2 = box
    _, h, base = text_size(text, font_scale, thickness)
    tall = h + base + 4
    candidates = [(x1, y1 - tall - 1 if y1 - tall - 1 >= 0 else y1 + line), (x1, y1 + line), (x1, y2 + line)]
    for org in candidates:
        r = _text_rect(shape, text, org, font_scale, thickness)
        if not any(r[0] < q[2] and q[0] < r[2] and r[1] < q[3] and q[1] < r[3] for q in placed):
            placed.append(r)
            return org
    placed.append(_text_rect(shape, text, candidates[0], font_scale, thickness))
    return candidates[0]


def draw_detections(image: np.ndarray, detections, classes: Sequence[str] | None = None,
                    scale: float | tuple[float, float] = 1.0, thickness: int = 2) -> np.ndarray:
    """Draw detector outputs ``Tensor[n, 6]`` (x1, y1, x2, y2, score, class_idx) in class colours with
    "name score" labels. ``scale`` maps their pixel frame onto the image. Returns a new image."""
    det = _as_array(detections, "draw_detections", "detections", 2)
    if det.shape[0] and det.shape[1] < 6:
        raise ValueError(f"draw_detections: expected [n, 6] (xyxy, score, class), got shape {det.shape}")
    if det.shape[0] == 0:
        return _check_image(image, "draw_detections").copy()
    return draw_boxes(image, det[:, :4], labels=det[:, 5], scores=det[:, 4], classes=classes,
                      thickness=thickness, scale=scale)


def draw_ground_truth(image: np.ndarray, boxes_xyxy, scale: float | tuple[float, float] = 1.0,
                      thickness: int = 1, dashed: bool = False) -> np.ndarray:
    """Draw ground-truth boxes ``[n, >=4]`` (xyxy; extra columns such as class_idx ignored) in white,
    without text (solid thin lines by default; ``dashed`` for the demo videos). Returns a new image."""
    return draw_boxes(image, boxes_xyxy, color=GT_BGR, thickness=thickness, scale=scale, show_text=False,
                      dashed=dashed)


def format_timestamp(t_us: int) -> str:
    """``t`` in µs as ``"t = 12.345 s"`` (milliseconds precision)."""
    return f"t = {int(t_us) / 1e6:.3f} s"


def draw_timestamp(image: np.ndarray, t_us: int, prefix: str = "",
                   font_scale: float | None = None) -> np.ndarray:
    """Write ``"{prefix}t = 1.250 s"`` in the top-left corner on a black strip. Returns a new image."""
    return draw_text(image, prefix + format_timestamp(t_us), (0, 0), font_scale=font_scale)


def draw_legend(image: np.ndarray, classes: Sequence[str], show_gt: bool = True,
                font_scale: float | None = None, gt_label: str = "ground truth") -> np.ndarray:
    """Write the class colour key (and ``gt_label`` in white) along the bottom-left corner. Returns a new
    image."""
    out = _check_image(image, "draw_legend").copy()
    fs = default_font_scale(out.shape[0]) if font_scale is None else font_scale
    entries = [(name, class_color(i)) for i, name in enumerate(classes)]
    if show_gt:
        entries.append((gt_label, GT_BGR))
    _, h, base = text_size("Ag", fs)
    x, y = 0, out.shape[0] - h - base - 4
    for name, c in entries:
        w, _, _ = text_size(name, fs)
        if x + w + 4 > out.shape[1] and x > 0:  # wrap onto the line above
            x, y = 0, y - h - base - 4
        _put_text(out, name, (x, y), (0, 0, 0), c, fs, 1)
        x += w + 8
    return out


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge by an integer ``factor`` with nearest-neighbour (sharp event pixels); returns a new image."""
    _check_image(image, "upscale")
    if int(factor) != factor or factor < 1:
        raise ValueError(f"upscale: factor must be an integer >= 1, got {factor}")
    if factor == 1:
        return image.copy()
    return cv2.resize(image, (image.shape[1] * int(factor), image.shape[0] * int(factor)),
                      interpolation=cv2.INTER_NEAREST)
