"""Tests of evdet/simulation/dataset.py: files, labels and events read back, seeds, errors."""

from __future__ import annotations

import numpy as np
import pytest

from evdet.io.boxes import load_boxes
from evdet.io.dat import DatReader
from evdet.io.label_map import load_label_map
from evdet.simulation.config import PRESETS
from evdet.simulation.dataset import make_synthetic_dataset, recording_seed
from evdet.simulation.recording import simulate_recording


def test_dataset_files_round_trip(tmp_path):
    summary = make_synthetic_dataset(tmp_path / "ds", preset="tiny", num_train=2, num_val=1, num_test=0,
                                     duration_s=0.5, classes=["car", "two wheeler"], seed=11)
    root = tmp_path / "ds"
    assert load_label_map(root) == {0: "car", 2: "two wheeler"}
    assert sorted(p.name for p in (root / "train").iterdir()) == [
        ".evdet-outputs",  # the manifest of what evdet wrote (evdet.io.output_paths)
        "synthetic_train_0000_bbox.npy", "synthetic_train_0000_td.dat",
        "synthetic_train_0001_bbox.npy", "synthetic_train_0001_td.dat"]
    assert not (root / "test").exists()
    assert summary.recordings == {"train": 2, "val": 1, "test": 0}
    assert summary.duration_s == pytest.approx(1.5)
    config = PRESETS["tiny"].simulation.replace(duration_us=500_000, classes=(0, 2))
    total_events, total_boxes = 0, {"car": 0, "two wheeler": 0}
    for split, i in (("train", 0), ("train", 1), ("val", 0)):
        ev, bx = simulate_recording(config, recording_seed(11, split, i))
        with DatReader(root / split / f"synthetic_{split}_{i:04d}_td.dat") as reader:
            assert (reader.height, reader.width) == (96, 128)
            back = reader.load_all()
        np.testing.assert_array_equal(back, ev)
        np.testing.assert_array_equal(load_boxes(root / split / f"synthetic_{split}_{i:04d}_bbox.npy"), bx)
        assert set(np.unique(bx["class_id"]).tolist()) <= {0, 2}
        total_events += ev.size
        total_boxes["car"] += int((bx["class_id"] == 0).sum())
        total_boxes["two wheeler"] += int((bx["class_id"] == 2).sum())
    assert summary.num_events == total_events and summary.boxes_per_class == total_boxes
    assert "3 recordings" in summary.format()


def test_seeds_differ_per_split_and_index():
    seeds = {recording_seed(0, s, i) for s in ("train", "val", "test") for i in range(5)}
    assert len(seeds) == 15
    assert recording_seed(0, "train", 3) == recording_seed(0, "train", 3) != recording_seed(1, "train", 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(preset="nope"), "unknown synthetic preset"),
    (dict(classes=["bus"]), "unknown synthetic class 'bus'"),
    (dict(num_train=-1), "num_train = -1"),
    (dict(num_workers=0), "num_workers = 0"),
    (dict(duration_s=0), "duration_s = 0"),
])
def test_bad_arguments_raise(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_synthetic_dataset(tmp_path / "ds", **kwargs)
