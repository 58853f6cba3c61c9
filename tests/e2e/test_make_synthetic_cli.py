"""End to end: run ``evdet-make-synthetic`` (real CLI, 2 workers, ``--hdf5``) and read everything back."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from evdet.io.boxes import load_boxes
from evdet.io.h5 import H5TensorReader
from evdet.io.label_map import load_label_map
from evdet.io.read import read_events
from evdet.simulation.config import PRESETS, SYNTHETIC_LABEL_MAP
from evdet.simulation.dataset import recording_seed
from evdet.simulation.recording import simulate_recording


def test_cli_reports_bad_arguments(tmp_path, capsys):
    from evdet.apps.make_synthetic import main

    # bad input: exit status 2 (docs/apps.md) with a one-line message on stderr
    assert main([str(tmp_path / "a"), "--classes", "bus", "--no-progress"]) == 2
    assert "unknown synthetic class 'bus'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "a"), "--preset", "huge"])
    assert "invalid choice: 'huge'" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_writes_a_dataset_that_reads_back(tmp_path):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "evdet.apps.make_synthetic", str(out), "--preset", "tiny",
           "--num-train", "2", "--num-val", "1", "--num-test", "1", "--duration-s", "1.5", "--seed", "5",
           "--num-workers", "2", "--hdf5", "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    assert "wrote 4 recordings (train 2, val 1, test 1)" in run.stdout
    assert "boxes per class: car:" in run.stdout and "kev/s" in run.stdout

    assert load_label_map(out) == SYNTHETIC_LABEL_MAP
    assert load_label_map(out / "hdf5") == SYNTHETIC_LABEL_MAP
    config = PRESETS["tiny"].simulation.replace(duration_us=1_500_000)
    for split, n in (("train", 2), ("val", 1), ("test", 1)):
        dats = sorted((out / split).glob("*_td.dat"))
        assert len(dats) == n
        for i, dat in enumerate(dats):
            events = read_events(dat)
            boxes = load_boxes(dat.with_name(dat.name.replace("_td.dat", "_bbox.npy")))
            assert events.size > 1000 and np.all(np.diff(events["t"]) >= 0)
            assert events["x"].max() < 128 and events["y"].max() < 96 and events["t"].max() < 1_500_000
            assert boxes.size > 0 and np.all(boxes["t"] % 50_000 == 0) and boxes["t"].max() < 1_500_000
            assert np.all(boxes["x"] + boxes["w"] <= 128 + 1e-4)
            assert np.all(boxes["y"] + boxes["h"] <= 96 + 1e-4)
            if split == "train" and i == 1:  # the worker processes give the same data as one process
                ev, bx = simulate_recording(config, recording_seed(5, split, i))
                np.testing.assert_array_equal(events, ev)
                np.testing.assert_array_equal(boxes, bx)
            h5 = out / "hdf5" / split / dat.name.replace("_td.dat", ".h5")
            with H5TensorReader(h5) as reader:
                assert reader.sensor_size == (96, 128) and reader.delta_t == 50_000
                assert reader.num_frames == 30
                frames = reader.read(0, reader.num_frames)
            assert frames.shape == (30, 2, 96, 128)
            # the histo tensor counts the events of each 50 ms bin (ON in channel 1)
            k = 12
            sel = events[(events["t"] >= k * 50_000) & (events["t"] < (k + 1) * 50_000)]
            assert (frames[k].sum(axis=0) > 0).sum() == np.unique(sel["y"].astype(int) * 128 + sel["x"]).size
            np.testing.assert_array_equal(load_boxes(h5.with_name(h5.stem + "_bbox.npy")), boxes)
