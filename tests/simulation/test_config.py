"""Tests of evdet/simulation/config.py: validation, presets, replace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evdet.simulation.config import (
    PRESETS,
    SYNTHETIC_LABEL_MAP,
    SceneConfig,
    SensorConfig,
    SimulationConfig,
    get_preset,
)


def test_label_map_matches_repository_file():
    path = Path(__file__).resolve().parents[2] / "label_maps" / "synthetic_label_map_dictionary.json"
    assert {int(k): v for k, v in json.loads(path.read_text()).items()} == SYNTHETIC_LABEL_MAP


def test_presets():
    tiny = get_preset("tiny")
    assert (tiny.simulation.scene.height, tiny.simulation.scene.width) == (96, 128)
    assert (tiny.num_train, tiny.num_val, tiny.num_test) == (12, 3, 3)
    gen1 = PRESETS["gen1-like"].simulation
    assert (gen1.scene.height, gen1.scene.width, gen1.duration_us) == (240, 304, 60_000_000)
    assert gen1.label_period_us == 50_000 and gen1.label_start_us == 50_000
    with pytest.raises(ValueError, match=r"unknown synthetic preset 'huge'.*gen1-like.*tiny"):
        get_preset("huge")


def test_replace_routes_scene_fields():
    cfg = SimulationConfig().replace(height=50, width=60, classes=(1,), duration_us=10)
    assert (cfg.scene.height, cfg.scene.width, cfg.scene.classes, cfg.duration_us) == (50, 60, (1,), 10)
    assert SimulationConfig().scene.height == 240  # the original is unchanged


@pytest.mark.parametrize("make, match", [
    (lambda: SceneConfig(classes=(5,)), "unknown class id 5"),
    (lambda: SceneConfig(classes=()), "classes is empty"),
    (lambda: SceneConfig(height=4), "height=4"),
    (lambda: SceneConfig(background_contrast=0.0), "background_contrast = 0.0"),
    (lambda: SceneConfig(stop_duration_s=(2.0, 1.0)), "stop_duration_s"),
    (lambda: SensorConfig(threshold_on=0.0), "thresholds must be > 0"),
    (lambda: SensorConfig(noise_rate_hz=-1.0), "noise_rate_hz = -1.0"),
    (lambda: SensorConfig(min_step_us=10, max_step_us=5), "min_step_us"),
    (lambda: SimulationConfig(duration_us=0), "duration_us = 0"),
    (lambda: SimulationConfig(min_visible_fraction=1.5), "min_visible_fraction = 1.5"),
])
def test_bad_values_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()
