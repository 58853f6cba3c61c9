from __future__ import annotations

import lightning as L
import pytest
import torch
from batches import make_stream
from fake_detector import FakeDetector, fake_config, register_fake

from evdet.inference.checkpoint import CheckpointInfo, load_checkpoint_dict
from evdet.inference.config_dict import config_to_dict
from evdet.training.config import TrainConfig
from evdet.training.lightning_module import LightningDetectionModel, NonFiniteLossError


@pytest.fixture(autouse=True)
def fake_head(monkeypatch):
    register_fake(monkeypatch)


def info() -> CheckpointInfo:
    mc = fake_config(4, score_thresh=0.0)
    return CheckpointInfo(
        classes=("car", "pedestrian"), label_map={0: "car", 1: "pedestrian"}, representation="histo",
        representation_params={}, delta_t=50_000, num_tbins=2, in_channels=2, sensor_size=(16, 32),
        network_size=(8, 8), score_thresh=0.0, nms_thresh=0.5, max_detections=10,
        model_config=config_to_dict(mc),
    )


def trainer(**kw) -> L.Trainer:
    args = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, max_epochs=1)
    args.update(kw)
    return L.Trainer(**args)


def loader(batches):
    return torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=lambda b: b)


class NaNAt(FakeDetector):
    """Returns a NaN loss at the given call index."""

    def __init__(self, at: int) -> None:
        super().__init__(2, 2, width=4)
        self.at, self.calls = at, 0

    def compute_loss(self, x, targets, frame_is_labeled):
        out = super().compute_loss(x, targets, frame_is_labeled)
        self.calls += 1
        if self.calls - 1 == self.at:
            out = dict(out, loss=out["loss"] * float("nan"))
        return out


def test_training_resets_state_with_batch_mask_and_updates_weights():
    batches = make_stream(4)
    lm = LightningDetectionModel(info(), TrainConfig(max_steps=4, lr=1e-2, warmup_steps=0))
    before = {k: v.clone() for k, v in lm.detector.state_dict().items()}
    trainer(max_steps=4).fit(lm, loader(batches))
    assert lm.global_step == 4
    masks = [m.tolist() for m in lm.detector.backbone.reset_calls]
    assert masks == [b.mask_keep_memory.tolist() for b in batches]
    assert any(not torch.equal(before[k], v) for k, v in lm.detector.state_dict().items())


def test_unlabelled_batch_still_gives_every_parameter_a_gradient():
    batches = make_stream(2, labeled=torch.zeros(2, 2, dtype=torch.bool))
    seen = []

    class Grabber(L.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            seen.append(all(p.grad is not None for p in pl_module.parameters()))

    lm = LightningDetectionModel(info(), TrainConfig(max_steps=2))
    trainer(max_steps=2, callbacks=[Grabber()]).fit(lm, loader(batches))
    assert seen == [True, True]


def test_train_loss_is_logged_only_for_batches_with_labels():
    """An unlabelled batch's loss is a placeholder zero: it must not show as the training loss."""
    labeled = torch.zeros(2, 2, dtype=torch.bool)
    batches = make_stream(2, labeled=labeled) + make_stream(1)
    logged = []

    class Grabber(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            logged.append("train/loss" in trainer.callback_metrics)

    lm = LightningDetectionModel(info(), TrainConfig(max_steps=3))
    trainer(max_steps=3, callbacks=[Grabber()]).fit(lm, loader(batches))
    assert logged == [False, False, True]


def test_nonfinite_loss_raises_naming_the_step():
    lm = LightningDetectionModel(info(), TrainConfig(max_steps=4), detector=NaNAt(2))
    with pytest.raises(NonFiniteLossError, match="global step 2"):
        trainer(max_steps=4).fit(lm, loader(make_stream(4)))


def test_nonfinite_loss_is_skipped_when_asked():
    det = NaNAt(1)
    lm = LightningDetectionModel(info(), TrainConfig(max_steps=3, skip_nonfinite=True), detector=det)
    snapshots = []

    class Snap(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            snapshots.append({k: v.clone() for k, v in pl_module.detector.state_dict().items()})

    trainer(max_steps=3, callbacks=[Snap()]).fit(lm, loader(make_stream(4)))
    assert lm.nonfinite_steps == 1
    assert all(torch.isfinite(v).all() for v in lm.detector.state_dict().values() if v.is_floating_point())
    # batch 1 was skipped: weights after it equal the weights after batch 0
    assert all(torch.equal(snapshots[0][k], snapshots[1][k]) for k in snapshots[0])
    assert not all(torch.equal(snapshots[1][k], snapshots[2][k]) for k in snapshots[1])


def test_validation_logs_coco_metrics_and_accumulates_every_labelled_bin():
    lm = LightningDetectionModel(info(), TrainConfig(max_steps=1, eval_score_thresh=None))
    batches = make_stream(3)
    t = trainer()
    t.validate(lm, loader(batches), verbose=False)
    for key in ("val/AP", "val/AP50", "val/AP75", "val/AR_100", "val/AP_car", "val/AP_pedestrian"):
        assert key in t.callback_metrics, key
    acc = lm.last_accumulators["val"]
    assert acc.videos == ["/data/video0.h5", "/data/video1.h5"]
    gt, dt = acc.boxes("/data/video0.h5")
    assert gt["t"].tolist() == [50_000 * (k + 1) for k in range(6)]
    assert len(dt) == 6  # one detection per labelled bin (fake detector, score_thresh 0)


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    lm = LightningDetectionModel(info(), TrainConfig(max_steps=2, lr=1e-2), data_config={"num_tbins": 2})
    t = trainer(max_steps=2)
    t.fit(lm, loader(make_stream(2)))
    path = tmp_path / "m.ckpt"
    t.save_checkpoint(path)
    ckpt = load_checkpoint_dict(path)  # torch.load(weights_only=True)
    assert ckpt["hyper_parameters"]["data_config"] == {"num_tbins": 2}
    back = LightningDetectionModel.load_from_checkpoint(path, weights_only=True)
    assert back.info == lm.info and back.train_config == lm.train_config
    for k, v in lm.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)


def test_compile_compiles_the_backbone_and_head_in_place():
    """``TrainConfig.compile``: setup (called by Lightning before fitting) compiles the backbone
    and the head with the named backend: their forward runs traced by torch.compile, the outputs equal
    eager's, and the state dict keeps its keys."""
    torch.manual_seed(0)
    lm = LightningDetectionModel(info(), TrainConfig(compile="aot_eager"))
    eager = LightningDetectionModel(info(), TrainConfig())
    eager.detector.load_state_dict(lm.detector.state_dict())
    traced = []
    for part in (lm.detector.backbone, lm.detector.head):
        part.register_forward_hook(lambda *_: traced.append(torch.compiler.is_compiling()))
    lm.setup("fit")
    x = torch.rand(2, 1, 2, 8, 8)
    torch.testing.assert_close(lm.detector(x), eager.detector(x))
    assert traced == [True, True]  # each part's forward was traced by dynamo
    assert lm.detector.state_dict().keys() == eager.detector.state_dict().keys()


def test_compile_rejects_an_unknown_backend():
    with pytest.raises(ValueError, match=r"TrainConfig.compile = 'nope': not a torch.compile backend"):
        TrainConfig(compile="nope")
