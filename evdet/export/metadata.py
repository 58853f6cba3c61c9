"""What every export writes beside the model: a JSON of the preprocessing, classes, thresholds and checks.

Shared by the TorchScript (:mod:`evdet.export.torchscript`) and ONNX (:mod:`evdet.export.onnx`) exports;
the JSON is ``<name>.json`` beside ``<name>.pt`` / ``<name>.onnx`` and its ``format`` field says which.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import evdet
from evdet.io.output_paths import check_output, output_folder

EXPORT_VERSION = 2

__all__ = ["EXPORT_VERSION", "check_atol", "example_input_for", "export_metadata", "export_targets", "plain",
           "preprocessing_json", "read_export_json"]


def export_targets(out_dir: str | os.PathLike, name: str, model_suffix: str, *, overwrite: bool = False,
                   inputs: Sequence[str | os.PathLike] = ()) -> tuple[Path, Path]:
    """``(out_dir/<name><model_suffix>, out_dir/<name>.json)``, checked by the output-path policy
    (:mod:`evdet.io.output_paths`) before an export writes them: an existing export is replaced only
    with ``overwrite`` and only when evdet wrote it. The exporter records both files
    (:func:`evdet.io.output_paths.record_output`) once they are in place.

    Raises:
        ValueError: ``name`` is empty, hidden or holds a path separator. OutputPathError (a ValueError):
            ``out_dir`` is a file or overlaps ``inputs``, or the files exist (see above).
    """
    if not isinstance(name, str) or not name or name.startswith(".") or "/" in name or os.sep in name:
        raise ValueError(f"export name must be a plain file stem (not empty, no '/', not starting with "
                         f"'.'), got {name!r}")
    folder = output_folder(out_dir, inputs=inputs)
    model_path, json_path = folder / f"{name}{model_suffix}", folder / f"{name}.json"
    for path in (model_path, json_path):
        check_output(path, inputs=inputs, overwrite=overwrite, tool="evdet-export")
    return model_path, json_path


def plain(value: Any) -> Any:
    """Recursively convert tuples and numpy/torch scalars to JSON types."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


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
        "params": plain(params),
        "delta_t": int(info.delta_t),
        "num_tbins": int(info.num_tbins),
        "in_channels": int(info.in_channels),
        "sensor_size": {"height": sh, "width": sw},
        "network_size": {"height": nh, "width": nw},
        "resize": "none" if (sh, sw) == (nh, nw) else
                  "area resize of the tensors computed at the stored size (the sensor size, or sensor >> d "
                  "for HDF5 files converted with a downsampling factor d) to the network size",
        "box_scale": {"x": sw / nw, "y": sh / nh},
    }


def check_atol(atol: float, what: str) -> float:
    """``atol`` as a float, for the built-in checks of export ``what``.

    Raises:
        ValueError: ``atol`` is negative, NaN or infinite (a check against NaN or inf can never fail, so a
            broken export would be written as checked).
    """
    value = float(atol)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{what}: atol must be a finite number >= 0, got {atol!r}")
    return value


def example_input_for(info: Any, num_tbins: int | None = None, batch_size: int = 2, seed: int = 0) -> Tensor:
    """A sparse random input ``Tensor[T, B, C, H, W]`` at the network size (values in [0, 1), ~10 % of
    pixels active), used for the built-in checks when no example is given.

    Raises:
        ValueError: ``num_tbins`` is below 1.
    """
    gen = torch.Generator().manual_seed(seed)
    t = int(info.num_tbins if num_tbins is None else num_tbins)
    if t < 1:
        raise ValueError(f"export: num_tbins must be >= 1, got {num_tbins!r}")
    shape = (t, batch_size, int(info.in_channels), int(info.network_size[0]), int(info.network_size[1]))
    return torch.rand(shape, generator=gen) * (torch.rand(shape, generator=gen) < 0.1)


def export_metadata(info: Any, fmt: str, model_file: str, checks: dict[str, Any],
                    **fields: Any) -> dict[str, Any]:
    """The JSON content of an export: format, version, model file, the format's own ``fields``, then the
    preprocessing, classes, label map, decoding thresholds, model config, checks and versions."""
    meta = {"format": fmt, "version": EXPORT_VERSION, "model_file": model_file}
    meta.update(fields)
    meta.update({
        "preprocessing": preprocessing_json(info),
        "classes": list(info.classes),
        "label_map": {str(k): v for k, v in sorted(info.label_map.items())},
        "score_thresh": float(info.score_thresh),
        "nms_thresh": float(info.nms_thresh),
        "max_detections": int(info.max_detections),
        "model_config": plain(dict(info.model_config)),
        "checks": checks,
        "torch_version": torch.__version__,
        "evdet_version": evdet.__version__,
    })
    return meta


def read_export_json(model_path: str | os.PathLike, fmt: str) -> dict[str, Any]:
    """The metadata beside an exported model (``<stem>.json``).

    Raises:
        FileNotFoundError: the model or its JSON is missing. ValueError: the JSON is not an evdet export
            of format ``fmt``.
    """
    model_path = Path(model_path)
    json_path = model_path.with_suffix(".json")
    for p in (model_path, json_path):
        if not p.is_file():
            raise FileNotFoundError(f"exported model file not found: {p}")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{json_path}: not an evdet export description ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{json_path}: format is {got!r}, expected {fmt!r}")
    return meta
