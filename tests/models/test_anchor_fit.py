import numpy as np
import pytest

from evdet.models.anchor_fit import anchor_shapes, best_anchor_iou, fit_anchor_size


def test_anchor_shapes_follow_spec():
    wh = anchor_shapes(16, [(1.0, 1.0), (4.0, 1.0)], level=1)  # base 32
    np.testing.assert_allclose(wh, [[32, 32], [64, 16]], rtol=1e-6)


def test_box_on_an_anchor_centre_has_iou_one_and_grid_offset_lowers_it():
    # a 16x16 box centred on the level-0 cell centre (stride 8 -> 4, 12, ...): identical to the square anchor
    box = np.array([[4.0 - 8, 4.0 - 8, 16, 16]]) + np.array([8, 8, 0, 0])  # centre (12, 12)
    assert best_anchor_iou(box, 16, [(1.0, 1.0)], [8])[0] == pytest.approx(1.0)
    shifted = box + np.array([3.0, 0, 0, 0])  # centre x 15: same cell, 3 px off
    assert best_anchor_iou(shifted, 16, [(1.0, 1.0)], [8])[0] == pytest.approx(13 * 16 / (2 * 256 - 13 * 16))


def test_fit_prefers_the_size_of_the_boxes():
    rng = np.random.default_rng(0)
    n = 200
    side = rng.uniform(28, 36, n)
    xy = rng.uniform(0, 200, (n, 2))
    boxes = np.concatenate([xy, side[:, None], side[:, None]], axis=1)
    best, table = fit_anchor_size(boxes, "PSEE_ANCHORS", [8, 16, 32, 64, 128])
    assert best in (16.0, 32.0)  # 32 at level 0 or 16 at level 1
    assert table[best][0] > 0.9 and table[4.0][0] < table[best][0]
    with pytest.raises(ValueError, match="no boxes"):
        fit_anchor_size(np.zeros((0, 4)), "PSEE_ANCHORS", [8])
