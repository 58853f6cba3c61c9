"""ONNX export of a detector with explicit recurrent state (``evdet-export --format onnx``).

The ONNX graph is the detector's ``forward`` with its state made explicit:

- inputs ``x`` ``Tensor[T, B, C, H, W]`` float32, then ``state_in.0``, ``state_in.1``, ... (the tensors of
  :meth:`evdet.models.RecurrentDetector.get_state`, each ``[B, ...]``);
- outputs the eager ``forward``'s outputs in the same order and layout (the head's raw outputs for the
  ``T·B`` frames, t-major), then ``state_out.0``, ``state_out.1``, ... to feed back as ``state_in`` at the
  next call.

``B`` is dynamic; ``T``, ``H`` and ``W`` are fixed at export (the recurrence over the ``T`` bins is
unrolled; export with ``num_tbins=1`` to run bin by bin). The state of a new stream is zeros; resetting
column ``b`` means zeroing ``state_in.i[b]`` of every state tensor. Box decoding (top-k, NMS) is not in
the graph: the JSON beside the model describes every input and output, the decoding parameters and
constants (e.g. anchors) and the preprocessing. :func:`export_onnx` checks, before writing, that ONNX
Runtime matches the eager detector to ``atol`` over two chunks with a column reset between them and at
another batch size.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from evdet.export.metadata import (
    check_atol,
    example_input_for,
    export_metadata,
    export_targets,
    plain,
    read_export_json,
)
from evdet.export.torchscript import check_contract
from evdet.io.atomic import AtomicTarget
from evdet.io.output_paths import record_output

ONNX_FORMAT = "evdet-onnx"
DEFAULT_OPSET = 17

__all__ = ["ONNX_FORMAT", "StatefulForward", "check_onnx", "export_onnx", "initial_state", "load_onnx"]


class StatefulForward(nn.Module):
    """The detector's ``forward`` with explicit state: ``forward(x, *state) -> (*outputs, *new_state)``."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, x: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        self.detector.set_state(list(state))
        outputs = self.detector(x)
        return (*outputs, *self.detector.get_state())


@torch.no_grad()
def initial_state(detector: nn.Module, x: Tensor) -> list[Tensor]:
    """The zero state a fresh stream starts from, for inputs shaped like ``x`` ``[T, B, C, H, W]``
    (shapes read from one forward of the first bin; the detector's state is forgotten after)."""
    detector.reset_all()
    detector(x[:1])
    state = [torch.zeros_like(s) for s in detector.get_state()]
    detector.reset_all()
    return state


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:  # an optional dependency: the "export" extra
        raise ImportError("ONNX export needs onnx and onnxruntime: pip install 'evdet[export]'") from exc
    return onnxruntime


@contextlib.contextmanager
def _quiet_tracing():
    """The tracer warns about every shape check it turns into a constant (the checks are on fixed
    sizes); the legacy exporter warns that it is deprecated."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        yield


def _run_eager(detector: nn.Module, x: Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        outputs = detector(x)
        return [t.numpy() for t in (*outputs, *detector.get_state())]


def _max_abs_diff(ref: list[np.ndarray], got: list[np.ndarray], names: list[str], what: str) -> float:
    worst = 0.0
    for r, g, name in zip(ref, got, names, strict=True):
        if r.shape != g.shape:
            raise RuntimeError(f"ONNX check failed ({what}): {name} has shape {g.shape}, eager {r.shape}")
        if r.size:
            worst = max(worst, float(np.abs(r.astype(np.float64) - g).max()))
    return worst


@torch.no_grad()
def check_onnx(onnx_path: str | os.PathLike, detector: nn.Module, x: Tensor, atol: float = 1e-4
               ) -> dict[str, Any]:
    """Compare an ONNX export with its eager detector under ONNX Runtime; returns the measured differences.

    Three runs, each compared on every output and state tensor: chunk 0 from the zero state; chunk 1
    (another input) after resetting column 0 (eager ``reset``, ONNX: that column's slice of every state
    tensor zeroed); chunk 0 again at batch size B + 1 from the zero state (dynamic batch).

    Raises:
        RuntimeError: a difference above ``atol`` or a shape mismatch (says which run and tensor).
    """
    ort = _onnxruntime()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    in_names = [i.name for i in session.get_inputs()]
    out_names = [o.name for o in session.get_outputs()]
    detector.eval()
    b = int(x.shape[1])
    x2 = torch.flip(x, dims=[-1]).contiguous()  # a different input with the same statistics
    wide = torch.cat([x, x[:, :1]], dim=1)
    diffs: dict[str, float] = {}

    def run(inputs: Tensor, state: list[np.ndarray]) -> list[np.ndarray]:
        return session.run(None, dict(zip(in_names, [inputs.numpy(), *state], strict=True)))

    state0 = [s.numpy() for s in initial_state(detector, x)]
    detector.reset_all()
    ref = _run_eager(detector, x)
    got = run(x, state0)
    diffs["chunk 0"] = _max_abs_diff(ref, got, out_names, "chunk 0")
    mask = torch.ones(b)
    mask[0] = 0.0
    detector.reset(mask)
    state1 = [s.copy() for s in got[len(got) - len(state0):]]
    for s in state1:
        s[0] = 0.0
    ref = _run_eager(detector, x2)
    got = run(x2, state1)
    diffs["chunk 1 after resetting column 0"] = _max_abs_diff(ref, got, out_names, "chunk 1")
    detector.reset_all()
    ref = _run_eager(detector, wide)
    got = run(wide, [s.numpy() for s in initial_state(detector, wide)])
    diffs[f"batch size {b + 1}"] = _max_abs_diff(ref, got, out_names, f"batch size {b + 1}")
    detector.reset_all()
    worst = max(diffs.values())
    if worst > atol:
        bad = max(diffs, key=diffs.get)
        raise RuntimeError(f"ONNX check failed: ONNX Runtime and eager differ by {worst:.3g} > {atol} "
                           f"({bad})")
    return {"atol": atol, "max_abs_diff": worst, "diffs": diffs, "input_shape": list(x.shape),
            "onnxruntime_version": ort.__version__}


def export_onnx(detector: nn.Module, out_dir: str | os.PathLike, info: Any,
                example_input: Tensor | None = None, name: str = "model", num_tbins: int | None = None,
                opset: int = DEFAULT_OPSET, atol: float = 1e-4, overwrite: bool = False,
                inputs: Sequence[str | os.PathLike] = ()) -> tuple[Path, Path]:
    """Export ``detector``'s forward with explicit state to ``<name>.onnx`` + ``<name>.json``, checked.

    Args:
        detector: an evdet detector (:class:`evdet.models.RecurrentDetector`), e.g. from
            ``evdet.inference.load_detector``; moved to CPU and eval mode; its state is reset after.
        out_dir: output folder (created).
        info: the model's ``CheckpointInfo`` (preprocessing, classes, sizes, thresholds).
        example_input: ``Tensor[T, B, C, H, W]`` traced and checked (B >= 2); default
            :func:`evdet.export.metadata.example_input_for` with ``num_tbins`` bins and B = 2.
        num_tbins: T of the graph when no example is given (default ``info.num_tbins``).
        opset: ONNX opset version.
        atol: tolerance of the ONNX Runtime vs eager check.
        overwrite, inputs: output-path policy, as for :func:`evdet.export.export_torchscript`.

    Returns:
        ``(onnx_path, json_path)``, both written to temporary names and renamed only once the check
        passes; nothing is left behind on failure.

    Raises:
        ImportError: onnx / onnxruntime missing. TypeError: the detector lacks part of the contract.
        ValueError: a bad example input. RuntimeError: the check failed (says where, by how much).
    """
    _onnxruntime()
    check_contract(detector, "ONNX export")
    atol = check_atol(atol, "ONNX export")
    x = example_input_for(info, num_tbins) if example_input is None else example_input.detach().cpu().float()
    if x.dim() != 5 or int(x.shape[2]) != int(info.in_channels) or int(x.shape[1]) < 2 or int(x.shape[0]) < 1:
        raise ValueError(f"ONNX export: example_input must be [T >= 1, B >= 2, C={info.in_channels}, H, W], "
                         f"got shape {tuple(x.shape)}")
    onnx_path, json_path = export_targets(out_dir, name, ".onnx", overwrite=overwrite, inputs=inputs)
    detector = detector.cpu().eval()
    state = initial_state(detector, x)
    wrapper = StatefulForward(detector).eval()
    with torch.no_grad():
        n_out = len(detector(x))
    detector.reset_all()
    descriptions = list(detector.head.output_descriptions())
    if len(descriptions) != n_out:
        raise TypeError(f"ONNX export: {type(detector.head).__name__} describes {len(descriptions)} outputs "
                        f"but forward returns {n_out}")
    in_names = ["x"] + [f"state_in.{i}" for i in range(len(state))]
    out_names = [d[0] for d in descriptions] + [f"state_out.{i}" for i in range(len(state))]
    dynamic = {"x": {1: "B"}}
    dynamic.update({n: {0: "B"} for n in in_names[1:] + out_names[n_out:]})
    dynamic.update({n: {0: "T*B"} for n in out_names[:n_out]})
    onnx_target, json_target = AtomicTarget(onnx_path, keep_suffix=True), AtomicTarget(json_path)
    try:
        with _quiet_tracing(), torch.no_grad():
            torch.onnx.export(wrapper, (x, *state), str(onnx_target.tmp), input_names=in_names,
                              output_names=out_names, dynamic_axes=dynamic, opset_version=opset,
                              dynamo=False)
        detector.reset_all()
        checks = check_onnx(onnx_target.tmp, detector, x, atol)
        with torch.no_grad():
            feats = [f.flatten(0, 1) for f in detector.backbone(x[:1, :1])]
        detector.reset_all()
        h, w = int(x.shape[3]), int(x.shape[4])
        t = int(x.shape[0])
        inputs = [{"name": "x", "shape": [t, "B", int(x.shape[2]), h, w], "dtype": "float32",
                   "meaning": "T bins of B streams at the network size, preprocessed as 'preprocessing' "
                              "says"}]
        inputs += [{"name": n, "shape": ["B", *[int(v) for v in s.shape[1:]]], "dtype": "float32",
                    "meaning": f"recurrent state tensor {i} (zeros for a new stream)"}
                   for i, (n, s) in enumerate(zip(in_names[1:], state, strict=True))]
        outputs = [{"name": n, "meaning": m} for n, m in descriptions]
        outputs += [{"name": n, "shape": ["B", *[int(v) for v in s.shape[1:]]], "dtype": "float32",
                     "meaning": f"recurrent state tensor {i} after the chunk: feed it as state_in.{i}"}
                    for i, (n, s) in enumerate(zip(out_names[n_out:], state, strict=True))]
        meta = export_metadata(
            info, ONNX_FORMAT, onnx_path.name, checks, opset=int(opset), inputs=inputs, outputs=outputs,
            frames="output frames are t-major: frame t*B + b is bin t of stream b",
            reset="a new stream starts from zero state; to reset column b, zero state_in.i[b] for every i",
            dynamic_axes="B is dynamic; T, H and W are fixed (the recurrence over T bins is unrolled)",
            decoding={"head": str(info.model_config.get("head", "")),
                      **plain(detector.head.decoding_constants(feats, h, w))})
        json_target.tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        onnx_target.commit()
        json_target.commit()
        for done in (onnx_path, json_path):
            record_output(done, "evdet-export")
    finally:
        onnx_target.abort()
        json_target.abort()
        detector.reset_all()
    return onnx_path, json_path


def load_onnx(onnx_path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Load an ONNX export: ``(onnxruntime.InferenceSession, metadata)``.

    Raises:
        FileNotFoundError: the ``.onnx`` or its JSON is missing. ValueError: the JSON is not an evdet ONNX
            export. ImportError: onnxruntime missing.
    """
    meta = read_export_json(onnx_path, ONNX_FORMAT)
    ort = _onnxruntime()
    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]), meta
