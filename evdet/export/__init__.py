"""TorchScript export of detectors with box decoding (SPEC 6): :func:`export_torchscript`."""

from evdet.export.torchscript import ExportedDetector, export_torchscript, load_exported, script_detector

__all__ = ["ExportedDetector", "export_torchscript", "load_exported", "script_detector"]
