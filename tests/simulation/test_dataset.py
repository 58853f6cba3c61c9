"""Tests of evdet/simulation/dataset.py: files, labels and events read back, seeds, errors."""

from __future__ import annotations

import shutil

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


def _files(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_refused_overwrite_deletes_nothing(tmp_path):
    # before: --overwrite unlinked the earlier recordings, then refused the foreign label map (or hit
    # Errno 17 on OUT/val being a file): the refused run had already destroyed the dataset
    from evdet.io.output_paths import OutputPathError, record_output

    out = tmp_path / "ds"
    kw = {"preset": "tiny", "num_train": 1, "num_val": 1, "num_test": 0, "duration_s": 0.2}
    make_synthetic_dataset(out, **kw)
    (out / ".evdet-outputs").write_text((out / ".evdet-outputs").read_text().replace(
        "label_map_dictionary.json\tevdet-make-synthetic\n", ""))  # the label map is now the user's
    before = _files(out)
    with pytest.raises(OutputPathError, match="label_map_dictionary.json already exists and was not written"):
        make_synthetic_dataset(out, overwrite=True, **kw)
    assert _files(out) == before
    record_output(out / "label_map_dictionary.json", "evdet-make-synthetic")
    shutil.rmtree(out / "val")
    (out / "val").write_text("a file where the split folder goes")
    before = _files(out)
    with pytest.raises(OutputPathError, match=r"val is an existing file"):
        make_synthetic_dataset(out, overwrite=True, **kw)
    assert _files(out) == before
    (out / "val").unlink()
    det = out / "train" / "dets_bbox.npy"  # another command's output in a split folder
    det.write_bytes(b"detections")
    record_output(det, "evdet-detect")
    with pytest.raises(OutputPathError, match="dets_bbox.npy was written by evdet-detect"):
        make_synthetic_dataset(out, overwrite=True, **kw)
    assert det.read_bytes() == b"detections" and (out / "train" / "synthetic_train_0000_td.dat").exists()
    det.unlink()
    assert make_synthetic_dataset(out, overwrite=True, **kw).recordings == {"train": 1, "val": 1, "test": 0}
