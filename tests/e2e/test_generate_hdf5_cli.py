"""evdet-generate-hdf5 end to end: CLI run, SIGKILL mid-run, resume gives the uninterrupted result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from evdet.apps.generate_hdf5 import main

from evdet.io.atomic import is_temporary
from evdet.io.boxes import load_boxes, save_boxes
from evdet.io.dat import write_dat
from evdet.io.dtypes import BBOX_DTYPE, EVENT_DTYPE
from evdet.io.h5 import H5TensorReader
from evdet.preprocessing.convert import generate_hdf5

pytestmark = pytest.mark.slow
H, W = 120, 152


def _temporaries(folder):
    return [p for p in folder.rglob("*") if is_temporary(p)]


def _make_dataset(root, rng, duration_us, n_events):
    for split, names in (("train", ["r0", "r1"]), ("val", ["r2"])):
        (root / split).mkdir(parents=True)
        for name in names:
            ev = np.zeros(n_events, dtype=EVENT_DTYPE)
            ev["x"], ev["y"] = rng.integers(0, W, n_events), rng.integers(0, H, n_events)
            ev["p"] = rng.integers(0, 2, n_events)
            ev["t"] = np.sort(rng.integers(0, duration_us, n_events))
            write_dat(root / split / f"{name}_td.dat", ev, H, W)
            boxes = np.zeros(4, dtype=BBOX_DTYPE)
            boxes["t"] = np.linspace(100_000, duration_us - 1, 4).astype(np.int64)
            boxes["w"], boxes["h"], boxes["track_id"] = 10, 12, np.arange(4)
            save_boxes(root / split / f"{name}_bbox.npy", boxes)
    (root / "label_map_dictionary.json").write_text('{"0": "car"}\n')


def _assert_same_outputs(a, b):
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        if rel.suffix == ".h5":
            ra, rb = H5TensorReader(a / rel), H5TensorReader(b / rel)
            assert (ra.num_frames, ra.params, ra.start_ts) == (rb.num_frames, rb.params, rb.start_ts)
            np.testing.assert_array_equal(ra.read(), rb.read())
        elif rel.name.endswith("_bbox.npy"):
            np.testing.assert_array_equal(load_boxes(a / rel), load_boxes(b / rel))


def test_cli_converts_dataset(tmp_path, rng, capsys):
    _make_dataset(tmp_path / "ds", rng, 400_000, 5_000)
    assert main([str(tmp_path / "ds"), str(tmp_path / "out"), "--delta-t", "20000", "--no-progress",
                 "--representation", "stacked_histogram", "--num-utbins", "2", "--store-as-uint8"]) == 0
    assert "3 HDF5 file(s)" in capsys.readouterr().out
    r = H5TensorReader(tmp_path / "out" / "train" / "r0.h5")
    assert r.shape == (4, H, W) and r.num_frames == 20 and r.store_as_uint8
    assert r.params == {"num_utbins": 2, "max_count": 10}
    # bad input: exit status 2 (docs/apps.md) with a one-line message on stderr
    assert main([str(tmp_path / "ds"), str(tmp_path / "bad"), "--representation", "diff",
                 "--store-as-uint8"]) == 2
    assert "store_as_uint8" in capsys.readouterr().err


def _kill_mid_file(cmd, out) -> list:
    """Start ``cmd``, SIGKILL it as soon as a temporary output exists; the temporaries left behind (empty
    when the file was finished and renamed between seeing its temporary and the kill)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while not _temporaries(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, "conversion ended before it could be interrupted"
        os.kill(proc.pid, signal.SIGKILL)  # a file is being written (its .tmp exists)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return _temporaries(out)


def test_killed_run_leaves_no_complete_looking_file_and_resumes(tmp_path, rng):
    root, ref = tmp_path / "ds", tmp_path / "ref"
    _make_dataset(root, rng, 3_000_000, 60_000)
    # on a loaded machine the kill can land just after a file was finished: try again in a fresh folder
    for attempt in range(5):
        out = tmp_path / f"out{attempt}"
        cmd = [sys.executable, "-m", "evdet.apps.generate_hdf5", str(root), str(out), "--delta-t", "10000",
               "--no-progress"]
        if _kill_mid_file(cmd, out):
            break
    else:
        raise AssertionError("5 killed runs, none of them mid-file")
    for h5 in out.rglob("*.h5"):  # whatever has the final name must be complete and readable
        assert H5TensorReader(h5).num_frames == 300
    done_before = {p: p.stat().st_mtime_ns for p in out.rglob("*.h5")}
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    for p, mtime in done_before.items():
        assert p.stat().st_mtime_ns == mtime  # finished files are skipped
    assert not _temporaries(out)
    generate_hdf5(root, ref, delta_t=10_000, progress=False)
    _assert_same_outputs(out, ref)
