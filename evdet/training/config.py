"""Training options: ``TrainConfig`` says how to optimise, validate and run the Lightning ``Trainer``.

Which detector to build is :class:`evdet.inference.model_config.ModelConfig` (stored in checkpoints,
loaded without Lightning). Values derived from the data (input channels, number of classes, sizes) are
never stored in a config: they are computed from the dataset (``evdet.data.describe_dataset``) and passed
explicitly. Configs round-trip through plain dicts (:mod:`evdet.inference.config_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LR_SCHEDULES", "TrainConfig"]

LR_SCHEDULES = ("cosine", "onecycle", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, validation and Trainer options.

    Attributes:
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        lr_schedule: ``"cosine"`` (linear warm-up then cosine decay to ``min_lr_ratio · lr``),
            ``"onecycle"`` (PyTorch OneCycle shape: cosine up over ``warmup_fraction``, cosine down), or
            ``"constant"`` (warm-up then constant). Stepped every optimizer step.
        warmup_fraction: fraction of the total steps spent warming up (used when ``warmup_steps`` is None).
        warmup_steps: explicit number of warm-up steps (overrides ``warmup_fraction``).
        min_lr_ratio: final learning rate as a fraction of ``lr`` (cosine / onecycle).
        gradient_clip_val: clip the gradient norm to this value (0 disables clipping).
        max_epochs: number of epochs (``-1``: unlimited, then ``max_steps`` must be set).
        max_steps: number of optimizer steps (``-1``: follow ``max_epochs``).
        limit_train_batches / limit_val_batches / limit_test_batches: Lightning's ``limit_*_batches``
            (a fraction of the epoch, or an integer number of batches).
        precision: Lightning precision; ``"auto"`` uses ``"16-mixed"`` on CUDA and ``"32-true"`` elsewhere.
        accelerator / devices / strategy: passed to the Lightning ``Trainer``.
        num_nodes: machines of a multi-node run (Lightning's ``num_nodes``; each runs ``devices``
            processes, started by torchrun or SLURM, see docs/training.md).
        accumulate_grad_batches: optimizer step every this many batches (their gradients summed): the
            effective batch is ``batch_size x devices x num_nodes x accumulate_grad_batches`` streams.
        ema_decay: keep an exponential moving average of the weights with this decay (YOLOX 0.9998,
            RT-DETR 0.9999; :mod:`evdet.training.ema`): it is what is validated, saved (best and last
            checkpoints), exported and detected with. None: off.
        ema_warmup_steps: the average's decay ramps up as ``decay · (1 − exp(−step / this))`` (YOLOX and
            RT-DETR: 2000); 0: constant.
        compile: ``torch.compile`` backend for the detector's backbone and head (``nn.Module.compile``
            in place: weights, checkpoints and exports are unchanged), one of
            ``torch.compiler.list_backends(exclude_tags=())``: ``"inductor"`` (torch.compile's default,
            generated kernels; the first two steps compile, minutes on a CPU), ``"aot_eager"`` (traced, no
            code generation: checks that a model compiles). What runs through their ``forward`` in
            training and validation is compiled; ``evdet-detect``, the demo and exports load the weights
            into an eager detector. None: eager.
        seed: global seed (``lightning.seed_everything``).
        skip_nonfinite: when False (default) a NaN/inf loss stops training with an error naming the
            global step; when True that step is skipped (no weight update) and counted in the logs.
        eval_preset: box filter of the evaluation (``evdet.evaluation`` presets) or ``"auto"``: the gen1 /
            gen4 presets for their sensor sizes, otherwise the gen1 thresholds scaled by the sensor width
            over 304 (see ``evdet.evaluation.presets.eval_preset_for``).
        eval_skip_ts: override of the preset's ``skip_ts`` (µs; ignore boxes in the first part of each
            recording while the recurrent state warms up). None keeps the preset's value, except for
            ``"auto"`` on non-standard sensors where it is 200 000 µs (tiny recordings are a few seconds).
        eval_score_thresh: score threshold of the detections kept for validation/test metrics (and the
            ``--just-test`` detection files); None: the model's ``score_thresh``. Low values (0.01) give the
            usual COCO AP; the model's threshold is the one used for deployment (detect, demo).
        time_tol: evaluation time tolerance (µs, inclusive); None: the preset's (``"auto"``: half a bin,
            see ``eval_preset_for``).
        checkpoint_every_n_steps: also write ``checkpoints/last.ckpt`` every this many optimizer steps
            (None: at the end of every epoch only). A run killed inside an epoch then resumes from the
            last of them, exactly (the data order continues at the next batch and the recurrent state of
            the training streams is restored).
        log_every_n_steps: scalar logging period (steps).
        log_images_every_n_steps: period of the detection-image callback (0 disables it).
        num_log_images: frames drawn per image log.
        check_val_every_n_epoch: validation period in epochs.
    """

    lr: float = 2e-3
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    warmup_fraction: float = 0.05
    warmup_steps: int | None = None
    min_lr_ratio: float = 0.01
    gradient_clip_val: float = 1.0
    max_epochs: int = 20
    max_steps: int = -1
    limit_train_batches: float | int = 1.0
    limit_val_batches: float | int = 1.0
    limit_test_batches: float | int = 1.0
    precision: str = "auto"
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = 1
    accumulate_grad_batches: int = 1
    ema_decay: float | None = None
    ema_warmup_steps: int = 2000
    compile: str | None = None
    seed: int = 0
    skip_nonfinite: bool = False
    eval_preset: str = "auto"
    eval_skip_ts: int | None = None
    eval_score_thresh: float | None = 0.01
    time_tol: int | None = None
    checkpoint_every_n_steps: int | None = None
    log_every_n_steps: int = 10
    log_images_every_n_steps: int = 200
    num_log_images: int = 4
    check_val_every_n_epoch: int = 1

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"TrainConfig.lr_schedule = {self.lr_schedule!r}: valid are {list(LR_SCHEDULES)}"
            )
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"TrainConfig.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.max_epochs == -1 and self.max_steps == -1:
            raise ValueError("TrainConfig: set max_epochs or max_steps (both are -1)")
        for name in ("num_nodes", "accumulate_grad_batches"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        if self.checkpoint_every_n_steps is not None and (not isinstance(self.checkpoint_every_n_steps, int)
                                                          or self.checkpoint_every_n_steps < 1):
            raise ValueError(f"TrainConfig.checkpoint_every_n_steps must be a positive integer or None, got "
                             f"{self.checkpoint_every_n_steps!r}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay <= 1.0:
            raise ValueError(f"TrainConfig.ema_decay must be in [0, 1] or None, got {self.ema_decay}")
        if not isinstance(self.ema_warmup_steps, int) or self.ema_warmup_steps < 0:
            raise ValueError(f"TrainConfig.ema_warmup_steps must be an integer >= 0, "
                             f"got {self.ema_warmup_steps!r}")
        if self.compile is not None:
            import torch

            backends = torch.compiler.list_backends(exclude_tags=())
            if self.compile not in backends:
                usual = [b for b in ("inductor", "aot_eager", "eager", "cudagraphs") if b in backends]
                raise ValueError(f"TrainConfig.compile = {self.compile!r}: not a torch.compile backend (one "
                                 f"of torch.compiler.list_backends(exclude_tags=()), e.g. {usual}) or None")
        if self.gradient_clip_val < 0:
            raise ValueError(f"TrainConfig.gradient_clip_val must be >= 0, got {self.gradient_clip_val}")
