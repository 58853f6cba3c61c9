import numpy as np
import pytest
import torch

from evdet.evaluation import boxes_to_bbox_array
from evdet.io import BBOX_DTYPE


def test_scale_and_format():
    xyxy = np.array([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 1.0, 2.0]])
    # scale (sy, sx)
    out = boxes_to_bbox_array(xyxy, np.array([1, 0]), 123_000, np.array([0.9, 0.4]), scale=(0.5, 2.0))
    assert out.dtype == BBOX_DTYPE
    assert out["x"].tolist() == [20, 0] and out["y"].tolist() == [10, 0]
    assert out["w"].tolist() == [40, 2] and out["h"].tolist() == [20, 1]
    assert out["t"].tolist() == [123_000] * 2 and out["class_id"].tolist() == [1, 0]
    assert out["class_confidence"] == pytest.approx([0.9, 0.4]) and out["track_id"].tolist() == [0, 1]


def test_torch_inputs_per_box_times_and_default_score():
    out = boxes_to_bbox_array(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([2]), np.array([7]))
    assert out["class_confidence"].tolist() == [1.0] and out["t"].tolist() == [7] and out["w"][0] == 2


def test_empty():
    out = boxes_to_bbox_array(np.zeros((0, 4)), np.zeros(0, int), 5)
    assert out.dtype == BBOX_DTYPE and out.size == 0


def test_errors_name_the_box():
    with pytest.raises(ValueError, match=r"\[n, 4\]"):
        boxes_to_bbox_array(np.zeros((2, 5)), np.zeros(2), 0)
    with pytest.raises(ValueError, match="box 1 has x2 < x1"):
        boxes_to_bbox_array(np.array([[0, 0, 1, 1], [5, 0, 1, 1.0]]), np.zeros(2), 0)
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        boxes_to_bbox_array(np.zeros((2, 4)), np.zeros(2), 0, scores=np.ones(1))
    with pytest.raises(ValueError, match="scale"):
        boxes_to_bbox_array(np.zeros((1, 4)), np.zeros(1), 0, scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="box 0 has class index -1"):
        boxes_to_bbox_array(np.zeros((1, 4)), np.array([-1]), 0)
