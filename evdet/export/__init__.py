"""Exports of trained detectors: TorchScript with box decoding (:func:`export_torchscript`, the default)
and ONNX with explicit recurrent state (:func:`export_onnx`), each with a JSON of the preprocessing,
classes and decoding (:mod:`evdet.export.metadata`)."""

from evdet.export.onnx import ONNX_FORMAT, StatefulForward, export_onnx, load_onnx
from evdet.export.torchscript import (
    EXPORT_FORMAT,
    ExportedDetector,
    export_torchscript,
    load_exported,
    script_detector,
)

#: ``--format`` name → export function ``(detector, out_dir, info, name=..., atol=...)``
EXPORTERS = {"torchscript": export_torchscript, "onnx": export_onnx}

__all__ = ["EXPORTERS", "EXPORT_FORMAT", "ONNX_FORMAT", "ExportedDetector", "StatefulForward", "export_onnx",
           "export_torchscript", "load_exported", "load_onnx", "script_detector"]
