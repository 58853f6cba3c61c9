"""End to end: evdet-detect -> evdet-eval, evdet-demo-video, evdet-export on a tiny synthetic recording."""

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch
from evdet.apps import demo_video as demo_app
from evdet.apps import detect as detect_app
from evdet.apps import export as export_app

from evdet.inference.checkpoint import CheckpointInfo, save_detector_checkpoint
from evdet.inference.model_config import ModelConfig, VanillaConfig, build_detector
from evdet.io.boxes import load_boxes
from evdet.io.dtypes import BBOX_DTYPE
from evdet.simulation import make_synthetic_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    make_synthetic_dataset(root / "ds", preset="tiny", num_train=0, num_val=1, num_test=0, duration_s=0.6)
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="Vanilla_VGG", vanilla=VanillaConfig(base=4, cout=8))
    classes = ("car", "pedestrian", "two wheeler")
    info = CheckpointInfo(classes=classes, label_map=dict(enumerate(classes)), representation="histo",
                          representation_params={}, delta_t=50_000, num_tbins=2, in_channels=2,
                          sensor_size=(96, 128), network_size=(96, 128), score_thresh=0.0, nms_thresh=0.5,
                          max_detections=5, model_config=dataclasses.asdict(cfg))
    save_detector_checkpoint(root / "model.ckpt", build_detector(cfg, 2, 3), info)
    recs = sorted((root / "ds" / "val").glob("*_td.dat"))
    assert len(recs) == 1
    return root, recs[0]


def test_detect_then_eval(setup, capsys):
    root, rec = setup
    assert detect_app.main([str(root / "model.ckpt"), str(rec.parent), "-o", str(root / "dt")]) == 0
    out = load_boxes(root / "dt" / rec.name.replace("_td.dat", "_bbox.npy"))
    assert out.dtype == BBOX_DTYPE and out.size > 0
    assert np.all(out["t"] % 50_000 == 0) and out["t"].max() <= 600_000
    assert np.all(out["x"] >= 0) and np.all(out["x"] + out["w"] <= 128 + 1e-3)
    from evdet.apps import eval as eval_app

    assert eval_app.main([str(root / "ds" / "val"), str(root / "dt"), "--skip-ts", "0"]) == 0
    assert "AP" in capsys.readouterr().out


def test_demo_video_mp4_and_png(setup):
    root, rec = setup
    ckpt = str(root / "model.ckpt")
    assert demo_app.main([ckpt, str(rec), "-o", str(root / "demo.mp4"), "--max-duration", "0.3"]) == 0
    cap = cv2.VideoCapture(str(root / "demo.mp4"))
    n, ok = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.read()[0]
    cap.release()
    assert ok and n == 6  # one frame per 50 ms bin
    assert demo_app.main([ckpt, str(rec), str(rec), "-o", str(root / "frames"), "--max-duration", "0.1",
                          "--scale", "2"]) == 0
    frames = sorted((root / "frames").glob("*.png"))
    assert len(frames) == 2
    img = cv2.imread(str(frames[0]))
    assert img.shape[1] > 2 * 128 * 2  # two panels side by side at x2


def test_export_cli(setup, capsys):
    root, _ = setup
    assert export_app.main([str(root / "model.ckpt"), str(root / "exp")]) == 0
    meta = json.loads((root / "exp" / "model.json").read_text())
    assert meta["classes"] == ["car", "pedestrian", "two wheeler"]
    assert meta["preprocessing"]["delta_t"] == 50_000 and meta["preprocessing"]["num_tbins"] == 2
    assert "checks passed" in capsys.readouterr().out
    assert export_app.main([str(root / "exp" / "model.pt"), str(root / "exp2")]) == 2
    assert "already" in capsys.readouterr().err


def test_export_cli_onnx(setup, capsys):
    pytest.importorskip("onnxruntime")
    root, _ = setup
    assert export_app.main([str(root / "model.ckpt"), str(root / "onnx"), "--format", "onnx"]) == 0
    meta = json.loads((root / "onnx" / "model.json").read_text())
    assert meta["format"] == "evdet-onnx" and meta["inputs"][0]["shape"][0] == 2  # T of the training
    assert "ONNX Runtime" in capsys.readouterr().out


def test_cli_errors(setup, capsys):
    root, rec = setup
    assert detect_app.main([str(root / "missing.ckpt"), str(rec), "-o", str(root / "x")]) == 2
    assert "missing.ckpt" in capsys.readouterr().err
    assert detect_app.main([str(root / "model.ckpt"), str(root / "nope.dat"), "-o", str(root / "x")]) == 2
    assert "nope.dat" in capsys.readouterr().err
    assert demo_app.main([str(root / "model.ckpt"), str(rec), "-o", str(root / "v.mp4"), "--fps", "0"]) == 2
    for bad, why in ((["--atol", "nan"], "--atol: must be a finite number >= 0, got nan"),
                     (["--format", "onnx", "--num-tbins", "0"], "--num-tbins: must be >= 1, got 0"),
                     (["--num-tbins", "3"], "--num-tbins applies to --format onnx only")):
        with pytest.raises(SystemExit) as stop:
            export_app.main([str(root / "model.ckpt"), str(root / "exp_bad"), *bad])
        assert stop.value.code == 2 and why in capsys.readouterr().err
    assert not (root / "exp_bad").exists()


@pytest.fixture(scope="module")
def yolox_ckpt(setup):
    root, _ = setup
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="Vanilla_VGG", head="yolox", vanilla=VanillaConfig(base=4, cout=8))
    classes = ("car", "pedestrian")
    info = CheckpointInfo(classes=classes, label_map=dict(enumerate(classes)), representation="histo",
                          representation_params={}, delta_t=50_000, num_tbins=2, in_channels=2,
                          sensor_size=(96, 128), network_size=(96, 128), score_thresh=0.0, nms_thresh=0.5,
                          max_detections=5, model_config=dataclasses.asdict(cfg))
    save_detector_checkpoint(root / "yolox.ckpt", build_detector(cfg, 2, 2), info)
    return root / "yolox.ckpt"


def test_detect_class_score(setup, yolox_ckpt, capsys):
    root, rec = setup
    name = rec.name.replace("_td.dat", "_bbox.npy")
    common = [str(yolox_ckpt), str(rec), "--max-detections", "1000", "--no-progress"]  # nothing cut off
    assert detect_app.main([*common, "-o", str(root / "dt_product")]) == 0
    assert detect_app.main([*common, "-o", str(root / "dt_class"), "--class-score"]) == 0
    product, cls = load_boxes(root / "dt_product" / name), load_boxes(root / "dt_class" / name)
    assert product.size == cls.size > 0

    def by_box(rows):
        return {(r["t"], r["x"], r["y"], r["w"], r["h"], r["class_id"]): r["class_confidence"] for r in rows}

    a, b = by_box(product), by_box(cls)
    assert a.keys() == b.keys() and len(a) == product.size  # same boxes and classes
    assert all(b[k] >= a[k] for k in a) and any(b[k] > a[k] for k in a)  # class prob >= obj x class prob


def test_class_score_on_an_anchor_checkpoint_is_an_error(setup, capsys):
    root, rec = setup
    anchor = str(root / "model.ckpt")
    assert detect_app.main([anchor, str(rec), "-o", str(root / "dt_x"), "--class-score"]) == 2
    err = capsys.readouterr().err
    assert "model.ckpt" in err and "only defined for yolox-head checkpoints" in err and "'anchor'" in err
    assert not (root / "dt_x").exists()
    assert demo_app.main([anchor, str(rec), "-o", str(root / "v.mp4"), "--class-score"]) == 2
    assert "only defined for yolox-head checkpoints" in capsys.readouterr().err
    assert not (root / "v.mp4").exists()


def test_demo_video_class_score(setup, yolox_ckpt):
    root, rec = setup
    out = root / "yolox_frames"
    assert demo_app.main([str(yolox_ckpt), str(rec), "-o", str(out), "--max-duration", "0.1", "--class-score",
                          "--score-thresh", "0.0", "--no-progress"]) == 0
    assert len(sorted(out.glob("*.png"))) == 2
