from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from batches import make_batch, make_stream
from fake_detector import fake_config, register_fake
from lightning.pytorch.loggers import CSVLogger

from evdet.inference.checkpoint import CheckpointInfo
from evdet.inference.config_dict import config_to_dict
from evdet.training.callbacks import DetectionImageLogger, render_detection_frames, select_frames
from evdet.training.config import TrainConfig
from evdet.training.lightning_module import LightningDetectionModel

pytest.importorskip("evdet.viz.draw")


def test_select_frames_prefers_labelled_bins_and_skips_padding():
    labeled = torch.tensor([[True, False, True], [False, False, True]])
    batch = make_batch(T=2, B=3, labeled=labeled, padding=torch.tensor([False, False, True]))
    assert select_frames(batch, 4) == [(0, 0)]
    none = make_batch(T=2, B=2, labeled=torch.zeros(2, 2, dtype=torch.bool))
    assert select_frames(none, 4) == [(1, 0), (1, 1)]
    allpad = make_batch(T=2, B=1, padding=torch.tensor([True]))
    assert render_detection_frames(allpad, None) is None


def test_render_draws_ground_truth_and_detections():
    batch = make_batch(T=2, B=2, H=16, W=16)
    batch.inputs.zero_()
    empty = [[torch.zeros(0, 6) for _ in range(2)] for _ in range(2)]
    names = ["car", "pedestrian"]
    gt_only = render_detection_frames(batch, empty, names, "histo", max_frames=2, upscale_to=64)
    assert gt_only.dtype == np.uint8 and gt_only.ndim == 3 and gt_only.shape[2] == 3
    dets = [[torch.tensor([[8.0, 8.0, 14.0, 14.0, 0.9, 1.0]]) for _ in range(2)] for _ in range(2)]
    with_det = render_detection_frames(batch, dets, names, "histo", max_frames=2, upscale_to=64)
    assert with_det.shape == gt_only.shape
    assert (with_det != gt_only).any()  # the detection box changed pixels
    unlabelled = make_batch(T=2, B=2, H=16, W=16, labeled=torch.zeros(2, 2, dtype=torch.bool))
    blank = render_detection_frames(unlabelled, None, upscale_to=64)
    assert blank is not None


def test_callback_logs_train_and_val_images_without_touching_training_state(monkeypatch, tmp_path):
    register_fake(monkeypatch)
    mc = fake_config(4, score_thresh=0.0)
    info = CheckpointInfo(classes=("car", "pedestrian"), label_map={0: "car", 1: "pedestrian"},
                          representation="histo", representation_params={}, delta_t=50_000, num_tbins=2,
                          in_channels=2, sensor_size=(16, 32), network_size=(8, 8), score_thresh=0.0,
                          nms_thresh=0.5, max_detections=10, model_config=config_to_dict(mc))
    lm = LightningDetectionModel(info, TrainConfig(max_steps=4))
    cb = DetectionImageLogger(every_n_steps=2, num_frames=2)
    batches = make_stream(4)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=lambda b: b)
    trainer = L.Trainer(accelerator="cpu", max_steps=4, logger=CSVLogger(tmp_path), callbacks=[cb],
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)
    trainer.fit(lm, loader, loader)
    assert cb.logged[:2] == [("train/detections", 0), ("train/detections", 2)]
    assert ("val/detections", 4) in cb.logged
    pngs = sorted(p.name for p in (tmp_path / "lightning_logs" / "version_0" / "images").iterdir())
    assert "train_detections_0000000.png" in pngs and "val_detections_0000004.png" in pngs
    # the shadow copy did not add reset calls to the trained detector: one per training/validation batch
    assert len(lm.detector.backbone.reset_calls) == 4 + 4


def test_training_curves_plot_written_per_epoch_and_resumable(monkeypatch, tmp_path):
    import cv2

    from evdet.training.callbacks import TrainingCurvesPlot

    register_fake(monkeypatch)
    mc = fake_config(4, score_thresh=0.0)
    info = CheckpointInfo(classes=("car", "pedestrian"), label_map={0: "car", 1: "pedestrian"},
                          representation="histo", representation_params={}, delta_t=50_000, num_tbins=2,
                          in_channels=2, sensor_size=(16, 32), network_size=(8, 8), score_thresh=0.0,
                          nms_thresh=0.5, max_detections=10, model_config=config_to_dict(mc))
    lm = LightningDetectionModel(info, TrainConfig(max_epochs=2))
    path = tmp_path / "training_curves.png"
    cb = TrainingCurvesPlot(path)
    loader = torch.utils.data.DataLoader(make_stream(3), batch_size=None, collate_fn=lambda b: b)
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, logger=False, callbacks=[cb],
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)
    trainer.fit(lm, loader, loader)
    assert [e for e, _ in cb.epoch_loss] == [1, 2] and len(cb.steps) == 6
    assert [e for e, _ in cb.val] == [1.0, 2.0] and set(cb.val[0][1]) == {"AP", "AP50"}
    img = cv2.imread(str(path))
    assert img is not None and img.shape == (360, 1120, 3)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # written atomically
    resumed = TrainingCurvesPlot(path)
    resumed.load_state_dict(cb.state_dict())
    assert resumed.state_dict() == cb.state_dict()
