"""``EventDataModule``: the Lightning face of :mod:`evdet.data` (train/val/test loaders of a dataset
directory, DDP-aware).

Use it with ``Trainer(use_distributed_sampler=False)``: the loaders shard videos between ranks
themselves (each rank a disjoint, balanced share; in validation every video exactly once over all
ranks) and must not be wrapped in a ``DistributedSampler``. Epochs: Lightning's fit loop calls
``set_epoch(epoch)`` on the training loader's sampler at the start of every epoch, which reshuffles the
videos between streams/ranks and redraws augmentation from ``config.seed + epoch``; no
``reload_dataloaders_every_n_epochs`` is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from evdet.data.config import DataConfig
from evdet.data.info import DatasetInfo, describe_dataset
from evdet.data.labels import resolve_classes
from evdet.data.loader import build_dataloader, network_size_of
from evdet.io.label_map import LABEL_MAP_FILENAME


class EventDataModule(L.LightningDataModule):
    """Train/val/test loaders of ``dataset_dir`` (``label_map_dictionary.json`` + ``train/``, ``val/``,
    optional ``test/``), yielding :class:`~evdet.data.SequenceBatch`.

    Args:
        dataset_dir: the dataset directory (SPEC 2.6).
        config: data options.
    Attributes (after construction):
        info: :class:`~evdet.data.DatasetInfo` (channels, delta_t, sensor size, label map, splits).
        classes: the output class names (``config.classes`` or every label-map name but ``"empty"``).
        network_size: ``(height, width)`` of the inputs.
    Raises:
        FileNotFoundError / ValueError: from :func:`describe_dataset`; a class of ``config.classes``
            missing from the label map (the message lists the valid names).
    """

    def __init__(self, dataset_dir: str | os.PathLike, config: DataConfig):
        super().__init__()
        self.dataset_dir = Path(dataset_dir)
        self.config = config
        self.info: DatasetInfo = describe_dataset(self.dataset_dir, delta_t=config.delta_t,
                                                  representation=config.representation,
                                                  representation_params=config.representation_params)
        self.classes, _ = resolve_classes(self.info.label_map, config.classes,
                                          str(self.dataset_dir / LABEL_MAP_FILENAME))
        self.network_size = network_size_of(config, self.info.stored_size)
        self._epoch = 0
        self._resume_batches = 0

    @property
    def in_channels(self) -> int:
        return self.info.in_channels

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def set_epoch(self, epoch: int, batches_done: int = 0) -> None:
        """Epoch of the next ``train_dataloader()`` at least (the trainer's epoch when later; Lightning also
        calls the sampler's ``set_epoch``), and the batches of it already trained (a mid-epoch
        checkpoint: the loader starts after them). Set on resume by the module's ``on_load_checkpoint``."""
        self._epoch, self._resume_batches = int(epoch), int(batches_done)

    def setup(self, stage: str | None = None) -> None:
        """Nothing to prepare: loaders are built on demand from ``info``."""

    def _loader(self, split: str, train: bool) -> DataLoader:
        rank, world = self._rank_world()
        epoch = self._epoch
        trainer = getattr(self, "trainer", None)
        if train and trainer is not None:  # a resumed run: its epoch is known before Lightning's counter
            epoch = max(epoch, int(trainer.current_epoch))
        if world > 1 and getattr(getattr(trainer, "_accelerator_connector", None), "use_distributed_sampler",
                                 False):
            raise ValueError("EventDataModule shards videos itself: build the Trainer with "
                             "use_distributed_sampler=False")
        loader = build_dataloader(self.dataset_dir, split, self.config, train=train, rank=rank,
                                  world_size=world, epoch=epoch, info=self.info)
        if train and self._resume_batches:
            loader.sampler.resume_at(self._epoch, self._resume_batches)
        return loader

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        """Stream loader of ``val/`` (or of ``train/`` when the dataset has no ``val`` split)."""
        return self._loader("val" if "val" in self.info.splits else "train", False)

    def test_dataloader(self) -> DataLoader:
        """Stream loader of ``test/``.

        Raises:
            ValueError: the dataset has no ``test`` split.
        """
        if "test" not in self.info.splits:
            raise ValueError(f"{self.dataset_dir}: no test/ split (found {sorted(self.info.splits)})")
        return self._loader("test", False)
