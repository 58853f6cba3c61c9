"""Synthetic labelled event-camera recordings (scene renderer + ESIM/v2e-style sensor model).

``simulate_recording(config, seed) -> (events, boxes)`` makes one recording;
``make_synthetic_dataset(out_dir, preset="tiny", ...)`` writes a whole dataset in the on-disk formats of
the public automotive datasets (SPEC 2). See ``docs/synthetic.md``.
"""

from evdet._lazy import lazy_exports

# public name -> submodule defining it; imported on first use (evdet._lazy), so that light
# submodules and `--help` of the commands load no heavy dependency
_EXPORTS = {
    "DatasetPreset": "config",
    "PRESETS": "config",
    "SYNTHETIC_LABEL_MAP": "config",
    "SceneConfig": "config",
    "SensorConfig": "config",
    "SimulationConfig": "config",
    "get_preset": "config",
    "DatasetSummary": "dataset",
    "make_synthetic_dataset": "dataset",
    "simulate_recording": "recording",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
