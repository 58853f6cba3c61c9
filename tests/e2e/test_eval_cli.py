"""End-to-end: ``evdet-eval`` on small folders of label files."""

import json
import subprocess
import sys

import numpy as np
import pytest
from evdet.apps.eval import main

from evdet.evaluation import evaluate_detection, filter_boxes
from evdet.io import BBOX_DTYPE, GEN1_LABEL_MAP, save_boxes, save_label_map


def _recording(rng, n=30, shift=0.0):
    g = np.zeros(n, BBOX_DTYPE)
    g["t"] = np.sort(rng.choice(np.arange(600_000, 3_000_000, 100_000), n))
    g["x"], g["y"] = rng.uniform(0, 200, n), rng.uniform(0, 150, n)
    g["w"], g["h"] = rng.uniform(15, 90, n), rng.uniform(15, 90, n)
    g["class_id"] = rng.integers(0, 2, n)
    d = g.copy()
    d["x"] += shift
    d["class_confidence"] = rng.uniform(0.1, 1, n)
    return g, d


@pytest.fixture
def folders(tmp_path, rng):
    gt_dir, dt_dir = tmp_path / "data" / "test", tmp_path / "dets"
    (gt_dir / "sub").mkdir(parents=True)
    (dt_dir / "other").mkdir(parents=True)
    save_label_map(tmp_path / "data", GEN1_LABEL_MAP)  # found in GT_DIR's parent
    # recordings whose sorted names differ in order between the two sides: "b" has perfect detections,
    # "a" has shifted ones; pairing by sort position would swap them
    recs = {"b_rec": _recording(rng), "a_rec": _recording(rng, shift=12.0)}
    save_boxes(gt_dir / "b_rec_bbox.npy", recs["b_rec"][0])
    save_boxes(gt_dir / "sub" / "a_rec_bbox.npy", recs["a_rec"][0])
    save_boxes(dt_dir / "b_rec_bbox.npy", recs["b_rec"][1])
    np.save(dt_dir / "other" / "a_rec.npy", recs["a_rec"][1])  # plain <name>.npy is accepted too
    return gt_dir, dt_dir, recs


def _expected(recs, names, preset=(500_000, 30, 10)):
    gts = [filter_boxes(recs[n][0], *preset) for n in names]
    dts = [filter_boxes(recs[n][1], *preset) for n in names]
    return evaluate_detection(gts, dts, ["car", "pedestrian"], 240, 304)


def test_pairs_by_name_prints_table_and_writes_json_and_plot(folders, tmp_path, capsys):
    gt_dir, dt_dir, recs = folders
    out_json, out_png = tmp_path / "out" / "m.json", tmp_path / "out" / "pr.png"
    assert main([str(gt_dir), str(dt_dir), "--preset", "gen1", "--json", str(out_json),
                 "--pr-plot", str(out_png)]) == 0
    text = capsys.readouterr().out
    assert "AP_M" in text and "pedestrian" in text and "2 recordings" in text
    payload = json.loads(out_json.read_text())
    assert payload["metrics"] == _expected(recs, ["a_rec", "b_rec"])
    assert payload["recordings"] == ["a_rec", "b_rec"] and payload["settings"]["min_box_side"] == 10
    assert out_png.stat().st_size > 1000
    import cv2

    assert cv2.imread(str(out_png)).shape[1] > 640  # curves | per-class AP bars
    assert "per-class AP bars" in text


def test_overrides_change_the_filter(folders, tmp_path):
    gt_dir, dt_dir, recs = folders
    out_json = tmp_path / "m.json"
    assert main([str(gt_dir), str(dt_dir), "--min-box-side", "40", "--skip-ts", "0",
                 "--classes", "car", "pedestrian", "--json", str(out_json)]) == 0
    payload = json.loads(out_json.read_text())
    assert payload["metrics"] == _expected(recs, ["a_rec", "b_rec"], (0, 30, 40))
    assert payload["settings"]["skip_ts"] == 0


def test_missing_recording_is_named(folders, capsys):
    gt_dir, dt_dir, _ = folders
    (dt_dir / "b_rec_bbox.npy").unlink()
    assert main([str(gt_dir), str(dt_dir)]) == 2
    err = capsys.readouterr().err
    assert "b_rec" in err and "no detections" in err
    save_boxes(dt_dir / "zz_extra_bbox.npy", np.zeros(0, BBOX_DTYPE))
    save_boxes(dt_dir / "b_rec_bbox.npy", np.zeros(0, BBOX_DTYPE))
    assert main([str(gt_dir), str(dt_dir)]) == 2
    assert "zz_extra" in capsys.readouterr().err


def test_missing_label_map_and_folder(tmp_path, capsys):
    (tmp_path / "g" / "x").mkdir(parents=True)
    (tmp_path / "d").mkdir()
    save_boxes(tmp_path / "g" / "x" / "r_bbox.npy", np.zeros(0, BBOX_DTYPE))
    save_boxes(tmp_path / "d" / "r_bbox.npy", np.zeros(0, BBOX_DTYPE))
    assert main([str(tmp_path / "g" / "x"), str(tmp_path / "d")]) == 2
    assert "label_map_dictionary.json" in capsys.readouterr().err
    assert main([str(tmp_path / "nope"), str(tmp_path / "d")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.slow
def test_real_command_line(folders):
    gt_dir, dt_dir, _ = folders
    cmd = [sys.executable, "-m", "evdet.apps.eval", str(gt_dir), str(dt_dir), "--preset", "gen1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "AR_100" in proc.stdout


def test_auto_preset_needs_size_and_dense_labels_warn(folders, tmp_path, rng, capsys):
    gt_dir, dt_dir, recs = folders
    assert main([str(gt_dir), str(dt_dir), "--preset", "auto"]) == 2
    assert "--height and --width" in capsys.readouterr().err
    # at 240x304, auto is gen1: the same numbers as --preset gen1; labels 100 ms apart > 50 ms: no warning
    out_json = tmp_path / "auto.json"
    assert main([str(gt_dir), str(dt_dir), "--preset", "auto", "--height", "240", "--width", "304",
                 "--json", str(out_json)]) == 0
    assert json.loads(out_json.read_text())["metrics"] == _expected(recs, ["a_rec", "b_rec"])
    assert "warning" not in capsys.readouterr().err
    # labels every 50 ms: neighbouring instants pool into each other under the ±50 ms tolerance
    dense_gt, dense_dt = tmp_path / "dense_gt", tmp_path / "dense_dt"
    dense_gt.mkdir()
    dense_dt.mkdir()
    save_label_map(dense_gt, GEN1_LABEL_MAP)
    g = np.zeros(40, BBOX_DTYPE)
    g["t"] = 600_000 + 50_000 * np.arange(40)
    g["x"], g["y"], g["w"], g["h"] = 10.0, 10.0, 40.0, 40.0
    save_boxes(dense_gt / "r_bbox.npy", g)
    save_boxes(dense_dt / "r_bbox.npy", g)
    assert main([str(dense_gt), str(dense_dt)]) == 0
    err = capsys.readouterr().err
    assert "labelled every 50000 µs" in err and "--time-tol below 25001" in err
    assert main([str(dense_gt), str(dense_dt), "--time-tol", "25000"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_outputs_follow_the_output_path_policy(folders, tmp_path, capsys):
    # before: --json / --pr-plot replaced any file (the ground truth itself included); a bad suffix or a
    # folder was a cv2.error / IsADirectoryError traceback after the whole evaluation
    gt_dir, dt_dir, _ = folders
    gt = next(gt_dir.glob("*_bbox.npy"))
    before = gt.read_bytes()
    mine = tmp_path / "notes.json"
    mine.write_text("my notes")
    (tmp_path / "adir").mkdir()
    cases = [(["--json", str(gt)], "lies inside the input folder"),
             (["--pr-plot", str(gt)], "give a .png file name"),
             (["--json", str(mine)], "not written by evdet"),
             (["--pr-plot", str(tmp_path / "x.jpg")], ".png"),
             (["--pr-plot", str(tmp_path / "adir")], ".png"),
             (["--json", str(tmp_path / "adir")], "existing folder"),
             (["--json", str(tmp_path / "a.json"), "--pr-plot", str(tmp_path / "a.json")], ".png")]
    for extra, why in cases:
        assert main([str(gt_dir), str(dt_dir), *extra]) == 2
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err, (extra, err)
    assert gt.read_bytes() == before and mine.read_text() == "my notes"
    outs = ["--json", str(tmp_path / "m.json"), "--pr-plot", str(tmp_path / "pr.png")]
    assert main([str(gt_dir), str(dt_dir), *outs]) == 0
    assert main([str(gt_dir), str(dt_dir), *outs]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main([str(gt_dir), str(dt_dir), *outs, "--overwrite"]) == 0
