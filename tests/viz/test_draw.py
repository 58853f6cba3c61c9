import numpy as np
import pytest
import torch

from evdet.viz.draw import (
    GT_BGR,
    class_color,
    draw_boxes,
    draw_detections,
    draw_ground_truth,
    draw_legend,
    draw_timestamp,
    format_timestamp,
    upscale,
)


def _blank(h=60, w=80):
    return np.zeros((h, w, 3), np.uint8)


def test_draw_boxes_returns_new_image_and_draws_outline():
    img = _blank()
    out = draw_boxes(img, [[10, 10, 40, 30]], color=(0, 255, 0))
    assert (img == 0).all()  # input untouched
    assert tuple(out[10, 25]) == (0, 255, 0)  # top edge
    assert tuple(out[20, 25]) == (0, 0, 0)  # inside stays empty


def test_ground_truth_white_thin_and_scaled():
    out = draw_ground_truth(_blank(), torch.tensor([[2.0, 2.0, 10.0, 8.0, 1.0]]), scale=4)
    assert tuple(out[8, 20]) == GT_BGR  # y1 = 2 * 4
    assert tuple(out[16, 20]) == (0, 0, 0)


def test_detections_use_class_colour_and_label_text():
    det = np.array([[20, 30, 60, 55, 0.9, 1]], np.float32)
    out = draw_detections(_blank(80, 100), det, classes=("car", "pedestrian"))
    assert tuple(out[45, 20]) == class_color(1)  # left edge
    # the label sits above the box, drawn on a class-coloured background
    above = out[15:29, 20:60].reshape(-1, 3)
    assert (above == np.asarray(class_color(1), np.uint8)).all(axis=1).sum() > 50


def test_empty_boxes_and_no_detections_leave_image_equal():
    img = _blank()
    np.testing.assert_array_equal(draw_boxes(img, np.zeros((0, 4))), img)
    np.testing.assert_array_equal(draw_detections(img, torch.zeros(0, 6)), img)


def test_bad_boxes_raise_with_index():
    with pytest.raises(ValueError, match="box 1"):
        draw_boxes(_blank(), [[0, 0, 5, 5], [0, np.inf, 5, 5]])
    with pytest.raises(ValueError, match="labels has 1 entries for 2 boxes"):
        draw_boxes(_blank(), [[0, 0, 5, 5], [1, 1, 6, 6]], labels=[0])
    with pytest.raises(ValueError, match="BGR uint8"):
        draw_boxes(np.zeros((4, 4), np.uint8), [[0, 0, 1, 1]])


def test_timestamp_legend_upscale():
    assert format_timestamp(1_250_000) == "t = 1.250 s"
    img = _blank(100, 200)
    assert (draw_timestamp(img, 50_000)[:15, :60] != 0).any()
    legend = draw_legend(img, ("car", "pedestrian"))
    assert (legend[-20:] == np.asarray(class_color(0), np.uint8)).all(axis=2).any()
    big = upscale(np.arange(12, dtype=np.uint8).reshape(2, 2, 3), 3)
    assert big.shape == (6, 6, 3) and (big[:3, :3] == np.arange(3)).all()
    with pytest.raises(ValueError, match="factor"):
        upscale(img, 0)


def test_names_that_are_not_utf8_are_drawn_not_crashed_on():
    # before: a recording named b"\xff\xfe_td.dat" (lone surrogates in Python) made cv2.getTextSize
    # crash the process with a segmentation fault
    import os

    from evdet.viz.draw import cv2_text, draw_text, text_size

    name = os.fsdecode(b"\xff\xfe_td.dat")
    assert cv2_text(name) == "??_td.dat" and cv2_text("caf\u00e9") == "caf?"
    assert text_size(name, 0.5)[0] > 0
    assert draw_text(np.zeros((40, 200, 3), np.uint8), name, (2, 2)).any()
