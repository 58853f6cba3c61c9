"""EventDataModule: loaders per split, rank/world from the trainer, epochs via the sampler."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from evdet.data import DataConfig, SequenceBatch
from evdet.io.boxes import save_boxes
from evdet.io.dtypes import BBOX_DTYPE
from evdet.io.h5 import H5TensorWriter
from evdet.io.label_map import save_label_map
from evdet.training.datamodule import EventDataModule


@pytest.fixture
def dataset_dir(tmp_path, rng):
    root = tmp_path / "ds"
    root.mkdir()
    save_label_map(root, {0: "car", 1: "pedestrian", 2: "empty"})
    for split, lengths in (("train", (9, 4, 6)), ("val", (5, 8, 3, 7))):
        (root / split).mkdir()
        for i, n in enumerate(lengths):
            with H5TensorWriter(root / split / f"r{i}.h5", (2, 8, 10), representation="histo", delta_t=5000,
                                sensor_size=(16, 20), downsampling_factor=1, store_as_uint8=True) as w:
                w.write(rng.random((n, 2, 8, 10)).astype(np.float32))
            boxes = np.zeros(n, dtype=BBOX_DTYPE)
            boxes["t"], boxes["w"], boxes["h"], boxes["class_id"] = (np.arange(n) + 1) * 5000, 8, 8, 1
            save_boxes(root / split / f"r{i}_bbox.npy", boxes)
    return root


def test_datamodule_loaders(dataset_dir):
    dm = EventDataModule(dataset_dir, DataConfig(num_tbins=3, batch_size=2, classes=("pedestrian", "car")))
    assert dm.classes == ("pedestrian", "car") and dm.in_channels == 2 and dm.network_size == (8, 10)
    assert dm.info.sensor_size == (16, 20)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, SequenceBatch) and batch.inputs.shape == (3, 2, 2, 8, 10)
    assert batch.inputs.dtype == torch.uint8 and batch.input_scale == 255.0  # stored bytes, converted by to()
    # boxes of 8x8 sensor px -> 4x4 network px (stored downsampled by 2), class "pedestrian" -> 0
    labelled = [lab for row in batch.labels for lab in row if lab.shape[0]]
    assert labelled
    assert all(lab[0, 2] - lab[0, 0] == pytest.approx(4.0) and lab[0, 4] == 0 for lab in labelled)
    with pytest.raises(ValueError, match="no test/ split"):
        dm.test_dataloader()


@pytest.mark.parametrize("world_size", [2, 3])
def test_datamodule_shards_by_trainer_rank(dataset_dir, world_size):
    dm = EventDataModule(dataset_dir, DataConfig(num_tbins=3, batch_size=1))
    paths = []
    for rank in range(world_size):
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=world_size, current_epoch=0,
                                     _accelerator_connector=SimpleNamespace(use_distributed_sampler=False))
        paths += sorted({vi.path for batch in dm.val_dataloader() for vi in batch.video_infos if vi.path})
    assert sorted(paths) == sorted(str(p) for p in dm.info.splits["val"])
    dm.trainer = SimpleNamespace(global_rank=0, world_size=2, current_epoch=0,
                                 _accelerator_connector=SimpleNamespace(use_distributed_sampler=True))
    with pytest.raises(ValueError, match="use_distributed_sampler=False"):
        dm.val_dataloader()


def test_datamodule_epoch_from_trainer(dataset_dir):
    dm = EventDataModule(dataset_dir, DataConfig(num_tbins=3, batch_size=2, seed=1))
    order = []
    for epoch in (0, 1, 0):
        dm.trainer = SimpleNamespace(global_rank=0, world_size=1, current_epoch=epoch)
        loader = dm.train_dataloader()
        order.append([(vi.path, vi.hflip) for batch in loader for vi in batch.video_infos])
    assert order[0] == order[2] and order[0] != order[1]


def test_datamodule_bad_class(dataset_dir):
    with pytest.raises(ValueError, match=r"valid names: \['car', 'pedestrian'\]"):
        EventDataModule(dataset_dir, DataConfig(classes=("bus",)))


def test_datamodule_with_lightning_trainer_reshuffles_each_epoch(dataset_dir):
    import lightning as L

    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))
            self.seen: dict[int, list] = {}

        def training_step(self, batch, batch_idx):
            assert batch.inputs.dtype == torch.float32  # uint8-stored data, converted on transfer
            self.seen.setdefault(self.current_epoch, []).append(
                [(vi.path, vi.start_ts, vi.hflip) for vi in batch.video_infos])
            return (self.w * batch.inputs.mean()) ** 2 + self.w ** 2

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = EventDataModule(dataset_dir, DataConfig(num_tbins=3, batch_size=2, seed=5))
    model = Recorder()
    trainer = L.Trainer(max_epochs=3, use_distributed_sampler=False, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, accelerator="cpu", devices=1)
    trainer.fit(model, datamodule=dm)
    assert sorted(model.seen) == [0, 1, 2]
    assert len({str(v) for v in model.seen.values()}) > 1  # epochs differ (reshuffled / re-augmented)
    for epoch, batches in model.seen.items():  # each epoch still covers every training frame once
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        assert batches == [[(vi.path, vi.start_ts, vi.hflip) for vi in b.video_infos] for b in loader]
