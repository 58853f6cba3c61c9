"""Lightning's checkpoint writer replaced by evdet's atomic one (the Lightning adapter of
:mod:`evdet.inference.checkpoint`).

Lightning's own writer stages the file in the system temp folder and moves it, which is a copy (not
atomic) when that folder is on another filesystem; :class:`AtomicCheckpointIO` writes through
:func:`evdet.inference.checkpoint.atomic_torch_save` instead, and records each checkpoint in the manifest of
its folder (:mod:`evdet.io.output_paths`), so that ``evdet-train --overwrite`` deletes only checkpoints
evdet wrote.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from evdet.inference.checkpoint import atomic_torch_save
from evdet.io.output_paths import record_output

__all__ = ["AtomicCheckpointIO"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O writing with :func:`atomic_torch_save` (temp file in the same folder)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        atomic_torch_save(checkpoint, path)
        record_output(path, "evdet-train")  # so that --overwrite deletes it, and nothing it did not write
