from __future__ import annotations

import pytest
import torch
from batches import make_batch

from evdet.evaluation.accumulator import DetectionAccumulator
from evdet.evaluation.presets import eval_preset_for
from evdet.training.validation import accumulate_batch, evaluate_accumulator, gather_accumulator


def oracle(batch, score: float = 0.9):
    """Detections equal to the labels (score column inserted)."""
    out = []
    for row in batch.labels:
        out.append([torch.cat([lab[:, :4], torch.full((len(lab), 1), score), lab[:, 4:5]], 1) for lab in row])
    return out


def test_stamps_bin_end_and_scales_to_sensor_pixels():
    labeled = torch.tensor([[False, True], [True, True]])
    batch = make_batch(T=2, B=2, start_ts=1_000_000, delta_t=50_000, labeled=labeled, sensor_size=(16, 32))
    acc = DetectionAccumulator()
    n = accumulate_batch(acc, batch, oracle(batch))  # VideoInfo.scale: sensor (16, 32) / network (8, 8)
    assert n == 3
    assert acc.videos == ["/data/video0.h5", "/data/video1.h5"]
    gt0, dt0 = acc.boxes("/data/video0.h5")
    assert gt0["t"].tolist() == [1_100_000]  # bin 1 ends at start + 2·Δt
    gt1, _ = acc.boxes("/data/video1.h5")
    assert gt1["t"].tolist() == [1_050_000, 1_100_000]
    # network 8×8 → sensor 16 (h) × 32 (w): x ×4, y ×2; label of (t=1, b=0) is x1=2, y1=2, w=4, h=3
    assert gt0["x"][0] == pytest.approx(8.0) and gt0["w"][0] == pytest.approx(16.0)
    assert gt0["y"][0] == pytest.approx(4.0) and gt0["h"][0] == pytest.approx(6.0)
    assert dt0["class_confidence"][0] == pytest.approx(0.9)
    assert gt0["class_id"][0] == dt0["class_id"][0] == 1


def test_padding_and_unlabelled_bins_are_skipped():
    labeled = torch.tensor([[True, False], [False, False]])
    batch = make_batch(T=2, B=2, labeled=labeled, padding=torch.tensor([True, False]))
    acc = DetectionAccumulator()
    assert accumulate_batch(acc, batch, oracle(batch)) == 0
    assert len(acc) == 0
    with pytest.raises(ValueError, match="T × B"):
        accumulate_batch(acc, batch, oracle(batch)[:1])


def test_oracle_detections_score_ap_one_and_gather_is_identity_without_ddp():
    acc = DetectionAccumulator()
    for i in range(6):
        batch = make_batch(T=2, B=2, start_ts=i * 100_000, seed=i)
        accumulate_batch(acc, batch, oracle(batch))
    preset = eval_preset_for("auto", (16, 32), skip_ts=0, delta_t=50_000)
    assert preset.time_tol == 25_000
    metrics = evaluate_accumulator(gather_accumulator(acc), ["car", "pedestrian"], preset)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP50"] == pytest.approx(1.0)
    # the published ±50 ms inclusive pooling counts the neighbouring bins' detections as false positives
    wide = eval_preset_for("auto", (16, 32), skip_ts=0, time_tol=50_000)
    assert evaluate_accumulator(acc, ["car", "pedestrian"], wide)["AP"] < 0.6
    # shifted detections (IoU < 0.5) score zero
    acc2 = DetectionAccumulator()
    batch = make_batch(T=2, B=2, start_ts=0)
    dets = oracle(batch)
    dets = [[d + torch.tensor([3.0, 0, 3.0, 0, 0, 0]) for d in row] for row in dets]
    accumulate_batch(acc2, batch, dets)
    assert evaluate_accumulator(acc2, ["car", "pedestrian"], preset)["AP50"] == pytest.approx(0.0)


def test_empty_accumulator_gives_zero_metrics():
    preset = eval_preset_for("gen1", (240, 304))
    assert evaluate_accumulator(DetectionAccumulator(), ["car"], preset)["AP"] == 0.0
