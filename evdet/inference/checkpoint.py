"""Checkpoint format: what a checkpoint holds, how it is written atomically and read back as code-free data.

A training checkpoint is a Lightning ``.ckpt`` (a ``torch.save`` of a dict); reading one needs no
Lightning. evdet's part of it:

- ``state_dict``: the detector's weights under the prefix ``"detector."``;
- ``hyper_parameters``: ``{"info": CheckpointInfo.to_dict(), "train_config": {...}, "data_config": {...}}``
  holding only primitive types (str, int, float, bool, None, lists, tuples and dicts of them).

So every checkpoint loads with ``torch.load(weights_only=True)``: no pickled classes, no code.

Writes go through :mod:`evdet.io.atomic` (a temporary file in the destination folder, ``fsync``, rename):
a killed process never leaves a half-written ``.ckpt``. During training Lightning writes through
:class:`evdet.training.checkpoint_io.AtomicCheckpointIO`, which calls :func:`atomic_torch_save`.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evdet.inference.config_dict import config_from_dict, config_to_dict
from evdet.inference.model_config import ModelConfig, build_detector
from evdet.io.atomic import atomic_open, is_temporary
from evdet.io.output_paths import MANIFEST_NAME, written_by

__all__ = [
    "DETECTOR_PREFIX",
    "CheckpointInfo",
    "atomic_torch_save",
    "check_checkpoint_file",
    "check_finite_weights",
    "checkpoint_info",
    "detector_state_dict",
    "find_latest_checkpoint",
    "load_checkpoint_dict",
    "load_detector",
    "load_weights",
    "save_detector_checkpoint",
    "with_class_score_only",
]

#: Prefix of the detector's weights in a checkpoint's ``state_dict``.
DETECTOR_PREFIX = "detector."


@dataclass(frozen=True)
class CheckpointInfo:
    """Everything needed, besides the weights, to rebuild a detector and feed it the right tensors.

    Attributes:
        classes: class names in the order of the model's class indices ``0..C-1``.
        label_map: ``{original class id: name}`` of the training dataset.
        representation: event-to-tensor representation name (``evdet.preprocessing``).
        representation_params: its parameters as used for training.
        delta_t: length of one time bin (µs).
        num_tbins: bins per chunk T used in training.
        in_channels: channels C of one input bin.
        sensor_size: ``(height, width)`` of the recordings (pixels).
        network_size: ``(height, width)`` of the network input (pixels).
        score_thresh, nms_thresh, max_detections: decoding settings.
        model_config: ``ModelConfig`` fields as a dict.
        stored_size: ``(height, width)`` at which the training tensors were computed before the resize
            to ``network_size`` (``sensor_size >> d`` for HDF5 files converted with downsampling factor
            ``d``); None in checkpoints written before it was recorded (then the sensor size is assumed).
    """

    classes: tuple[str, ...]
    label_map: dict[int, str]
    representation: str
    representation_params: dict[str, Any]
    delta_t: int
    num_tbins: int
    in_channels: int
    sensor_size: tuple[int, int]
    network_size: tuple[int, int]
    score_thresh: float
    nms_thresh: float
    max_detections: int
    model_config: dict[str, Any]
    stored_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if len(self.classes) == 0:
            raise ValueError("CheckpointInfo.classes is empty")
        if self.delta_t <= 0 or self.num_tbins <= 0 or self.in_channels <= 0:
            raise ValueError(
                f"CheckpointInfo: delta_t ({self.delta_t}), num_tbins ({self.num_tbins}) and in_channels "
                f"({self.in_channels}) must be positive"
            )
        for name in ("sensor_size", "network_size", "stored_size"):
            size = getattr(self, name)
            if size is None and name == "stored_size":
                continue
            if len(size) != 2 or min(size) <= 0:
                raise ValueError(f"CheckpointInfo.{name} must be a (height, width) pair > 0, got {size!r}")

    @property
    def config(self) -> ModelConfig:
        """The ``ModelConfig`` the detector was built with."""
        return config_from_dict(ModelConfig, self.model_config)

    def to_dict(self) -> dict[str, Any]:
        """Plain-types copy (tuples become lists), safe for ``torch.load(weights_only=True)``."""
        out = dataclasses.asdict(self)
        out["classes"] = list(self.classes)
        out["label_map"] = {int(k): str(v) for k, v in self.label_map.items()}
        out["sensor_size"] = [int(v) for v in self.sensor_size]
        out["network_size"] = [int(v) for v in self.network_size]
        out["stored_size"] = None if self.stored_size is None else [int(v) for v in self.stored_size]
        out["representation_params"] = dict(self.representation_params)
        out["model_config"] = dict(self.model_config)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CheckpointInfo:
        """Inverse of :meth:`to_dict`; a missing field raises ``ValueError`` naming it."""
        names = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [n for n in names if n not in values]
        if missing:
            raise ValueError(f"checkpoint info is missing field(s) {missing}")
        v = dict(values)
        return cls(
            classes=tuple(str(c) for c in v["classes"]),
            label_map={int(k): str(n) for k, n in dict(v["label_map"]).items()},
            representation=str(v["representation"]),
            representation_params=dict(v["representation_params"] or {}),
            delta_t=int(v["delta_t"]),
            num_tbins=int(v["num_tbins"]),
            in_channels=int(v["in_channels"]),
            sensor_size=(int(v["sensor_size"][0]), int(v["sensor_size"][1])),
            network_size=(int(v["network_size"][0]), int(v["network_size"][1])),
            score_thresh=float(v["score_thresh"]),
            nms_thresh=float(v["nms_thresh"]),
            max_detections=int(v["max_detections"]),
            model_config=dict(v["model_config"]),
            stored_size=None if v.get("stored_size") is None else (int(v["stored_size"][0]),
                                                                   int(v["stored_size"][1])),
        )


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`evdet.io.atomic.atomic_open` (temporary file beside ``path``, fsync,
    rename)."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def check_checkpoint_file(path: Path) -> None:
    """Raises FileNotFoundError, naming ``path``: no such file, or a folder where the checkpoint file was
    expected (said so)."""
    if path.is_dir():
        raise FileNotFoundError(f"{path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")


def unreadable_checkpoint(path: Path, exc: BaseException) -> str:
    """One line saying what ``path`` is, for a checkpoint that could not be loaded (``exc``): empty, not a
    PyTorch file, truncated, or holding Python objects other than weights (named; never loaded, and torch's
    advice to load it with ``weights_only=False`` is not passed on)."""
    size = path.stat().st_size
    if size == 0:
        return f"{path} is empty (0 bytes): not a checkpoint"
    with open(path, "rb") as f:
        magic = f.read(4)
    if not zipfile.is_zipfile(path):
        if magic == b"PK\x03\x04":
            return f"{path} is truncated or corrupt: a zip archive without its end ({size} bytes)"
        return f"{path} is not a PyTorch checkpoint (not the zip archive torch.save writes)"
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f" ({found.group(1)})" if found else ""
        return (f"{path} holds Python objects other than weights{what}; evdet loads weights only "
                "(torch.load weights_only=True) and refuses it")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")[:120]
    return f"{path} is truncated or corrupt ({type(exc).__name__}: {first})"


def load_checkpoint_dict(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint file with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable checkpoint (truncated, corrupt, or holding code).
    """
    path = Path(path)
    check_checkpoint_file(path)
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol notes: the error below says it all
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise ValueError(unreadable_checkpoint(path, exc)) from exc
    if not isinstance(ckpt, dict):
        raise ValueError(f"checkpoint {path} holds a {type(ckpt).__name__}, expected a dict")
    return ckpt


def detector_state_dict(ckpt: Mapping[str, Any], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The detector's weights (``"detector."`` prefix removed) from a loaded checkpoint dict."""
    state = ckpt.get("state_dict")
    if not isinstance(state, Mapping):
        raise ValueError(f"{source} has no 'state_dict'")
    out = {k[len(DETECTOR_PREFIX):]: v for k, v in state.items() if k.startswith(DETECTOR_PREFIX)}
    if not out:
        raise ValueError(f"{source}: no weights with prefix {DETECTOR_PREFIX!r} in its state_dict")
    check_finite_weights(out, source)
    return out


def check_finite_weights(weights: Mapping[str, Any], source: str) -> None:
    """Refuse weights holding NaN or ±inf (a diverged training run): such a model detects nothing and
    scores AP 0 without saying why.

    Raises:
        ValueError: naming ``source``, how many floating-point tensors are affected and the first one.
    """
    bad = [k for k, v in weights.items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f"{source}: {len(bad)} weight tensor(s) hold NaN or inf values, the first "
                         f"{bad[0]!r} (a diverged training run? use an earlier checkpoint)")


def checkpoint_info(ckpt: Mapping[str, Any], source: str = "checkpoint") -> CheckpointInfo:
    """The :class:`CheckpointInfo` stored in a loaded checkpoint dict."""
    hparams = ckpt.get("hyper_parameters")
    if not isinstance(hparams, Mapping) or "info" not in hparams:
        raise ValueError(f"{source} has no evdet 'hyper_parameters.info' (not an evdet checkpoint?)")
    try:
        return CheckpointInfo.from_dict(hparams["info"])
    except (TypeError, KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"{source}: invalid checkpoint info: {exc}") from exc


def with_class_score_only(info: CheckpointInfo, class_score_only: bool,
                          source: str = "checkpoint") -> CheckpointInfo:
    """``info`` whose model scores detections with the best class probability alone
    (``class_score_only=True``, what RVT's evaluation ranks by) or with objectness × class probability
    (``False``, YOLOX's score), the weights being the same. The score threshold and the NMS ranking stay
    those of objectness × class probability (RVT's post-processing): the same boxes survive, only their
    written score and order change, and so which ones ``max_detections`` keeps
    (:func:`evdet.models.yolox_decoding.yolox_postprocess`).

    Raises:
        ValueError: the checkpoint's head is not ``yolox`` (the only head with two score definitions).
    """
    config = info.config
    if config.head != "yolox":
        raise ValueError(f"{source}: the class score (best class probability alone) is only defined for "
                         f"yolox-head checkpoints; this one has head {config.head!r}")
    config = dataclasses.replace(config, yolox=dataclasses.replace(config.yolox,
                                                                  class_score_only=bool(class_score_only)))
    return dataclasses.replace(info, model_config=config_to_dict(config))


def load_detector(path: str | os.PathLike, map_location: Any = "cpu",
                  class_score_only: bool | None = None) -> tuple[nn.Module, CheckpointInfo]:
    """Rebuild a trained detector from a checkpoint (``torch.load(weights_only=True)``).

    Args:
        path: a ``.ckpt`` written by ``evdet-train`` (or :func:`save_detector_checkpoint`).
        map_location: device for the weights.
        class_score_only: None: score detections as the checkpoint says. True / False (yolox head only):
            build the detector with ``YoloxHeadConfig.class_score_only`` set to it, the returned info
            saying so (:func:`with_class_score_only`); the weights are the same.

    Returns:
        ``(detector, info)``: the detector in eval mode with its recurrent state reset, and its
        :class:`CheckpointInfo` (classes, data settings, decoding thresholds).

    Raises:
        FileNotFoundError: missing file. ValueError: unreadable file, missing evdet info, weights that
        do not fit the model described by the info, or ``class_score_only`` given for a checkpoint whose
        head is not ``yolox``.
    """
    ckpt = load_checkpoint_dict(path, map_location)
    info = checkpoint_info(ckpt, str(path))
    if class_score_only is not None:
        info = with_class_score_only(info, class_score_only, f"checkpoint {path}")
    state = detector_state_dict(ckpt, str(path))
    detector = build_detector(info.config, info.in_channels, len(info.classes))
    load_weights(detector, state, f"checkpoint {path}: weights do not match its model config")
    detector.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    detector.eval()
    detector.reset_all()
    return detector, info


def load_weights(module: nn.Module, state: Mapping[str, Any], problem: str) -> None:
    """``module.load_state_dict(state, strict=True)``, refused in one line when they do not fit.

    Raises:
        ValueError: ``"<problem>: ..."`` with how many weights are missing, unexpected or of another shape,
            and the first of each (torch's own message lists every one over many lines).
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    resized = [k for k in own if k in state and hasattr(state[k], "shape")
               and tuple(state[k].shape) != tuple(own[k].shape)]
    found = []
    if missing:
        found.append(f"{len(missing)} missing (first {missing[0]})")
    if unexpected:
        found.append(f"{len(unexpected)} unexpected (first {unexpected[0]})")
    if resized:
        k = resized[0]
        found.append(f"{len(resized)} of another shape (first {k}: {tuple(state[k].shape)} in the file, "
                     f"{tuple(own[k].shape)} in the model)")
    if found:
        raise ValueError(f"{problem}: {'; '.join(found)}")
    module.load_state_dict(state, strict=True)


def save_detector_checkpoint(
    path: str | os.PathLike, detector: nn.Module, info: CheckpointInfo, extra_hparams: Mapping | None = None
) -> None:
    """Write a minimal evdet checkpoint (weights + info) that :func:`load_detector` reads; atomic."""
    hparams: dict[str, Any] = {"info": info.to_dict()}
    if extra_hparams:
        hparams.update(dict(extra_hparams))
    state = {DETECTOR_PREFIX + k: v.detach().cpu() for k, v in detector.state_dict().items()}
    atomic_torch_save({"state_dict": state, "hyper_parameters": hparams}, path)


def find_latest_checkpoint(root_dir: str | os.PathLike, tool: str | None = None) -> Path | None:
    """The most recently written complete ``.ckpt`` under ``root_dir`` (recursive), or None.

    Temporary files of interrupted writes (:func:`evdet.io.atomic.is_temporary`) are ignored. Ties in
    modification time prefer ``last.ckpt`` (written last at the end of an epoch). With ``tool`` (e.g.
    ``"evdet-train"``), only the checkpoints that command recorded (:mod:`evdet.io.output_paths`) count,
    not a copy of another run's or an imported one put there; in a folder without a manifest (written
    by an evdet that did not record checkpoints) every one does.
    """
    root = Path(root_dir)
    if not root.is_dir():
        return None
    candidates = [p for p in root.rglob("*.ckpt") if p.is_file() and not is_temporary(p)
                  and (tool is None or written_by(p) == tool or not (p.parent / MANIFEST_NAME).exists())]
    if not candidates:
        return None
    return max(candidates, key=lambda p: (p.stat().st_mtime_ns, p.name.startswith("last")))
