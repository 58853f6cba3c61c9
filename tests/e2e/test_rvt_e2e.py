"""An RVT-layout dataset written by evdet's writer, end to end: evdet-train (a few steps, rvt-gen1
validation), evdet-detect (detections stamped at the stored representation times), evdet-eval --preset
rvt-gen1, evdet-demo-video."""

from __future__ import annotations

import json

import numpy as np
import pytest
from evdet.apps import demo_video as demo_app
from evdet.apps import detect as detect_app
from evdet.apps import eval as eval_app
from evdet.apps import train as train_app
from rvt_fixtures import make_rvt_gen1_dataset

from evdet.io.boxes import load_boxes

pytestmark = pytest.mark.slow
REPR = "event_representations_v2/stacked_histogram_dt=50_nbins=10"
SMALL = ["--base", "4", "--cout", "8", "--anchor-size", "16", "-T", "2", "-B", "2", "--no-progress",
         "--log-images-every-n-steps", "0", "--num-workers", "0", "--accelerator", "cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("rvt_e2e")
    splits = (("train", 2), ("val", 1), ("test", 1))
    data = make_rvt_gen1_dataset(root, np.random.default_rng(9), splits=splits, n_events=8000)
    run = root / "run"
    code = train_app.main([str(data), "--root-dir", str(run), *SMALL, "--max-steps", "2", "--max-epochs", "1",
                           "--eval-preset", "rvt-gen1", "--eval-score-thresh", "0.0"])
    assert code == 0
    return data, run


def test_train_on_rvt_folder_without_conversion(trained):
    _, run = trained
    assert (run / "checkpoints" / "last.ckpt").exists()
    metrics = json.loads((run / "metrics_val.json").read_text())
    assert {"AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L"} <= set(metrics)


def test_detect_stamps_the_stored_times_then_eval_rvt_preset(trained, tmp_path, capsys):
    data, run = trained
    out = tmp_path / "dets"
    ckpt = run / "checkpoints" / "last.ckpt"
    assert detect_app.main([str(ckpt), str(data / "test"), "-o", str(out), "--score-thresh", "0.0"]) == 0
    dets = load_boxes(out / "test0_bbox.npy")
    ts = np.load(data / "test" / "test0" / REPR / "timestamps_us.npy")
    assert dets.size and set(np.unique(dets["t"]).tolist()) == set(ts.tolist())
    assert dets["x"].max() > 0 and (dets["x"] + dets["w"]).max() <= 304 + 1e-3  # sensor pixels
    capsys.readouterr()
    js = tmp_path / "m.json"
    assert eval_app.main([str(data / "test"), str(out), "--preset", "rvt-gen1", "--json", str(js)]) == 0
    text = capsys.readouterr().out
    payload = json.loads(js.read_text())
    assert "1 recordings" in text and payload["classes"] == ["car", "pedestrian"]
    assert payload["settings"]["time_tol"] == 0 and payload["recordings"] == ["test0"]
    # scored images: the 3 label frames after 0.5 s (620.5, 1121, 1621.5 ms), 3 boxes each in a test split
    # (the huge-box filter is train-only)
    assert payload["num_images"] == 3 and payload["num_gt"] == 9


def test_demo_video_on_an_rvt_sequence(trained, tmp_path):
    data, run = trained
    out = tmp_path / "frames"
    code = demo_app.main([str(run / "checkpoints" / "last.ckpt"), str(data / "val" / "val0"), "-o", str(out),
                          "--format", "png", "--max-duration", "0.5"])
    assert code == 0 and len(list(out.glob("*.png"))) >= 1


def test_training_validation_equals_evdet_eval_on_the_detections(trained, tmp_path):
    # the same protocol path: validation in evdet-train (--eval-preset rvt-gen1) and evdet-eval on the
    # detections evdet-detect writes for the same model and split
    data, run = trained
    out = tmp_path / "dets"
    assert detect_app.main([str(run / "checkpoints" / "last.ckpt"), str(data / "val"), "-o", str(out),
                            "--score-thresh", "0.0"]) == 0
    js = tmp_path / "m.json"
    assert eval_app.main([str(data / "val"), str(out), "--preset", "rvt-gen1", "--json", str(js)]) == 0
    evaluated = json.loads(js.read_text())["metrics"]
    validated = json.loads((run / "metrics_val.json").read_text())
    for k in ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L"):
        assert validated[k] == pytest.approx(evaluated[k], abs=1e-9), k
