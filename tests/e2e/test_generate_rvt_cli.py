"""``evdet-generate-hdf5 RAW_DIR OUT_DIR --format rvt --dataset gen1``: the CLI, with 1 and 2 workers."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from evdet.apps.generate_hdf5 import main
from rvt_fixtures import gen1_labels, write_gen1_recording

pytestmark = pytest.mark.slow


def _contents(root):
    out = {}
    for p in sorted(root.rglob("*")):
        if p.suffix == ".h5":
            with h5py.File(p, "r") as f:
                out[p.relative_to(root).as_posix()] = f["data"][:]
        elif p.suffix == ".npz":
            z = np.load(p)
            out.update({f"{p.relative_to(root).as_posix()}:{k}": z[k] for k in z.files})
        elif p.suffix == ".npy":
            out[p.relative_to(root).as_posix()] = np.load(p)
    return out


def test_cli_one_and_two_workers_write_the_same_dataset(tmp_path, rng, capsys):
    raw = tmp_path / "raw"
    for split, name in (("train", "a"), ("train", "b"), ("val", "c")):
        write_gen1_recording(raw / split, name, rng, n_events=5000, duration=900_000,
                             labels=gen1_labels(times=[150_000, 400_000, 650_000]))
    assert main([str(raw), str(tmp_path / "one"), "--format", "rvt", "--dataset", "gen1",
                 "--no-progress"]) == 0
    assert "3 RVT sequence folder(s)" in capsys.readouterr().out
    assert main([str(raw), str(tmp_path / "two"), "--format", "rvt", "--dataset", "gen1",
                 "--num-workers", "2"]) == 0
    one, two = _contents(tmp_path / "one"), _contents(tmp_path / "two")
    assert sorted(one) == sorted(two) and len(one) == 3 * 6
    for k in one:
        np.testing.assert_array_equal(one[k], two[k], err_msg=k)


def test_cli_rvt_needs_a_dataset_and_one_input(tmp_path, capsys):
    cases = [([str(tmp_path), str(tmp_path / "o"), "--format", "rvt"], "--dataset gen1 or gen4"),
             ([str(tmp_path), str(tmp_path), str(tmp_path / "o"), "--format", "rvt", "--dataset", "gen1"],
              "one input folder"),
             ([str(tmp_path), str(tmp_path / "o"), "--format", "rvt", "--dataset", "gen4"],
              "no train/, val/ or test/")]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("evdet-generate-hdf5: error:") and message in err, err
