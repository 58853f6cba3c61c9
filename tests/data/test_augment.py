"""evdet.data.augment: flip / zoom applied to tensors and boxes together."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evdet.data.augment import (
    NO_AUGMENTATION,
    Augmentation,
    augment_boxes,
    augment_tensor,
    draw_augmentation,
    zoom_geometry,
)

H, W = 12, 16


def _boxes() -> np.ndarray:
    return np.array([[1, 2, 5, 7, 0], [8, 0, 15, 11, 1], [0, 3, 16, 12, 2]], dtype=np.float32)


def test_flip_twice_is_identity(rng):
    frames = torch.tensor(rng.random((2, 3, H, W)), dtype=torch.float32)
    flip = Augmentation(hflip=True)
    once = augment_tensor(frames, flip)
    assert not torch.equal(once, frames)
    torch.testing.assert_close(augment_tensor(once, flip), frames, rtol=0, atol=0)
    boxes = _boxes()
    np.testing.assert_array_equal(augment_boxes(augment_boxes(boxes, flip, H, W), flip, H, W), boxes)


def test_flip_moves_boxes_with_the_tensor():
    frames = torch.zeros((1, 1, H, W))
    frames[0, 0, 2:7, 1:5] = 1.0  # content of box 0 of _boxes()
    flip = Augmentation(hflip=True)
    out = augment_tensor(frames, flip)
    x1, y1, x2, y2, cls = augment_boxes(_boxes()[:1], flip, H, W)[0]
    assert (x1, y1, x2, y2, cls) == (W - 5, 2, W - 1, 7, 0)
    ys, xs = torch.nonzero(out[0, 0], as_tuple=True)
    assert xs.min() == x1 and xs.max() + 1 == x2 and ys.min() == y1 and ys.max() + 1 == y2


@pytest.mark.parametrize("aug", [Augmentation(zoom=2.0, pos_y=0.5, pos_x=0.25),
                                 Augmentation(hflip=True, zoom=0.5, pos_y=1.0, pos_x=0.0)])
def test_zoom_moves_boxes_with_the_tensor(aug):
    # a block of content on an exact grid: its transformed extent must match the transformed box
    frames = torch.zeros((1, 1, H, W))
    box = np.array([[4, 4, 12, 8, 1]], dtype=np.float32)
    frames[0, 0, 4:8, 4:12] = 1.0
    out = augment_tensor(frames, aug)
    assert out.shape == frames.shape
    nb = augment_boxes(box, aug, H, W)
    assert nb.shape == (1, 5) and nb[0, 4] == 1
    ys, xs = torch.nonzero(out[0, 0] > 0.5, as_tuple=True)
    assert abs(xs.min().item() - nb[0, 0]) <= 1 and abs(xs.max().item() + 1 - nb[0, 2]) <= 1
    assert abs(ys.min().item() - nb[0, 1]) <= 1 and abs(ys.max().item() + 1 - nb[0, 3]) <= 1


def test_zoom_geometry_identity_and_factors():
    assert zoom_geometry(NO_AUGMENTATION, H, W) == (1.0, 1.0, 0.0, 0.0)
    sy, sx, oy, ox = zoom_geometry(Augmentation(zoom=2.0, pos_y=0.0, pos_x=1.0), H, W)
    assert (sy, sx) == (2.0, 2.0) and oy == 0.0 and ox == -(W - W // 2) * 2.0
    sy, sx, oy, ox = zoom_geometry(Augmentation(zoom=0.5, pos_y=1.0, pos_x=0.0), H, W)
    assert (sy, sx, oy, ox) == (0.5, 0.5, H / 2, 0.0)


def test_identity_returns_inputs_and_boxes_are_clipped_and_dropped():
    frames = torch.ones((1, 1, H, W))
    assert augment_tensor(frames, NO_AUGMENTATION) is frames
    boxes = _boxes()
    assert augment_boxes(boxes, NO_AUGMENTATION, H, W) is boxes
    empty = np.zeros((0, 5), np.float32)
    assert augment_boxes(empty, Augmentation(hflip=True), H, W).shape == (0, 5)
    # zoom in on the top-left quarter: the box in the bottom-right is dropped, the big one clipped
    out = augment_boxes(np.array([[12, 9, 16, 12, 0], [0, 0, 16, 12, 1]], np.float32),
                        Augmentation(zoom=2.0), H, W)
    np.testing.assert_array_equal(out, [[0, 0, W, H, 1]])
    assert boxes.tolist() == _boxes().tolist()  # input not mutated


def test_draw_augmentation_probabilities(rng):
    draws = [draw_augmentation(rng, 0.5, 0.25, 0.25, 2.0) for _ in range(2000)]
    flips = np.mean([d.hflip for d in draws])
    zin = np.mean([d.zoom > 1 for d in draws])
    zout = np.mean([d.zoom < 1 for d in draws])
    assert 0.45 < flips < 0.55 and 0.2 < zin < 0.3 and 0.2 < zout < 0.3
    assert all(0.5 <= d.zoom <= 2.0 and 0 <= d.pos_x <= 1 and 0 <= d.pos_y <= 1 for d in draws)
    none = [draw_augmentation(rng, 0.0, 1.0, 0.0, 1.0) for _ in range(20)]  # max_zoom 1: never zooms
    assert all(d.is_identity for d in none)
