"""``LightningDetectionModel``: training and streamed validation of a recurrent event-camera detector.

Training (SPEC 6): each batch is a ``SequenceBatch`` of B streams; the detector's recurrent state is
carried from one batch to the next per column, zeroed where ``mask_keep_memory`` is 0 and detached at the
start of every batch (truncated back-propagation through T bins). ``compute_loss`` always returns a loss
connected to every parameter, so under DDP every rank runs the same collectives even when its batch has
no labelled bin. A NaN/inf loss (or gradient) stops training with an error naming the global step, or,
with ``TrainConfig.skip_nonfinite``, skips the update (decided on all ranks together): no weight update,
the buffers (BatchNorm statistics) restored to their values before the step, the recurrent state reset.

Validation/test stream whole videos, keep detections of labelled bins stamped with the bin end time,
accumulate them per video and score once per epoch over all videos gathered from every rank.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from evdet.evaluation.accumulator import DetectionAccumulator
from evdet.evaluation.presets import eval_preset_for
from evdet.inference.checkpoint import CheckpointInfo
from evdet.inference.config_dict import config_from_dict, config_to_dict
from evdet.inference.model_config import build_detector
from evdet.training.config import TrainConfig
from evdet.training.schedules import build_lr_scheduler, resolve_warmup_steps
from evdet.training.validation import (
    accumulate_all_detections,
    accumulate_batch,
    evaluate_accumulator,
    gather_accumulator,
)

__all__ = ["LightningDetectionModel", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """Raised when a loss or gradient is NaN/inf (the message names the global step)."""


class LightningDetectionModel(L.LightningModule):
    """Lightning wrapper of an evdet detector.

    Args:
        info: what the detector is and what data it eats (:class:`CheckpointInfo` or its ``to_dict()``):
            classes, channels, sizes, representation, decoding thresholds, model config.
        train_config: optimisation/validation options (``TrainConfig`` or a dict of its fields).
        data_config: the data options used for training, as a plain dict (stored in the checkpoint so the
            data settings can be rebuilt; not used by the module itself).
        detector: an already built detector (tests, fine-tuning); None builds it from ``info.model_config``.

    Every hyper-parameter is saved as plain types, so checkpoints load with ``weights_only=True`` and
    ``LightningDetectionModel.load_from_checkpoint(path)`` rebuilds the model.

    Logged: ``train/loss`` (+ the detector's named parts), ``train/lr``, ``train/nonfinite_steps``; at the
    end of each validation/test epoch ``val/AP``, ``val/AP50``, ``val/AP75``, ``val/AP_S|M|L``,
    ``val/AR_1|10|100``, ``val/AR_S|M|L`` and ``val/AP_<class>`` (spaces in class names become ``_``).
    """

    def __init__(
        self,
        info: CheckpointInfo | dict[str, Any],
        train_config: TrainConfig | dict[str, Any] | None = None,
        data_config: dict[str, Any] | None = None,
        detector: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.info = info if isinstance(info, CheckpointInfo) else CheckpointInfo.from_dict(info)
        self.train_config = config_from_dict(TrainConfig, train_config)
        self.save_hyperparameters(
            {
                "info": self.info.to_dict(),
                "train_config": config_to_dict(self.train_config),
                "data_config": dict(data_config or {}),
            }
        )
        if detector is None:
            detector = build_detector(self.info.config, self.info.in_channels, len(self.info.classes))
        self.detector = detector
        self.eval_preset = eval_preset_for(
            self.train_config.eval_preset, self.info.sensor_size, self.train_config.eval_skip_ts,
            self.train_config.time_tol, self.info.delta_t,
        )
        self.accumulators: dict[str, DetectionAccumulator] = {
            "val": DetectionAccumulator(), "test": DetectionAccumulator()
        }
        self.last_metrics: dict[str, dict[str, float]] = {}
        self._resume_state: list[Tensor] | None = None  # recurrent state of a mid-epoch checkpoint
        #: the global step (weights) each split's ``last_metrics`` were computed at
        self.last_metrics_step: dict[str, int] = {}
        #: the merged accumulator of the last finished validation/test epoch (e.g. to write detections)
        self.last_accumulators: dict[str, DetectionAccumulator] = {}
        #: test epochs also keep the detections of every bin (not only labelled ones), gathered over ranks
        self.all_test_detections = DetectionAccumulator()
        self._all_dets = DetectionAccumulator()
        self.nonfinite_steps = 0

    def setup(self, stage: str) -> None:
        """``TrainConfig.compile``: compile the backbone and the head in place (their state dicts keep
        their keys, so checkpoints do not change). Lightning calls this after the callbacks' ``setup``, so
        the EMA callback's copy of the model stays eager (it is only averaged into)."""
        backend = self.train_config.compile
        if backend is not None:
            self.detector.backbone.compile(backend=backend)
            self.detector.head.compile(backend=backend)

    # ------------------------------------------------------------------ training
    def _any_rank(self, flag: bool) -> bool:
        """True when ``flag`` is True on any DDP rank (one all-reduce; no-op when not distributed)."""
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def training_step(self, batch, batch_idx: int) -> Tensor | None:
        self.detector.reset(batch.mask_keep_memory)
        saved = None
        if self.train_config.skip_nonfinite:  # buffers (BatchNorm statistics) change in the forward pass
            saved = {name: b.detach().clone() for name, b in self.detector.named_buffers()}
        losses = self.detector.compute_loss(batch.float_inputs(), batch.labels, batch.frame_is_labeled)
        loss = losses["loss"]
        if self._any_rank(not bool(torch.isfinite(loss.detach()).all())):
            step = self.global_step
            if not self.train_config.skip_nonfinite:
                raise NonFiniteLossError(
                    f"non-finite loss at global step {step} (epoch {self.current_epoch}, batch {batch_idx}): "
                    f"{ {k: float(v.detach()) for k, v in losses.items()} }; weights were not updated. "
                    "Lower the learning rate, check the data, or pass --skip-nonfinite to skip such steps."
                )
            self.nonfinite_steps += 1
            with torch.no_grad():  # undo the forward pass: buffers as before, recurrent state forgotten
                for name, b in self.detector.named_buffers():
                    b.copy_(saved[name])
            self.detector.reset_all()
            self.log("train/nonfinite_steps", float(self.nonfinite_steps), batch_size=batch.batch_size)
            return None  # Lightning skips backward and the optimizer step (on every rank: decided jointly)
        bs = batch.batch_size
        if bool(batch.frame_is_labeled.any()):  # a batch without labels has a placeholder zero loss
            self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
            for name, value in losses.items():
                if name != "loss":
                    self.log(f"train/{name}", value.detach(), batch_size=bs)
        self.log("train/lr", float(self.optimizers().param_groups[0]["lr"]), batch_size=bs)
        return loss

    def _has_trainer(self) -> bool:
        return self._trainer is not None

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        bad = any(not bool(torch.isfinite(g).all()) for g in grads)
        if not self._any_rank(bad):
            return
        if not self.train_config.skip_nonfinite:
            raise NonFiniteLossError(
                f"non-finite gradient at global step {self.global_step}; weights were not updated. "
                "Lower the learning rate or pass --skip-nonfinite to skip such steps."
            )
        self.nonfinite_steps += 1
        for p in self.parameters():  # AdamW leaves parameters without a gradient untouched
            p.grad = None

    def configure_optimizers(self) -> dict[str, Any]:
        tc = self.train_config
        optimizer = torch.optim.AdamW(self.detector.param_groups(tc.lr, tc.weight_decay), lr=tc.lr)
        total = self.trainer.estimated_stepping_batches if self._has_trainer() else tc.max_steps
        if total is None or not math.isfinite(total) or total < 1:
            if tc.max_steps > 0:
                total = tc.max_steps
            else:
                raise ValueError(
                    f"cannot size the learning-rate schedule: the number of steps is unknown ({total}); "
                    "set max_steps"
                )
        total = int(total)
        warmup = resolve_warmup_steps(total, tc.warmup_steps, tc.warmup_fraction)
        scheduler = build_lr_scheduler(optimizer, tc.lr_schedule, total, warmup, tc.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None,
                                    gradient_clip_algorithm=None) -> None:
        """Clip at ``TrainConfig.gradient_clip_val``, or at the detector's own ``grad_clip`` norm when smaller
        (the set head's default 0.1; 0 disables it)."""
        head_clip = self.detector.grad_clip
        by_norm = gradient_clip_algorithm is None or gradient_clip_algorithm == "norm"
        if head_clip > 0 and by_norm and (not gradient_clip_val or head_clip < gradient_clip_val):
            # Lightning refuses a value other than the Trainer's in clip_gradients: clip here directly
            # (gradients are already unscaled under mixed precision at this point)
            torch.nn.utils.clip_grad_norm_([p for p in self.parameters() if p.grad is not None], head_clip)
            return
        self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val,
                            gradient_clip_algorithm=gradient_clip_algorithm)

    def on_train_epoch_start(self) -> None:
        self.detector.reset_all()

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self._resume_state is not None:  # the first batch after a mid-epoch checkpoint
            self.detector.set_state([t.to(self.device) for t in self._resume_state])
            self._resume_state = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the recurrent state of the training streams: a checkpoint saved inside an epoch
        (``--checkpoint-every-n-steps``) resumes with the memory the next batch continues from."""
        progress = self.trainer.fit_loop.epoch_progress.current if self._has_trainer() else None
        if progress is not None and progress.started > progress.processed:  # inside an epoch
            checkpoint["recurrent_state"] = [t.detach().cpu().clone() for t in self.detector.get_state()]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """On ``--resume``: tell the data module the epoch that training continues with (the number of
        epochs whose batches all ran, as Lightning counts them) and, for a checkpoint saved inside an epoch,
        the batches of it already trained, before anything builds the training loader. Lightning builds it
        while sizing the learning-rate schedule (``configure_optimizers``), before it restores its own
        epoch counter; without this the resumed epoch would replay epoch 0's data order. A mid-epoch
        checkpoint also restores the recurrent state of the training streams."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._has_trainer() else None
        loops = checkpoint.get("loops", {}).get("fit_loop", {})
        progress = loops.get("epoch_progress", {}).get("current")
        if datamodule is not None and hasattr(datamodule, "set_epoch") and progress:
            inside = int(progress["started"]) > int(progress["processed"])  # saved before the epoch's end
            batches = loops.get("epoch_loop.batch_progress", {}).get("current", {}).get("processed", 0)
            datamodule.set_epoch(int(progress["processed"]), int(batches) if inside else 0)
            if inside and batches:
                self._resume_state = list(checkpoint.get("recurrent_state", []))

    # ------------------------------------------------------------------ validation / test
    def _eval_step(self, batch, split: str) -> list[list[Tensor]]:
        self.detector.reset(batch.mask_keep_memory)
        thresh = self.train_config.eval_score_thresh
        detections = self.detector.get_boxes(
            batch.float_inputs(), score_thresh=self.info.score_thresh if thresh is None else thresh,
            nms_thresh=self.info.nms_thresh,
            max_detections=self.info.max_detections,
        )
        accumulate_batch(self.accumulators[split], batch, detections)
        if split == "test":
            accumulate_all_detections(self._all_dets, batch, detections)
        return detections

    def _eval_epoch_start(self, split: str) -> None:
        self.detector.reset_all()
        self.accumulators[split] = DetectionAccumulator()
        if split == "test":
            self._all_dets = DetectionAccumulator()

    def _eval_epoch_end(self, split: str) -> dict[str, float]:
        merged = gather_accumulator(self.accumulators[split])
        if split == "test":
            self.all_test_detections = gather_accumulator(self._all_dets)
        metrics = evaluate_accumulator(merged, self.info.classes, self.eval_preset)
        self.detector.reset_all()
        self.accumulators[split] = DetectionAccumulator()
        if self._has_trainer() and self.trainer.sanity_checking:
            return metrics
        self.last_metrics[split] = metrics
        self.last_metrics_step[split] = int(self.global_step)
        self.last_accumulators[split] = merged
        logged = {f"{split}/{k.replace(' ', '_')}": float(v) for k, v in metrics.items()}
        # every rank holds the same merged metrics: no reduction needed
        for key, value in logged.items():
            self.log(key, value, prog_bar=key in (f"{split}/AP", f"{split}/AP50"), sync_dist=False)
        return metrics

    def validation_step(self, batch, batch_idx: int) -> list[list[Tensor]]:
        return self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> list[list[Tensor]]:
        return self._eval_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._eval_epoch_start("val")

    def on_test_epoch_start(self) -> None:
        self._eval_epoch_start("test")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")
