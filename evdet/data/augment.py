"""Training augmentation drawn once per video (SPEC 4): horizontal flip, zoom in, zoom out, applied to
the tensors and the boxes together."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Augmentation:
    """One draw of the augmentation.

    Attributes:
        hflip: flip horizontally.
        zoom: factor z: 1 none, > 1 zoom in (crop 1/z of the frame and enlarge), < 1 zoom out (shrink by z).
        pos_y, pos_x: relative position in [0, 1] of the crop (zoom in) or of the shrunk frame (zoom out).
    """

    hflip: bool = False
    zoom: float = 1.0
    pos_y: float = 0.0
    pos_x: float = 0.0

    @property
    def is_identity(self) -> bool:
        return not self.hflip and self.zoom == 1.0


NO_AUGMENTATION = Augmentation()


def draw_augmentation(rng: np.random.Generator, hflip_prob: float, zoom_in_prob: float, zoom_out_prob: float,
                      max_zoom: float) -> Augmentation:
    """Draw flip and zoom (at most one of zoom in / zoom out) with the given probabilities."""
    hflip = bool(rng.random() < hflip_prob)
    u = rng.random()
    z = float(rng.uniform(1.0, max_zoom))
    pos_y, pos_x = float(rng.random()), float(rng.random())
    if u < zoom_in_prob and max_zoom > 1.0:
        zoom = z
    elif u < zoom_in_prob + zoom_out_prob and max_zoom > 1.0:
        zoom = 1.0 / z
    else:
        zoom = 1.0
    return Augmentation(hflip, zoom, pos_y, pos_x)


def zoom_geometry(aug: Augmentation, height: int, width: int) -> tuple[float, float, float, float]:
    """``(sy, sx, oy, ox)``: a network pixel (y, x) goes to ``(y·sy + oy, x·sx + ox)`` under the zoom."""
    if aug.zoom == 1.0:
        return 1.0, 1.0, 0.0, 0.0
    if aug.zoom > 1.0:
        ch, cw = max(1, round(height / aug.zoom)), max(1, round(width / aug.zoom))
        y0, x0 = round(aug.pos_y * (height - ch)), round(aug.pos_x * (width - cw))
        sy, sx = height / ch, width / cw
        return sy, sx, -y0 * sy, -x0 * sx
    sh, sw = max(1, round(height * aug.zoom)), max(1, round(width * aug.zoom))
    y0, x0 = round(aug.pos_y * (height - sh)), round(aug.pos_x * (width - sw))
    return sh / height, sw / width, float(y0), float(x0)


def augment_tensor(frames: Tensor, aug: Augmentation) -> Tensor:
    """Apply ``aug`` to ``frames: Tensor[T, C, H, W]`` (returns a new tensor of the same shape)."""
    if aug.is_identity:
        return frames
    t, c, h, w = frames.shape
    out = frames
    if aug.zoom > 1.0:
        ch, cw = max(1, round(h / aug.zoom)), max(1, round(w / aug.zoom))
        y0, x0 = round(aug.pos_y * (h - ch)), round(aug.pos_x * (w - cw))
        crop = out[:, :, y0:y0 + ch, x0:x0 + cw]
        out = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)  # [T, C, H, W]
    elif aug.zoom < 1.0:
        sh, sw = max(1, round(h * aug.zoom)), max(1, round(w * aug.zoom))
        y0, x0 = round(aug.pos_y * (h - sh)), round(aug.pos_x * (w - sw))
        small = F.interpolate(out, size=(sh, sw), mode="area")  # [T, C, sh, sw]
        out = torch.zeros_like(frames)
        out[:, :, y0:y0 + sh, x0:x0 + sw] = small
    if aug.hflip:
        out = out.flip(-1)
    return out


def augment_boxes(targets: np.ndarray, aug: Augmentation, height: int, width: int) -> np.ndarray:
    """Apply ``aug`` to ``targets: ndarray[n, 5]`` (xyxy network pixels, class); boxes are clipped to the
    frame and those left with no area are dropped. Returns a new array."""
    if aug.is_identity or targets.size == 0:
        return targets
    out = targets.astype(np.float32, copy=True)
    sy, sx, oy, ox = zoom_geometry(aug, height, width)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]] * sx + ox, 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]] * sy + oy, 0, height)
    if aug.hflip:
        out[:, [0, 2]] = width - out[:, [2, 0]]
    return out[(out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])]
