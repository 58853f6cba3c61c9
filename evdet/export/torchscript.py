"""TorchScript export of a detector with its box decoding (SPEC 6).

The exported file is a scripted :class:`ExportedDetector`:

- ``forward(x: Tensor[T, B, C, H, W], score_thresh: float) -> List[Tensor]``: ``T·B`` per-frame
  detections in t-major order (frame ``t·B + b``), each ``Tensor[n, 6]`` = (x1, y1, x2, y2, score,
  class_idx), xyxy in network pixels, scores descending; NMS threshold and the maximum number of
  detections are fixed at export (stored in the JSON). The recurrent state carries over between calls.
- ``reset_all()``: forget the recurrent state (call before a new recording);
  ``reset(mask_keep_memory: Tensor[B])`` too when the detector's own ``reset`` is scriptable.

Next to it a JSON file records the preprocessing actually used (representation name, ``delta_t`` in
µs, parameters with defaults filled in, sensor and network sizes), the classes and label map, and the
thresholds. :func:`export_torchscript` checks the saved file before it is put in place: scripted and
eager outputs agree to ``atol`` (default 1e-5) over two consecutive chunks, and after ``reset_all`` the
first output equals that of a freshly loaded file.
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

import evdet
from evdet.io.atomic import AtomicTarget

EXPORT_FORMAT = "evdet-torchscript"
EXPORT_VERSION = 1


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
    """Wrapper fixing the decoding settings of a detector exposing the scriptable ``detect`` method.

    Args:
        detector: a detector with ``@torch.jit.export detect(x, score_thresh, nms_thresh, max_detections)``
            returning ``List[Tensor[n, 6]]`` (T·B frames, t-major) and ``reset_all()``.
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


class ExportedDetectorWithReset(ExportedDetector):
    """:class:`ExportedDetector` plus ``reset(mask_keep_memory: Tensor[B])`` (zero columns where 0)."""

    @torch.jit.export
    def reset(self, mask_keep_memory: Tensor) -> None:
        """Zero the recurrent state of the columns where ``mask_keep_memory`` is 0."""
        self.detector.reset(mask_keep_memory)


def script_detector(detector: nn.Module, nms_thresh: float, max_detections: int) -> torch.jit.ScriptModule:
    """Script ``detector`` wrapped in :class:`ExportedDetector` (:class:`ExportedDetectorWithReset` when the
    detector's ``reset`` is a ``@torch.jit.export`` method).

    Raises:
        TypeError: the detector has no ``detect`` method or cannot be scripted (the TorchScript error
            is chained).
    """
    if not hasattr(detector, "detect") or not hasattr(detector, "reset_all"):
        raise TypeError(f"export: {type(detector).__name__} has no detect()/reset_all(); TorchScript export "
                        "needs a detector with a scriptable detect(x, score_thresh, nms_thresh, max_det)")
    # reset(mask) is part of the export only when the detector itself exports it for TorchScript
    # (a failed scripting attempt leaves the class half-compiled, so there is no try-and-fall-back).
    modifier = getattr(getattr(type(detector), "reset", None), "_torchscript_modifier", None)
    exports_reset = str(modifier).startswith("export")  # torch's FunctionModifiers.EXPORT text
    cls = ExportedDetectorWithReset if exports_reset else ExportedDetector
    try:
        with _torchscript_ok():
            return torch.jit.script(cls(detector, nms_thresh, max_detections))
    except Exception as exc:  # TorchScript raises several error types
        raise TypeError(f"export: cannot script {type(detector).__name__}: "
                        f"{type(exc).__name__}: {exc}") from exc


def preprocessing_json(info: Any) -> dict[str, Any]:
    """The preprocessing a model expects, as plain JSON types: representation name, its parameters as
    actually used (the registry's defaults filled in where the registry knows the name), ``delta_t``
    (µs, one bin), ``num_tbins``, channels, sensor and network sizes and the box scale network ->
    sensor pixels."""
    params = dict(info.representation_params)
    try:
        from evdet.preprocessing import get_representation
        params = get_representation(info.representation).resolve_params(params)
    except (ImportError, ValueError, TypeError):  # a custom representation unknown to this process
        pass
    sh, sw = (int(v) for v in info.sensor_size)
    nh, nw = (int(v) for v in info.network_size)
    return {
        "representation": str(info.representation),
        "params": _plain(params),
        "delta_t": int(info.delta_t),
        "num_tbins": int(info.num_tbins),
        "in_channels": int(info.in_channels),
        "sensor_size": {"height": sh, "width": sw},
        "network_size": {"height": nh, "width": nw},
        "resize": "none" if (sh, sw) == (nh, nw) else
                  "power-of-two downsampling when the ratio is 2^d, else area resize of the tensors",
        "box_scale": {"x": sw / nw, "y": sh / nh},
    }


def _plain(value: Any) -> Any:
    """Recursively convert tuples/numpy scalars to JSON types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _flatten_frames(nested: Sequence[Sequence[Tensor]]) -> list[Tensor]:
    """``T × B`` nested list -> flat t-major list (frame ``t·B + b``)."""
    return [frame for row in nested for frame in row]


def _eager_detect(detector: nn.Module, x: Tensor, score_thresh: float, nms_thresh: float,
                  max_detections: int) -> list[Tensor]:
    """The checkpoint's own outputs: ``get_boxes`` flattened t-major (``detect`` when absent)."""
    if hasattr(detector, "get_boxes"):
        return _flatten_frames(detector.get_boxes(x, score_thresh=score_thresh, nms_thresh=nms_thresh,
                                                  max_detections=max_detections))
    return detector.detect(x, score_thresh, nms_thresh, max_detections)


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


def example_input_for(info: Any, num_tbins: int | None = None, batch_size: int = 2, seed: int = 0) -> Tensor:
    """A sparse random input ``Tensor[T, B, C, H, W]`` at the network size (values in [0, 1), ~10 % of
    pixels active), used for the built-in checks when no example is given."""
    gen = torch.Generator().manual_seed(seed)
    t = int(info.num_tbins if num_tbins is None else num_tbins)
    shape = (t, batch_size, int(info.in_channels), int(info.network_size[0]), int(info.network_size[1]))
    return torch.rand(shape, generator=gen) * (torch.rand(shape, generator=gen) < 0.1)


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
                       atol: float = 1e-5, check_optimized: bool = False) -> tuple[Path, Path]:
    """Script ``detector`` with its decoding, check it, and write ``<name>.pt`` + ``<name>.json``.

    Args:
        detector: an evdet detector (``detect``, ``reset_all``, ``get_boxes``), e.g. from
            ``evdet.training.load_detector``; moved to CPU and eval mode; its state is reset after.
        out_dir: output folder (created).
        info: a ``CheckpointInfo`` (classes, label map, representation, delta_t, sizes, thresholds).
        example_input: ``Tensor[T, B, C, H, W]`` for the checks (network size); default
            :func:`example_input_for` (T = ``info.num_tbins``, B = 2, sparse random values).
        name: file stem.
        atol: tolerance of the built-in checks.
        check_optimized: run the checks under TorchScript's optimising executor too (slower: seconds of
            graph compilation per loaded module); see :func:`check_export`.

    Returns:
        ``(pt_path, json_path)``. Both are written to temporary names and renamed only once the
        checks pass; nothing is left behind on failure.

    Raises:
        TypeError: the detector cannot be scripted. ValueError: ``example_input`` is not 5-D or its
        channels differ from ``info.in_channels``. RuntimeError: a check failed (says which, by how much).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x = example_input_for(info) if example_input is None else example_input.detach().cpu().float()
    if x.dim() != 5 or int(x.shape[2]) != int(info.in_channels):
        raise ValueError(f"export: example_input must be [T, B, C={info.in_channels}, H, W], "
                         f"got shape {tuple(x.shape)}")
    if not hasattr(detector, "detect") or not hasattr(detector, "reset_all"):
        raise TypeError(f"export: {type(detector).__name__} has no detect()/reset_all(); TorchScript export "
                        "needs a detector with a scriptable detect(x, score_thresh, nms_thresh, max_det)")
    detector = detector.cpu().eval()
    detector.reset_all()
    scripted = script_detector(detector, info.nms_thresh, info.max_detections)
    scripted.reset_all()
    pt_path, json_path = out_dir / f"{name}.pt", out_dir / f"{name}.json"
    pt_target, json_target = AtomicTarget(pt_path), AtomicTarget(json_path)
    tmp_pt, tmp_json = pt_target.tmp, json_target.tmp
    try:
        with _torchscript_ok():
            torch.jit.save(scripted, str(tmp_pt))
        checks = check_export(tmp_pt, detector, x, info.score_thresh, info.nms_thresh, info.max_detections,
                              atol, optimized=check_optimized)
        meta = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "model_file": pt_path.name,
            "forward": "forward(x: Tensor[T, B, C, H, W] float32, score_thresh: float) -> List[Tensor[n, 6]]",
            "outputs": "T*B frames in t-major order (index t*B + b); rows x1, y1, x2, y2 (network pixels), "
                       "score, class_idx (index into classes); multiply x by box_scale.x and y by "
                       "box_scale.y for sensor pixels",
            "methods": ["reset_all()"] + (["reset(mask_keep_memory: Tensor[B])"]
                                          if hasattr(scripted, "reset") else []),
            "preprocessing": preprocessing_json(info),
            "classes": list(info.classes),
            "label_map": {str(k): v for k, v in sorted(info.label_map.items())},
            "score_thresh": float(info.score_thresh),
            "nms_thresh": float(info.nms_thresh),
            "max_detections": int(info.max_detections),
            "model_config": _plain(dict(info.model_config)),
            "checks": checks,
            "torch_version": torch.__version__,
            "evdet_version": evdet.__version__,
        }
        tmp_json.write_text(json.dumps(meta, indent=2) + "\n")
        pt_target.commit()
        json_target.commit()
    finally:
        pt_target.abort()
        json_target.abort()
    return pt_path, json_path


def load_exported(pt_path: str | os.PathLike) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load an export: ``(module, metadata)``; the JSON is ``<stem>.json`` next to the ``.pt``.

    Raises:
        FileNotFoundError: the ``.pt`` or its JSON is missing. ValueError: the JSON is not an evdet export.
    """
    pt_path = Path(pt_path)
    json_path = pt_path.with_suffix(".json")
    for p in (pt_path, json_path):
        if not p.is_file():
            raise FileNotFoundError(f"exported model file not found: {p}")
    meta = json.loads(json_path.read_text())
    if meta.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{json_path}: format is {meta.get('format')!r}, expected {EXPORT_FORMAT!r}")
    module = _jit_load(pt_path)
    module.eval()
    return module, meta
