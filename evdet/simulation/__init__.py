"""Synthetic labelled event-camera recordings (scene renderer + ESIM/v2e-style sensor model).

``simulate_recording(config, seed) -> (events, boxes)`` makes one recording;
``make_synthetic_dataset(out_dir, preset="tiny", ...)`` writes a whole dataset in the on-disk formats of
the public automotive datasets (SPEC 2). See ``docs/synthetic.md``.
"""

from evdet.simulation.config import (
    PRESETS,
    SYNTHETIC_LABEL_MAP,
    DatasetPreset,
    SceneConfig,
    SensorConfig,
    SimulationConfig,
    get_preset,
)
from evdet.simulation.dataset import DatasetSummary, make_synthetic_dataset
from evdet.simulation.recording import simulate_recording

__all__ = [
    "PRESETS", "SYNTHETIC_LABEL_MAP", "DatasetPreset", "DatasetSummary", "SceneConfig", "SensorConfig",
    "SimulationConfig", "get_preset", "make_synthetic_dataset", "simulate_recording",
]
