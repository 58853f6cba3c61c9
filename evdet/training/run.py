"""``train(dataset_dir, root_dir, ...)``: the library entry behind ``evdet-train`` and ``evdet-quickstart``.

Layout of ``root_dir``::

    root_dir/checkpoints/last.ckpt               every epoch (atomic writes)
    root_dir/checkpoints/epoch=NNN.ckpt          the latest epoch
    root_dir/checkpoints/best-epoch=NNN-AP=X.ckpt  best validation AP
    root_dir/logs/tensorboard/version_N/         TensorBoard scalars and detection images
    root_dir/logs/csv/version_N/metrics.csv      the same scalars as CSV
    root_dir/config.yaml                         the run configuration (evdet.training.run_config)
    root_dir/metrics_val.json, metrics_test.json final metrics
    root_dir/training_curves.png                 training loss and validation AP / AP50 per epoch
    root_dir/detections/test/<name>_bbox.npy      with just_test: detections of every test video

The run folder follows :mod:`evdet.io.output_paths`: it may not be, contain or lie inside the dataset's
split folders (train/, val/, test/, present or not) or label map, and the entries above are recorded as
evdet's in ``root_dir/.evdet-outputs``. An entry there that evdet did not write is never touched. A new
training in a folder that holds the checkpoints of an earlier run needs ``resume`` (continue it) or
``overwrite`` (its checkpoints and metrics are deleted once the new run's model and trainer are built, so a
refused run deletes nothing; only checkpoints evdet recorded, never through a link, never the checkpoint the
run reads); evaluations (``just_val`` / ``just_test``) and resumed runs update the run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from evdet.data.config import DataConfig
from evdet.inference.checkpoint import (
    CheckpointInfo,
    checkpoint_info,
    detector_state_dict,
    find_latest_checkpoint,
    load_checkpoint_dict,
    load_weights,
)
from evdet.inference.config_dict import config_to_dict
from evdet.inference.model_config import ModelConfig
from evdet.inference.pretrained import source_weights, transfer_weights
from evdet.io.atomic import atomic_open
from evdet.io.label_map import LABEL_MAP_FILENAME
from evdet.io.layout import SPLITS
from evdet.io.output_paths import (
    MANIFEST_NAME,
    OutputPathError,
    check_written_by,
    output_folder,
    record_output,
    written_by,
    written_by_evdet,
)
from evdet.training.callbacks import DetectionImageLogger, InterruptCheck, TrainingCurvesPlot
from evdet.training.checkpoint_io import AtomicCheckpointIO
from evdet.training.config import TrainConfig
from evdet.training.datamodule import EventDataModule
from evdet.training.ema import EMAWeights
from evdet.training.lightning_module import LightningDetectionModel
from evdet.training.run_config import RUN_CONFIG_NAME, RunConfig, write_run_config
from evdet.training.validation import write_detections

__all__ = ["RUN_ENTRIES", "TrainResult", "build_trainer", "check_run_folder", "claim_run_folder",
           "data_config_to_dict", "make_info", "train"]

log = logging.getLogger(__name__)

TOOL = "evdet-train"

#: The training-curves PNG written in the run folder (:class:`~evdet.training.callbacks.TrainingCurvesPlot`).
CURVES_FILENAME = "training_curves.png"


@dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        metrics: ``{"val": {...}, "test": {...}}`` COCO metrics of the final evaluation(s).
        best_checkpoint: best-by-``val/AP`` checkpoint (None when validation never ran).
        last_checkpoint: ``checkpoints/last.ckpt`` (None when nothing was trained).
        root_dir: the run folder. detections_dir: folder of ``_bbox.npy`` files (just_test).
        is_global_zero: False on the other DDP ranks (their metrics are the same).
    """

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None
    root_dir: Path | None = None
    detections_dir: Path | None = None
    is_global_zero: bool = True


def data_config_to_dict(config: DataConfig) -> dict[str, Any]:
    """Plain-types copy of a ``DataConfig`` (for checkpoints)."""
    out = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if isinstance(v, Mapping):
            v = dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def data_config_from_dict(values: Mapping[str, Any]) -> DataConfig:
    """Inverse of :func:`data_config_to_dict` (unknown keys ignored)."""
    names = {f.name for f in dataclasses.fields(DataConfig)}
    v = {k: val for k, val in values.items() if k in names}
    if v.get("classes") is not None:
        v["classes"] = tuple(v["classes"])
    return DataConfig(**v)


def make_info(dm: EventDataModule, model_config: ModelConfig) -> CheckpointInfo:
    """The :class:`CheckpointInfo` of a model trained on ``dm`` with ``model_config``."""
    return CheckpointInfo(
        classes=tuple(dm.classes),
        label_map=dict(dm.info.label_map),
        representation=str(dm.info.representation),
        representation_params=dict(dm.info.representation_params),
        delta_t=int(dm.info.delta_t),
        num_tbins=int(dm.config.num_tbins),
        in_channels=int(dm.info.in_channels),
        sensor_size=tuple(int(v) for v in dm.info.sensor_size),
        network_size=tuple(int(v) for v in dm.network_size),
        score_thresh=model_config.score_thresh,
        nms_thresh=model_config.nms_thresh,
        max_detections=model_config.max_detections,
        model_config=config_to_dict(model_config),
        stored_size=tuple(int(v) for v in dm.info.stored_size),
    )


def _precision(name: str, accelerator: str) -> str:
    if name != "auto":
        return name
    cuda = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    return "16-mixed" if cuda else "32-true"


def _quiet_lightning() -> None:
    """Silence two messages Lightning prints on every run that an evdet user cannot act on: its LitLogger
    advert, and torch's FutureWarning about Lightning's own use of ``LeafSpec``."""
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropLightningTip) for f in rank_zero.filters):
        rank_zero.addFilter(_DropLightningTip())


class _DropLightningTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def build_trainer(
    root_dir: Path, tc: TrainConfig, *, progress: bool = True, monitor_val: bool = True
) -> L.Trainer:
    """The Lightning ``Trainer`` of a run: atomic checkpoints (last + best by ``val/AP``), TensorBoard and
    CSV logs, the detection-image callback, ``use_distributed_sampler=False``."""
    _quiet_lightning()
    ckpt_dir = root_dir / "checkpoints"
    callbacks: list[L.Callback] = [
        ModelCheckpoint(dirpath=ckpt_dir, filename="epoch={epoch:03d}", auto_insert_metric_name=False,
                        save_top_k=1, every_n_epochs=1, save_last=True, enable_version_counter=False),
    ]
    if tc.checkpoint_every_n_steps is not None:  # last.ckpt inside epochs too (exact mid-epoch resume)
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, save_top_k=0, save_last=True,
                                         every_n_train_steps=tc.checkpoint_every_n_steps,
                                         enable_version_counter=False))
    if monitor_val:
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best-epoch={epoch:03d}-AP={val/AP:.4f}",
                                         auto_insert_metric_name=False, monitor="val/AP", mode="max",
                                         save_top_k=1, enable_version_counter=False))
    if tc.ema_decay is not None:
        callbacks.append(EMAWeights(tc.ema_decay, tc.ema_warmup_steps))
    callbacks.append(TrainingCurvesPlot(root_dir / CURVES_FILENAME))
    callbacks.append(InterruptCheck())
    if tc.log_images_every_n_steps > 0:
        callbacks.append(DetectionImageLogger(tc.log_images_every_n_steps, tc.num_log_images))
    loggers = [TensorBoardLogger(root_dir / "logs", name="tensorboard"),
               CSVLogger(root_dir / "logs", name="csv")]
    names = ("limit_train_batches", "limit_val_batches", "limit_test_batches")
    # (Lightning announces every explicit 1.0, its default, in the output)
    limits = {name: getattr(tc, name) for name in names if getattr(tc, name) != 1.0}
    return L.Trainer(
        default_root_dir=root_dir,
        accelerator=tc.accelerator,
        devices=tc.devices,
        strategy=tc.strategy,
        num_nodes=tc.num_nodes,
        accumulate_grad_batches=tc.accumulate_grad_batches,
        precision=_precision(tc.precision, tc.accelerator),
        max_epochs=tc.max_epochs,
        max_steps=tc.max_steps,
        **limits,
        gradient_clip_val=tc.gradient_clip_val or None,
        check_val_every_n_epoch=tc.check_val_every_n_epoch,
        log_every_n_steps=tc.log_every_n_steps,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        callbacks=callbacks,
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=progress,
    )


def _run_stage(trainer: L.Trainer, stage: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``stage(*args, **kwargs)``, one of ``trainer.fit`` / ``validate`` / ``test``.

    Raises:
        KeyboardInterrupt: a Ctrl-C stopped the stage. Lightning shuts down gracefully (the checkpoints
            written so far are complete) and then calls ``sys.exit(1)``, which would make an interrupted
            run look like a failed one; the apps turn this into exit status 130.
    """
    try:
        return stage(*args, **kwargs)
    except SystemExit:
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise


def _save_json(path: Path, values: Mapping[str, Any]) -> None:
    with atomic_open(path, "w") as f:
        f.write(json.dumps(values, indent=2, sort_keys=True))


def train(
    dataset_dir: str | os.PathLike,
    root_dir: str | os.PathLike,
    *,
    model_config: ModelConfig | None = None,
    data_config: DataConfig | None = None,
    train_config: TrainConfig | None = None,
    resume: bool = False,
    checkpoint: str | os.PathLike | None = None,
    finetune: bool = False,
    just_val: bool = False,
    just_test: bool = False,
    progress: bool = True,
    overwrite: bool = False,
) -> TrainResult:
    """Train (or only evaluate) a detector on ``dataset_dir``; everything is written under ``root_dir``.

    Args:
        dataset_dir: ``label_map_dictionary.json`` + ``train/``, ``val/`` (+ ``test/``) (SPEC 2.6). Channels,
            ``delta_t``, representation and sensor size are read from the data; classes from the label map
            (or ``data_config.classes``).
        root_dir: run folder (checkpoints, logs, metrics; see the module docstring).
        model_config, data_config, train_config: options (None: defaults).
        resume: continue from the latest checkpoint under ``root_dir`` (model and optimisation settings
            come from that checkpoint); starts from scratch when there is none.
        checkpoint: with ``finetune``: weights to start from (every matching weight, class logits remapped
            by name; the architecture comes from this checkpoint); with ``just_val``/``just_test``: the model
            to evaluate (default: the latest checkpoint under ``root_dir``).
        just_val / just_test: only evaluate the checkpoint on ``val`` / ``test``; ``just_test`` also writes
            the detections of every bin as ``root_dir/detections/test/<name>_bbox.npy``.
        progress: show progress bars and the model summary.
        overwrite: start a new training in a run folder that holds an earlier run's checkpoints (they
            and its metrics are deleted first; see the module docstring).

    Returns:
        a :class:`TrainResult`.

    Raises:
        FileNotFoundError / ValueError: bad dataset directory (missing label map, empty split, mismatched
            files: reported before any training starts), missing or unreadable checkpoint, ``finetune``
            without ``checkpoint``, both ``just_val`` and ``just_test``; ``OutputPathError`` (a
            ``ValueError``): a run folder refused by the output-path policy.
        evdet.training.lightning_module.NonFiniteLossError: a NaN/inf loss (unless ``skip_nonfinite``).
    """
    mc = model_config or ModelConfig()
    dc = data_config or DataConfig()
    tc = train_config or TrainConfig()
    root = Path(root_dir)
    if just_val and just_test:
        raise ValueError("give just_val or just_test, not both")
    if finetune and checkpoint is None:
        raise ValueError("finetune needs a checkpoint to start from")
    dm = EventDataModule(dataset_dir, dc)  # validates the dataset before anything else happens
    if "val" not in dm.info.splits and not just_test:
        log.warning("%s has no val/ split: validating on train/", dataset_dir)
    if just_test and "test" not in dm.info.splits:
        raise ValueError(f"{dataset_dir}: no test/ split to evaluate (found {sorted(dm.info.splits)})")
    latest = find_latest_checkpoint(root / "checkpoints", TOOL)  # this run's own checkpoints only
    fresh = not (just_val or just_test) and not (resume and latest)
    root, to_delete = check_run_folder(root, dm, fresh=fresh, overwrite=overwrite, checkpoint=checkpoint)
    L.seed_everything(tc.seed, workers=True, verbose=False)

    if just_val or just_test:
        path = Path(checkpoint) if checkpoint is not None else latest
        if path is None:
            raise FileNotFoundError(f"no checkpoint given and none found under {root / 'checkpoints'}")
        module = _module_from_checkpoint(path, tc)
        _check_compatible(module.info, dm, path)
        trainer = build_trainer(root, tc, progress=progress, monitor_val=False)
        claim_run_folder(root, to_delete)
        split = "val" if just_val else "test"
        _run_stage(trainer, trainer.validate if just_val else trainer.test, module, datamodule=dm,
                   verbose=False)
        result = TrainResult(root_dir=root, is_global_zero=trainer.is_global_zero)
        result.metrics[split] = dict(module.last_metrics.get(split, {}))
        if trainer.is_global_zero:
            _save_json(root / f"metrics_{split}.json", result.metrics[split])
            if just_test:
                result.detections_dir = root / "detections" / "test"
                write_detections(module.all_test_detections, result.detections_dir)
        return result

    ckpt_path = None
    if resume:
        ckpt_path = latest
        if ckpt_path is None:
            log.warning("resume: no checkpoint under %s, starting from scratch", root / "checkpoints")
    if ckpt_path is not None:
        module = _module_from_checkpoint(ckpt_path, tc)
        _check_compatible(module.info, dm, ckpt_path)
    elif finetune:
        src_info, src_state = source_weights(checkpoint, "cpu", None)  # evdet's or RVT's
        mc = dataclasses.replace(src_info.config, score_thresh=mc.score_thresh, nms_thresh=mc.nms_thresh,
                                 max_detections=mc.max_detections)
        if src_info.in_channels != dm.info.in_channels:
            raise ValueError(f"finetune: {checkpoint} takes {src_info.in_channels} input channels but "
                             f"{dataset_dir} holds {dm.info.in_channels}")
        module = LightningDetectionModel(make_info(dm, mc), tc, data_config_to_dict(dc))
        transfer_weights(module.detector, src_state, src_info.classes, module.info.classes)
    else:
        module = LightningDetectionModel(make_info(dm, mc), tc, data_config_to_dict(dc))

    trainer = build_trainer(root, module.train_config, progress=progress,
                            monitor_val=module.train_config.limit_val_batches != 0)
    claim_run_folder(root, to_delete)  # the earlier run is deleted only now, when everything was checked
    if trainer.is_global_zero:  # what this run trains, resolved: `evdet-train --config` repeats it
        write_run_config(root / RUN_CONFIG_NAME, RunConfig(str(dataset_dir), module.info.config, dc,
                                                           module.train_config))
    _run_stage(trainer, trainer.fit, module, datamodule=dm,
               ckpt_path=str(ckpt_path) if ckpt_path is not None else None)
    result = TrainResult(root_dir=root, is_global_zero=trainer.is_global_zero)
    last = root / "checkpoints" / "last.ckpt"
    result.last_checkpoint = last if last.exists() else None
    best = [cb for cb in trainer.checkpoint_callbacks if getattr(cb, "monitor", None) == "val/AP"]
    if best and best[0].best_model_path:
        # as the run folder was given (Lightning's path is absolute), like the last checkpoint's
        result.best_checkpoint = root / "checkpoints" / Path(best[0].best_model_path).name
    validated_final = module.last_metrics_step.get("val") == trainer.global_step
    if not validated_final and module.train_config.limit_val_batches != 0 \
            and trainer.state.status.value == "finished":
        # the final weights were never validated (e.g. --max-steps stopped inside an epoch, before any
        # validation or after an earlier one): validate them now, so the metrics are the final model's
        _run_stage(trainer, trainer.validate, module, datamodule=dm, verbose=False)
    if "val" in module.last_metrics:
        result.metrics["val"] = dict(module.last_metrics["val"])
    if trainer.is_global_zero and result.metrics.get("val"):
        _save_json(root / "metrics_val.json", result.metrics["val"])
    return result


RUN_ENTRIES = ("checkpoints", "logs", "metrics_val.json", "metrics_test.json", "detections", RUN_CONFIG_NAME,
               CURVES_FILENAME)
"""What :func:`train` writes in a run folder (recorded as evdet's outputs there)."""


def check_run_folder(root: Path, dm: EventDataModule, *, fresh: bool, overwrite: bool,
                     checkpoint: str | os.PathLike | None = None) -> tuple[Path, list[Path]]:
    """Apply the output-path policy to a run folder (module docstring), without changing anything.

    Args:
        fresh: a new training starts (not an evaluation, not a resumed run).
        checkpoint: a checkpoint the run reads (fine-tuning, evaluation): never deleted.
    Returns:
        ``(root, to_delete)``: the folder, created when missing, and what :func:`claim_run_folder` deletes
        for a new run with ``overwrite`` (the earlier run's checkpoints and metrics; empty otherwise).
    Raises:
        OutputPathError: ``root`` is a file or overlaps the dataset, an entry exists that evdet did not
            write or that another command wrote, or ``fresh`` without ``overwrite`` in a folder holding
            earlier checkpoints; with ``overwrite``: ``checkpoints/`` is a link, holds a file evdet did
            not write, or holds ``checkpoint``.

    Runs of evdet versions that recorded neither ``training_curves.png`` nor the checkpoints themselves
    (their ``checkpoints`` is evdet-train's, its folder has no manifest) go on: their curves PNG and their
    ``*.ckpt`` files count as the run's.
    """
    data = Path(dm.info.dataset_dir)
    splits = sorted({*dm.info.splits, *SPLITS})  # an absent split too: a run there would become one
    root = output_folder(root, inputs=[*(data / s for s in splits), data / LABEL_MAP_FILENAME])
    legacy = written_by(root / "checkpoints") == TOOL  # a run of evdet before the entries below
    for entry in (root / name for name in RUN_ENTRIES):
        if not (entry.exists() or entry.is_symlink()):
            continue
        if legacy and entry.name == CURVES_FILENAME and _is_png(entry):
            continue  # recorded once this run goes on
        if not written_by_evdet(entry):
            raise OutputPathError(f"{entry} exists and was not written by evdet: choose another run folder "
                                  "(evdet never replaces what it did not write)")
        check_written_by(entry, TOOL)
    ckpts = root / "checkpoints"
    launched_rank = int(os.environ.get("LOCAL_RANK", 0)) > 0 or int(os.environ.get("NODE_RANK", 0)) > 0
    if not (fresh and not launched_rank and ckpts.is_dir() and any(ckpts.iterdir())):  # DDP: rank 0 decides
        return root, []
    if not overwrite:
        raise OutputPathError(f"{root} holds the checkpoints of an earlier run: pass --resume to "
                              "continue it, or --overwrite to start a new run there (its checkpoints "
                              "and metrics are deleted)")
    if ckpts.is_symlink():
        raise OutputPathError(f"{ckpts} is a link: --overwrite does not delete the earlier checkpoints "
                              "through it; remove the link or choose another run folder")
    to_delete = sorted(p for p in ckpts.iterdir() if p.name != MANIFEST_NAME)
    unlisted = not (ckpts / MANIFEST_NAME).exists()  # a run of evdet before checkpoints were recorded
    for path in to_delete:
        if path.is_dir() or not (written_by_evdet(path) or (unlisted and path.suffix == ".ckpt")):
            raise OutputPathError(f"{path} was not written by evdet: --overwrite deletes the earlier run's "
                                  f"checkpoints in {ckpts}; move it out first")
        if not unlisted:
            check_written_by(path, TOOL)  # e.g. an evdet-import-rvt checkpoint put there
    if checkpoint is not None and Path(os.path.realpath(checkpoint)).parent == Path(os.path.realpath(ckpts)):
        raise OutputPathError(f"--overwrite would delete {checkpoint}, which this run reads: copy it out of "
                              f"{ckpts} first, or choose another run folder")
    return root, to_delete + [root / n for n in ("metrics_val.json", "metrics_test.json")]


def _is_png(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def claim_run_folder(root: Path, to_delete: list[Path]) -> None:
    """After every check of the run (:func:`check_run_folder`, the model, the trainer): delete what a new
    run with ``overwrite`` replaces, and record the run folder's entries as evdet-train's."""
    for path in to_delete:
        path.unlink(missing_ok=True)
    for entry in (root / name for name in RUN_ENTRIES):
        record_output(entry, TOOL)


def _module_from_checkpoint(path: str | os.PathLike, tc: TrainConfig) -> LightningDetectionModel:
    ckpt = load_checkpoint_dict(path)  # weights_only=True; clear errors for missing/corrupt files
    hp = ckpt.get("hyper_parameters") or {}
    info = checkpoint_info(ckpt, str(path))
    # the model and its data settings come from the checkpoint, the training options from the caller
    module = LightningDetectionModel(info, tc, hp.get("data_config") or {})
    load_weights(module.detector, detector_state_dict(ckpt, str(path)),
                 f"checkpoint {path}: weights do not match its model config")
    return module


def _check_compatible(info: CheckpointInfo, dm: EventDataModule, path: str | os.PathLike) -> None:
    if info.in_channels != dm.info.in_channels:
        raise ValueError(f"checkpoint {path} takes {info.in_channels} input channels but the dataset "
                         f"{dm.dataset_dir} holds {dm.info.in_channels}")
    if tuple(info.classes) != tuple(dm.classes):
        raise ValueError(f"checkpoint {path} was trained on classes {list(info.classes)} but the data "
                         f"gives {list(dm.classes)}; pass --classes {' '.join(info.classes)}")
