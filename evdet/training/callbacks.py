"""Training callbacks that show what happens: ``DetectionImageLogger`` (frames with ground truth and
detections, during training) and ``TrainingCurvesPlot`` (``training_curves.png`` in the run folder); and
``InterruptCheck``, which makes a Ctrl-C that Python dropped stop the training (:mod:`evdet.io.interrupts`).

``DetectionImageLogger``: log a few frames with ground truth and detections drawn, during training.

Like the detector-visualisation callbacks of DETR trainers: every ``every_n_steps`` training steps (and on
the first batch of every validation epoch) a grid of frames is rendered with ``evdet.viz`` (events in
colour, ground truth thin white, detections in class colours with "name score") and sent to TensorBoard
(``train/detections``, ``val/detections``); with no TensorBoard logger the grid is written as a PNG under
``<log_dir>/images/``.

Training frames come from a copy of the detector run on the current batch with the state it has at
that point (so the recurrent state of the model being trained is never advanced twice).

Layering note: ``evdet.viz`` sits above ``training``; it is imported lazily inside the functions, and
only its pure drawing functions are used.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor

from evdet.io.interrupts import check_interrupt

log = logging.getLogger(__name__)

__all__ = ["DetectionImageLogger", "InterruptCheck", "TrainingCurvesPlot", "render_detection_frames",
           "select_frames"]


def select_frames(batch, max_frames: int) -> list[tuple[int, int]]:
    """Up to ``max_frames`` ``(t, b)`` bins to show: labelled bins of non-padding columns first (the last
    labelled bin of each column, then earlier ones), else the last bin of each non-padding column."""
    labeled = batch.frame_is_labeled.detach().cpu().numpy().astype(bool)  # [T, B]
    padding = batch.padding.detach().cpu().numpy().astype(bool)  # [B]
    T, B = labeled.shape
    columns = [b for b in range(B) if not padding[b]]
    picks: list[tuple[int, int]] = []
    for depth in range(T):  # round-robin over columns, latest labelled bins first
        for b in columns:
            ts = np.flatnonzero(labeled[:, b])[::-1]
            if depth < len(ts):
                picks.append((int(ts[depth]), b))
            if len(picks) >= max_frames:
                return picks
    if not picks:
        picks = [(T - 1, b) for b in columns[:max_frames]]
    return picks


def render_detection_frames(
    batch,
    detections: Sequence[Sequence[Tensor]] | None,
    classes: Sequence[str] | None = None,
    representation: str | None = None,
    max_frames: int = 4,
    upscale_to: int = 256,
) -> np.ndarray | None:
    """Draw up to ``max_frames`` bins of ``batch`` with their ground truth and ``detections`` into one grid.

    Args:
        batch: a ``SequenceBatch`` (inputs ``Tensor[T, B, C, H, W]``, labels T × B ``Tensor[n, 5]``).
        detections: T × B ``Tensor[m, 6]`` (xyxy network pixels, score, class_idx) or None (GT only).
        classes: class names for the labels. representation: name for colouring the events.
        upscale_to: frames are enlarged by an integer factor so that their height reaches about this.

    Returns:
        BGR ``uint8`` ``ndarray[H', W', 3]``, or None when the batch has only padding.
    """
    from evdet.viz.draw import draw_detections, draw_ground_truth, upscale
    from evdet.viz.events import events_to_image
    from evdet.viz.grid import tile_images

    picks = select_frames(batch, max_frames)
    if not picks:
        return None
    H = int(batch.inputs.shape[-2])
    factor = max(1, int(round(upscale_to / max(1, H))))
    images = []
    inputs = batch.float_inputs()
    for t, b in picks:
        img = upscale(events_to_image(inputs[t, b].detach().float().cpu(), representation), factor)
        img = draw_ground_truth(img, batch.labels[t][b].detach().cpu(), scale=factor)
        if detections is not None:
            img = draw_detections(img, detections[t][b].detach().float().cpu(), classes=classes, scale=factor)
        images.append(img)
    return tile_images(images, cols=min(len(images), 4))


class DetectionImageLogger(L.Callback):
    """Every ``every_n_steps`` training steps, and on the first batch of each validation epoch, log a grid
    of ``num_frames`` frames with ground truth and detections (see the module docstring).

    Args:
        every_n_steps: training period in optimizer steps (0: validation images only).
        num_frames: frames per grid.
    """

    def __init__(self, every_n_steps: int = 200, num_frames: int = 4) -> None:
        super().__init__()
        if every_n_steps < 0 or num_frames < 1:
            raise ValueError(f"DetectionImageLogger: every_n_steps = {every_n_steps} must be >= 0 and "
                             f"num_frames = {num_frames} >= 1")
        self.every_n_steps = every_n_steps
        self.num_frames = num_frames
        self.logged: list[tuple[str, int]] = []

    def _log(self, trainer: L.Trainer, tag: str, image: np.ndarray | None) -> None:
        if image is None or not trainer.is_global_zero:
            return
        step = int(trainer.global_step)
        sent = False
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if experiment is not None and hasattr(experiment, "add_image"):
                experiment.add_image(tag, np.ascontiguousarray(image[..., ::-1]), step, dataformats="HWC")
                sent = True
        if not sent and trainer.log_dir is not None:
            import cv2

            folder = Path(trainer.log_dir) / "images"
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{tag.replace('/', '_')}_{step:07d}.png"), image)
        self.logged.append((tag, step))

    def _settings(self, pl_module: L.LightningModule) -> tuple[Sequence[str] | None, str | None, dict]:
        info = getattr(pl_module, "info", None)
        classes = list(info.classes) if info is not None else None
        representation = info.representation if info is not None else None
        decode = {}
        if info is not None:
            decode = dict(score_thresh=info.score_thresh, nms_thresh=info.nms_thresh,
                          max_detections=info.max_detections)
        return classes, representation, decode

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        if self.every_n_steps <= 0 or not trainer.is_global_zero:
            return
        if trainer.global_step % self.every_n_steps != 0:
            return
        if (trainer.global_step, "train") in {(s, t.split("/")[0]) for t, s in self.logged}:
            return  # gradient accumulation: several batches share a step
        classes, representation, decode = self._settings(pl_module)
        detector = pl_module.detector
        detector.detach()  # the state becomes a leaf: the copy below shares no graph with training
        shadow = copy.deepcopy(detector)
        shadow.eval()
        with torch.no_grad():
            shadow.reset(batch.mask_keep_memory)
            detections = shadow.get_boxes(batch.float_inputs(), **decode)
        del shadow
        self._log(trainer, "train/detections",
                  render_detection_frames(batch, detections, classes, representation, self.num_frames))

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx != 0 or trainer.sanity_checking or not isinstance(outputs, list):
            return
        classes, representation, _ = self._settings(pl_module)
        self._log(trainer, "val/detections",
                  render_detection_frames(batch, outputs, classes, representation, self.num_frames))


def _loss_value(outputs) -> float | None:
    """The training loss of a ``training_step`` output (a tensor, or a dict with ``"loss"``), else None."""
    if isinstance(outputs, dict):
        outputs = outputs.get("loss")
    if isinstance(outputs, Tensor) and outputs.numel() == 1:
        value = float(outputs.detach())
        return value if np.isfinite(value) else None
    return None


class InterruptCheck(L.Callback):
    """After every training, validation and test batch, raise a Ctrl-C that arrived while Python freed an
    object (and so was dropped, :func:`evdet.io.interrupts.check_interrupt`), so that Lightning's graceful
    shutdown runs instead of the training going on to its end."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        check_interrupt()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0) -> None:
        check_interrupt()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        check_interrupt()


class TrainingCurvesPlot(L.Callback):
    """Draw the training loss and the validation AP / AP50 per epoch into one PNG, rewritten (atomically)
    after every training and validation epoch, so it is there while training runs and after a crash.

    The loss is drawn per step and as its mean per epoch; steps whose loss is exactly 0 (batches without
    any labelled bin) are left out of both.

    The history is part of the checkpoints (``state_dict``), so a resumed run continues its curves.

    Args:
        path: the PNG (e.g. ``root_dir/training_curves.png``).
        metrics: validation metrics drawn (keys of the module's ``last_metrics["val"]``).
    """

    def __init__(self, path: str | Path, metrics: Sequence[str] = ("AP", "AP50")) -> None:
        super().__init__()
        self.path = Path(path)
        self.metrics = tuple(metrics)
        self.steps: list[tuple[float, float]] = []  # (epoch progress, loss) per optimizer step
        self.epoch_loss: list[tuple[int, float]] = []  # (epochs done, mean loss)
        self.val: list[tuple[float, dict[str, float]]] = []  # (epochs done, metrics)
        self._sum = 0.0
        self._count = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sum, self._count = 0.0, 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        loss = _loss_value(outputs)
        if not loss:  # no loss, or 0 for a batch without any labelled bin (nothing was learnt)
            return
        self._sum += loss
        self._count += 1
        total = trainer.num_training_batches
        frac = (batch_idx + 1) / total if isinstance(total, int) and total > 0 else 0.0
        self.steps.append((trainer.current_epoch + frac, loss))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._count:
            self.epoch_loss.append((trainer.current_epoch + 1, self._sum / self._count))
        self._draw(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        found = dict(getattr(pl_module, "last_metrics", {}).get("val", {}))
        values = {k: float(found[k]) for k in self.metrics if k in found}
        if values:
            # validation runs at the end of the training epoch: it scores the model after that epoch
            self.val.append((float(trainer.current_epoch + 1), values))
            self._draw(trainer)

    def _draw(self, trainer: L.Trainer) -> None:
        if not trainer.is_global_zero or not (self.steps or self.val):
            return
        from evdet.viz.plots import save_png, training_curves_image

        steps = ([s for s, _ in self.steps], [v for _, v in self.steps])
        epochs = ([e for e, _ in self.epoch_loss], [v for _, v in self.epoch_loss])
        val = {name: ([e for e, m in self.val if name in m], [m[name] for _, m in self.val if name in m])
               for name in self.metrics}
        val = {k: v for k, v in val.items() if v[0]}
        try:
            save_png(training_curves_image(steps, epochs, val), self.path)
        except OSError as exc:  # a plot must never stop a training run
            log.warning("could not write %s: %s", self.path, exc)

    def state_dict(self) -> dict:
        return {"steps": [list(s) for s in self.steps], "epoch_loss": [list(e) for e in self.epoch_loss],
                "val": [[e, dict(m)] for e, m in self.val]}

    def load_state_dict(self, state_dict: dict) -> None:
        self.steps = [(float(a), float(b)) for a, b in state_dict.get("steps", [])]
        self.epoch_loss = [(int(a), float(b)) for a, b in state_dict.get("epoch_loss", [])]
        self.val = [(float(e), {k: float(v) for k, v in m.items()}) for e, m in state_dict.get("val", [])]
