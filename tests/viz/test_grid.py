import numpy as np
import pytest
import torch

from evdet.data.batch import SequenceBatch, VideoInfo
from evdet.viz.draw import GT_BGR, class_color
from evdet.viz.grid import render_panel, show_batch, tile_images


def test_tile_images_layout_and_padding():
    imgs = [np.full((10, 20, 3), i * 40, np.uint8) for i in range(5)]
    grid = tile_images(imgs, cols=3, pad=2)
    assert grid.shape == (2 * 12 + 2, 3 * 22 + 2, 3)
    assert (grid[2:12, 2:22] == 0).all() and (grid[14:24, 2:22] == 120).all()  # image 3 at row 1, col 0
    with pytest.raises(ValueError, match="no images"):
        tile_images([])


def _batch(t=2, b=3, h=24, w=32):
    inputs = torch.zeros(t, b, 2, h, w, dtype=torch.uint8)  # stored bytes: shown as inputs / 255
    inputs[:, :, 1, 5:10, 5:10] = 255
    labels = [[torch.zeros(0, 5) for _ in range(b)] for _ in range(t)]
    labels[1][0] = torch.tensor([[4.0, 4.0, 12.0, 12.0, 0.0]])
    infos = [VideoInfo(path=f"v{i}.h5", start_ts=1_000_000 * i, delta_t=50_000, duration=0) for i in range(b)]
    return SequenceBatch(inputs, labels, torch.ones(b), torch.ones(t, b, dtype=torch.bool), infos,
                         torch.tensor([False] * (b - 1) + [True]), input_scale=255.0)


def test_show_batch_is_t_rows_by_b_columns_with_boxes():
    batch = _batch()
    dets = [[torch.zeros(0, 6) for _ in range(3)] for _ in range(2)]
    dets[0][1] = torch.tensor([[8.0, 8.0, 20.0, 20.0, 0.9, 1.0]])
    grid = show_batch(batch, detections=dets, classes=("car", "pedestrian"), scale=2, pad=2)
    head = render_panel(torch.zeros(2, 24, 32), scale=2, t_us=0).shape[0] - 48  # header strip height
    cell_h, cell_w = head + 24 * 2 + 2, 32 * 2 + 2
    assert grid.shape[1] == 3 * cell_w + 2 and grid.shape[0] > 2 * cell_h + 2  # + legend strip
    # GT of (t=1, b=0): left edge at x=4*2 in the cell at row 1, col 0
    y0, x0 = 2 + cell_h + head, 2
    assert tuple(grid[y0 + 16, x0 + 8]) == GT_BGR
    # detection of (t=0, b=1) in class 1 colour at its left edge
    assert tuple(grid[2 + head + 30, 2 + cell_w + 16]) == class_color(1)
    # padding column is dark
    assert grid[2 + head + 30:2 + head + 48, 2 + 2 * cell_w:2 + 2 * cell_w + 64].mean() < 20


def test_show_batch_rejects_wrong_nesting():
    with pytest.raises(ValueError, match="detections must be a 2 x 3"):
        show_batch(_batch(), detections=[[torch.zeros(0, 6)] * 2] * 2)


def test_render_panel_size_and_header():
    panel = render_panel(torch.zeros(2, 24, 32), scale=4, t_us=150_000, title="rec")
    assert panel.shape[1:] == (128, 3) and 96 + 8 < panel.shape[0] < 96 + 30
    head = panel.shape[0] - 96
    assert (panel[:head, :40] > 128).any() and (panel[:head] == 0).any()  # white text on a black strip
    np.testing.assert_array_equal(panel[head:], render_panel(torch.zeros(2, 24, 32), scale=4))
