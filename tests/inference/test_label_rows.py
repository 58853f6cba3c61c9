"""evdet.inference.label_rows: the one conversion of a batch's detections into label-file rows."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from evdet.data.batch import VideoInfo
from evdet.inference.label_rows import batch_label_rows

DT = 50_000


def _batch(labeled, infos, labels=None):
    t, b = len(labeled), len(labeled[0])
    labels = labels or [[torch.zeros(0, 5) for _ in range(b)] for _ in range(t)]
    return SimpleNamespace(inputs=torch.zeros(t, b, 2, 4, 4), video_infos=infos, labels=labels,
                           frame_is_labeled=torch.tensor(labeled),
                           padding=torch.tensor([not vi.path for vi in infos]))


def test_scales_stamps_maps_classes_and_skips_padding_and_tail():
    det = [[torch.tensor([[2.0, 4.0, 6.0, 10.0, 0.8, 1.0]]), torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.9, 0.0]])],
           [torch.tensor([[1.0, 1.0, 3.0, 3.0, 0.7, 0.0]]), torch.zeros(0, 6)]]
    infos = [VideoInfo(path="r.dat", start_ts=1_000_000, delta_t=DT, duration=0, scale=(2.0, 4.0),
                       num_valid_bins=1),
             VideoInfo(path="", start_ts=0, delta_t=DT, duration=0, scale=(1.0, 1.0), num_valid_bins=0)]
    out = batch_label_rows(_batch([[False, False], [False, False]], infos), det, labeled_only=False,
                           class_ids=np.array([5, 7]))
    assert [r.path for r in out] == ["r.dat"] and out[0].ground_truth is None and out[0].bins == 1
    box = out[0].detections
    assert box.size == 1  # bin 1 is past num_valid_bins
    assert box["t"][0] == 1_000_000 + DT and box["class_id"][0] == 7
    assert (box["x"][0], box["y"][0], box["w"][0], box["h"][0]) == (8.0, 8.0, 16.0, 12.0)  # sy = 2, sx = 4
    assert box["class_confidence"][0] == pytest.approx(0.8)


def test_labelled_bins_with_ground_truth_and_stored_bin_end_times():
    infos = [VideoInfo(path="seq", start_ts=0, delta_t=DT, duration=0, scale=(0.5, 0.5), num_valid_bins=3,
                       bin_end_ts=(100_000, 225_000, 350_000))]
    labels = [[torch.tensor([[2.0, 2.0, 6.0, 8.0, 1.0]])], [torch.zeros(0, 5)],
              [torch.tensor([[0, 0, 2, 2, 0.0]])]]
    det = [[torch.tensor([[2.0, 2.0, 6.0, 8.0, 0.5, 1.0]])], [torch.zeros(0, 6)], [torch.zeros(0, 6)]]
    (rows,) = batch_label_rows(_batch([[True], [False], [True]], infos, labels), det, labeled_only=True)
    assert rows.bins == 2 and rows.detections["t"].tolist() == [100_000]
    assert rows.ground_truth["t"].tolist() == [100_000, 350_000]  # the stored end times, not k·Δt
    assert rows.ground_truth["w"].tolist() == [2.0, 1.0]
    assert rows.ground_truth["class_confidence"].tolist() == [1, 1]
    with pytest.raises(ValueError, match="T × B"):
        batch_label_rows(_batch([[True]], infos), det, labeled_only=True)
