"""TorchScript export of a detector with its box decoding (SPEC 6).

The exported file is a scripted :class:`ExportedDetector`:

- ``forward(x: Tensor[T, B, C, H, W], score_thresh: float) -> List[Tensor]``: ``T·B`` per-frame
  detections in t-major order (frame ``t·B + b``), each ``Tensor[n, 6]`` = (x1, y1, x2, y2, score,
  class_idx), xyxy in network pixels, scores descending; NMS threshold and the maximum number of
  detections are fixed at export (stored in the JSON). The recurrent state carries over between calls.
- ``reset_all()`` (forget the state, before a new recording), ``reset(mask_keep_memory: Tensor[B])``
  (zero the columns where 0), and the explicit state ``get_state() -> List[Tensor]`` /
  ``set_state(List[Tensor])`` (several streams, checkpointing a stream).

Next to it a JSON file (:mod:`evdet.export.metadata`) records the preprocessing actually used, the
classes and label map, and the thresholds. :func:`export_torchscript` checks the saved file before it is
put in place: scripted and eager outputs agree to ``atol`` (default 1e-5) over two consecutive chunks,
and after ``reset_all`` the first output equals that of a freshly loaded file.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from evdet.export.metadata import (
    check_atol,
    example_input_for,
    export_metadata,
    export_targets,
    read_export_json,
)
from evdet.io.atomic import AtomicTarget
from evdet.io.output_paths import record_output

EXPORT_FORMAT = "evdet-torchscript"
#: methods of the detector contract an export needs
REQUIRED_METHODS = ("forward", "detect", "get_boxes", "reset", "reset_all", "get_state", "set_state")


@contextlib.contextmanager
def _torchscript_ok():
    """Silence torch's "TorchScript is deprecated" warnings (torch >= 2.9): SPEC 6 asks for TorchScript,
    which stays the portable format for C++/mobile deployment of recurrent detectors."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit\.")
        yield


def _jit_load(path: str | os.PathLike) -> torch.jit.ScriptModule:
    with _torchscript_ok():
        return torch.jit.load(str(path), map_location="cpu")


class ExportedDetector(nn.Module):
    """Wrapper fixing the decoding settings of a detector (the contract of
    :class:`evdet.models.RecurrentDetector`: scriptable ``detect``, ``reset``, ``reset_all``, ``get_state``,
    ``set_state``).

    Args:
        detector: the detector.
        nms_thresh: IoU above which NMS suppresses a box of the same class.
        max_detections: at most this many boxes per frame.
    """

    def __init__(self, detector: nn.Module, nms_thresh: float, max_detections: int):
        super().__init__()
        self.detector = detector
        self.nms_thresh = float(nms_thresh)
        self.max_detections = int(max_detections)

    def forward(self, x: Tensor, score_thresh: float) -> list[Tensor]:
        """``x: Tensor[T, B, C, H, W]`` -> ``T·B`` tensors ``[n, 6]`` (t-major), see the module doc."""
        return self.detector.detect(x, score_thresh, self.nms_thresh, self.max_detections)

    @torch.jit.export
    def reset_all(self) -> None:
        """Forget the recurrent state of every column."""
        self.detector.reset_all()

    @torch.jit.export
    def reset(self, mask_keep_memory: Tensor) -> None:
        """Zero the recurrent state of the columns where ``mask_keep_memory [B]`` is 0."""
        self.detector.reset(mask_keep_memory)

    @torch.jit.export
    def get_state(self) -> list[Tensor]:
        """The recurrent state as a flat list of ``[B, ...]`` tensors (``[]`` before the first call)."""
        return self.detector.get_state()

    @torch.jit.export
    def set_state(self, state: list[Tensor]) -> None:
        """Replace the recurrent state (a list as returned by :meth:`get_state`)."""
        self.detector.set_state(state)


def check_contract(detector: nn.Module, what: str) -> None:
    """Raise ``TypeError`` naming the detector contract's methods that ``detector`` lacks."""
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(detector, m, None))]
    if missing:
        raise TypeError(f"{what}: {type(detector).__name__} lacks {missing} of the detector contract "
                        "(evdet.models.RecurrentDetector)")


def script_detector(detector: nn.Module, nms_thresh: float, max_detections: int) -> torch.jit.ScriptModule:
    """Script ``detector`` wrapped in :class:`ExportedDetector`.

    Raises:
        TypeError: the detector lacks part of the contract or cannot be scripted (the TorchScript error
            is chained).
    """
    check_contract(detector, "export")
    try:
        with _torchscript_ok():
            return torch.jit.script(ExportedDetector(detector, nms_thresh, max_detections))
    except Exception as exc:  # TorchScript raises several error types
        raise TypeError(f"export: cannot script {type(detector).__name__}: "
                        f"{type(exc).__name__}: {exc}") from exc


def _flatten_frames(nested: Sequence[Sequence[Tensor]]) -> list[Tensor]:
    """``T × B`` nested list -> flat t-major list (frame ``t·B + b``)."""
    return [frame for row in nested for frame in row]


def _eager_detect(detector: nn.Module, x: Tensor, score_thresh: float, nms_thresh: float,
                  max_detections: int) -> list[Tensor]:
    """The checkpoint's own outputs: ``get_boxes`` flattened t-major."""
    return _flatten_frames(detector.get_boxes(x, score_thresh=score_thresh, nms_thresh=nms_thresh,
                                              max_detections=max_detections))


def _max_diff(a: list[Tensor], b: list[Tensor], what: str) -> float:
    """Largest absolute difference between two lists of per-frame tensors.

    Raises:
        RuntimeError: different numbers of frames or of boxes in a frame (names the frame).
    """
    if len(a) != len(b):
        raise RuntimeError(f"export check failed ({what}): {len(a)} vs {len(b)} frames")
    worst = 0.0
    for i, (u, v) in enumerate(zip(a, b, strict=True)):
        if u.shape != v.shape:
            raise RuntimeError(f"export check failed ({what}): frame {i} has shape {tuple(u.shape)} vs "
                               f"{tuple(v.shape)}")
        if u.numel():
            worst = max(worst, float((u.float() - v.float()).abs().max()))
    return worst


@torch.no_grad()
def check_export(scripted_path: str | os.PathLike, detector: nn.Module, x: Tensor, score_thresh: float,
                 nms_thresh: float, max_detections: int, atol: float = 1e-5,
                 optimized: bool = False) -> dict[str, Any]:
    """Compare a saved TorchScript export with its eager detector; returns the measured differences.

    Checks, each raising ``RuntimeError`` naming what failed:
      1. over two consecutive chunks ``x`` (recurrent state carried), the loaded module's detections
         equal the eager ``get_boxes`` ones to ``atol``: the first chunk at score threshold 0 (many
         boxes, so the check is not vacuous for an untrained model), the second at ``score_thresh``;
      2. after ``reset_all()`` the first output equals that of a freshly loaded file.

    Args:
        optimized: run the loaded module with TorchScript's optimising (profiling) executor, as a
            deployment does by default. Its first two calls per loaded module compile the graph, which
            takes seconds even for small models; ``False`` checks the same graph interpreted without
            those passes (much faster; on CPU these passes do not change the arithmetic).
    """
    detector.eval()
    diffs: dict[str, float] = {}
    with torch.jit.optimized_execution(optimized):
        loaded = _jit_load(scripted_path)
        loaded.reset_all()
        detector.reset_all()
        threshs = (0.0, float(score_thresh))
        num_boxes = 0
        for chunk, thresh in enumerate(threshs):
            ref = _eager_detect(detector, x, thresh, nms_thresh, max_detections)
            got = loaded(x, thresh)
            d = _max_diff(ref, got, f"scripted vs eager, chunk {chunk}, score_thresh={thresh:g}")
            if d > atol:
                raise RuntimeError(f"export check failed: scripted vs eager differ by {d:.3g} > {atol} "
                                   f"(chunk {chunk}, score_thresh={thresh:g})")
            diffs[f"chunk {chunk}, score_thresh={thresh:g}"] = d
            num_boxes += sum(int(f.shape[0]) for f in ref)
        loaded.reset_all()
        after_reset = loaded(x, 0.0)
        fresh = _jit_load(scripted_path)(x, 0.0)
        d = _max_diff(after_reset, fresh, "reset_all vs freshly loaded")
        if d > atol:
            raise RuntimeError(f"export check failed: after reset_all the output differs from a freshly "
                               f"loaded model by {d:.3g} > {atol}")
        diffs["reset_all vs freshly loaded"] = d
    detector.reset_all()
    return {"atol": atol, "max_abs_diff": max(diffs.values()), "diffs": diffs,
            "optimized_executor": optimized, "input_shape": list(x.shape), "boxes_compared": num_boxes}


def export_torchscript(detector: nn.Module, out_dir: str | os.PathLike, info: Any,
                       example_input: Tensor | None = None, name: str = "model",
                       atol: float = 1e-5, check_optimized: bool = False, overwrite: bool = False,
                       inputs: Sequence[str | os.PathLike] = ()) -> tuple[Path, Path]:
    """Script ``detector`` with its decoding, check it, and write ``<name>.pt`` + ``<name>.json``.

    Args:
        detector: an evdet detector (:class:`evdet.models.RecurrentDetector`), e.g. from
            ``evdet.inference.load_detector``; moved to CPU and eval mode; its state is reset after.
        out_dir: output folder (created).
        info: a ``CheckpointInfo`` (classes, label map, representation, delta_t, sizes, thresholds).
        example_input: ``Tensor[T, B, C, H, W]`` for the checks (network size); default
            :func:`example_input_for` (T = ``info.num_tbins``, B = 2, sparse random values).
        name: file stem.
        atol: tolerance of the built-in checks.
        check_optimized: run the checks under TorchScript's optimising executor too (slower: seconds of
            graph compilation per loaded module); see :func:`check_export`.
        overwrite: replace an earlier evdet export of the same name (never a file evdet did not write).
        inputs: files the caller read (e.g. the checkpoint), which the outputs must not overlap.

    Returns:
        ``(pt_path, json_path)``. Both are written to temporary names and renamed only once the
        checks pass; nothing is left behind on failure.

    Raises:
        TypeError: the detector lacks part of the contract or cannot be scripted. ValueError:
        ``example_input`` is not 5-D or its channels differ from ``info.in_channels``; a bad ``name`` or
        output path (:func:`evdet.export.metadata.export_targets`). RuntimeError: a check failed (says
        which, by how much).
    """
    atol = check_atol(atol, "export")
    x = example_input_for(info) if example_input is None else example_input.detach().cpu().float()
    if x.dim() != 5 or int(x.shape[2]) != int(info.in_channels) or int(x.shape[0]) < 1:
        raise ValueError(f"export: example_input must be [T >= 1, B, C={info.in_channels}, H, W], "
                         f"got shape {tuple(x.shape)}")
    check_contract(detector, "export")
    try:  # torch.jit.save takes a str path and refuses lone surrogates (a name that is not UTF-8)
        os.fsdecode(Path(out_dir).absolute() / f"{name}.pt").encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"export: {os.fsdecode(out_dir)!r} is not valid UTF-8: TorchScript cannot save "
                         "there; choose another folder or --name") from None
    pt_path, json_path = export_targets(out_dir, name, ".pt", overwrite=overwrite, inputs=inputs)
    detector = detector.cpu().eval()
    detector.reset_all()
    scripted = script_detector(detector, info.nms_thresh, info.max_detections)
    scripted.reset_all()
    pt_target, json_target = AtomicTarget(pt_path), AtomicTarget(json_path)
    try:
        with _torchscript_ok():
            torch.jit.save(scripted, str(pt_target.tmp))
        checks = check_export(pt_target.tmp, detector, x, info.score_thresh, info.nms_thresh,
                              info.max_detections, atol, optimized=check_optimized)
        meta = export_metadata(
            info, EXPORT_FORMAT, pt_path.name, checks,
            forward="forward(x: Tensor[T, B, C, H, W] float32, score_thresh: float) -> List[Tensor[n, 6]]",
            outputs="T*B frames in t-major order (index t*B + b); rows x1, y1, x2, y2 (network pixels), "
                    "score, class_idx (index into classes); multiply x by box_scale.x and y by "
                    "box_scale.y for sensor pixels",
            methods=["reset_all()", "reset(mask_keep_memory: Tensor[B])", "get_state() -> List[Tensor]",
                     "set_state(state: List[Tensor])"])
        json_target.tmp.write_text(json.dumps(meta, indent=2) + "\n")
        pt_target.commit()
        json_target.commit()
        for done in (pt_path, json_path):
            record_output(done, "evdet-export")
    finally:
        pt_target.abort()
        json_target.abort()
    return pt_path, json_path


def load_exported(pt_path: str | os.PathLike) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load a TorchScript export: ``(module, metadata)``; the JSON is ``<stem>.json`` next to the ``.pt``.

    Raises:
        FileNotFoundError: the ``.pt`` or its JSON is missing. ValueError: the JSON is not an evdet
            TorchScript export.
    """
    meta = read_export_json(pt_path, EXPORT_FORMAT)
    module = _jit_load(pt_path)
    module.eval()
    return module, meta
