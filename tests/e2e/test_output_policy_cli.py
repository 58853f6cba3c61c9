"""Hostile outputs and inputs for every app (issue 12 §1, §4): an output never destroys an input or a file
evdet did not write, --overwrite replaces only evdet's own outputs, bad values exit 2 with one line."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
from evdet.apps import demo_video as demo_app
from evdet.apps import detect as detect_app
from evdet.apps import export as export_app
from evdet.apps import generate_hdf5 as convert_app

from evdet.inference.checkpoint import CheckpointInfo, save_detector_checkpoint
from evdet.inference.model_config import ModelConfig, VanillaConfig, build_detector
from evdet.simulation import make_synthetic_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("policy")
    make_synthetic_dataset(root / "ds", preset="tiny", num_train=1, num_val=2, num_test=0, duration_s=0.3)
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="Vanilla_VGG", vanilla=VanillaConfig(base=4, cout=8))
    classes = ("car", "pedestrian", "two wheeler")
    info = CheckpointInfo(classes=classes, label_map=dict(enumerate(classes)), representation="histo",
                          representation_params={}, delta_t=50_000, num_tbins=2, in_channels=2,
                          sensor_size=(96, 128), network_size=(48, 64), score_thresh=0.0, nms_thresh=0.5,
                          max_detections=5, model_config=dataclasses.asdict(cfg), stored_size=(96, 128))
    save_detector_checkpoint(root / "model.ckpt", build_detector(cfg, 2, 3), info)
    return root


@pytest.fixture
def work(base, tmp_path):
    shutil.copytree(base, tmp_path / "w")
    w = tmp_path / "w"
    return w, w / "model.ckpt", sorted((w / "ds" / "val").glob("*_td.dat"))


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_demo_never_replaces_an_input_or_a_foreign_folder(work, capsys):
    w, ckpt, recs = work
    mine = w / "mydir"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep me")
    before = _snapshot(w / "ds")
    cases = [["-o", str(mine)],  # before: the folder was deleted and replaced by PNG frames
             ["-o", str(recs[0]), "--format", "png"],  # before: the recording became a folder of PNGs
             ["-o", str(recs[0])],  # a .dat suffix is no video format
             ["-o", str(w / "ds" / "val")],
             ["-o", str(w / "x.avi")],  # before: a PNG folder named x.avi
             ["-o", str(w / "x.avi"), "--format", "png"],  # a PNG folder named like a video, still
             ["-o", str(w / "x.mp4"), "--format", "png"]]
    for extra in cases:
        assert demo_app.main([str(ckpt), str(recs[0]), *extra, "--max-duration", "0.1"]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("evdet-demo-video: error:") and err.count("\n") == 1, err
    assert (mine / "precious.txt").read_text() == "keep me" and sorted(p.name for p in mine.iterdir()) == [
        "precious.txt"]
    assert _snapshot(w / "ds") == before and not (w / "x.avi").exists()
    out = w / "v.mp4"
    assert demo_app.main([str(ckpt), str(recs[0]), "-o", str(out), "--max-duration", "0.1"]) == 0
    assert demo_app.main([str(ckpt), str(recs[0]), "-o", str(out), "--max-duration", "0.1"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert demo_app.main([str(ckpt), str(recs[0]), "-o", str(out), "--max-duration", "0.1",
                          "--overwrite"]) == 0
    capsys.readouterr()
    for extra, why in ((["--scale", "1000"], "at most 8192 per side"), (["--fps", "nan"], "finite number"),
                       (["--fps", "1e9"], "give 0.01 to 1000"), (["-o", str(w / "ds" / "val" / "v.mp4")],
                                                                 "lies inside the input folder")):
        # before: a cv2 out-of-memory traceback, NaN caught after rendering, an mp4 at 1e9 fps
        assert demo_app.main([str(ckpt), str(w / "ds" / "val"), "-o", str(w / "big.mp4"), *extra,
                              "--max-duration", "0.05"]) == 2, extra
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1, err
    assert demo_app.main([str(ckpt), str(w / "ds" / "val"), "-o", str(w / "both.mp4"),
                          "--max-duration", "0.05"]) == 0  # a folder: its recordings, side by side
    frames = ["-o", str(w / "frames"), "--max-duration", "0.1"]
    assert demo_app.main([str(ckpt), str(recs[0]), *frames]) == 0
    (w / "frames" / "notes.txt").write_text("my annotation")  # before: deleted with the old frames
    assert demo_app.main([str(ckpt), str(recs[0]), *frames, "--overwrite"]) == 2
    assert "notes.txt was not written by evdet" in capsys.readouterr().err
    (w / "frames" / "notes.txt").unlink()
    assert demo_app.main([str(ckpt), str(recs[0]), *frames, "--overwrite"]) == 0


def test_detect_never_overwrites_ground_truth_and_validates_decoding(work, capsys):
    w, ckpt, recs = work
    val = w / "ds" / "val"
    before = _snapshot(val)
    for out in (val, val / "dets", w / "ds"):  # before (-o ds/val): the GT _bbox.npy became detections
        assert detect_app.main([str(ckpt), str(val), "-o", str(out)]) == 2
        assert "input" in capsys.readouterr().err
    (w / "afile").write_text("x")
    assert detect_app.main([str(ckpt), str(val), "-o", str(w / "afile")]) == 2  # before: traceback
    assert "is an existing file" in capsys.readouterr().err
    for option, value, what in (("--score-thresh", "nan", "score_thresh"), ("--score-thresh", "2", "score"),
                                ("--nms-thresh", "2", "nms_thresh"), ("--nms-thresh", "nan", "nms_thresh"),
                                ("--max-detections", "0", "max_detections")):
        # before: NaN or 2 gave empty detection files and exit 0
        assert detect_app.main([str(ckpt), str(val), "-o", str(w / "dt"), option, value]) == 2
        assert what in capsys.readouterr().err
    assert not (w / "dt").exists()
    assert _snapshot(val) == before
    foreign = w / "mixed"
    foreign.mkdir()
    gt = recs[0].name.replace("_td.dat", "_bbox.npy")
    shutil.copy(val / gt, foreign / gt)
    for extra in ([], ["--overwrite"]):
        assert detect_app.main([str(ckpt), str(val), "-o", str(foreign), *extra]) == 2
        assert "not written by evdet" in capsys.readouterr().err
    assert (foreign / gt).read_bytes() == (val / gt).read_bytes()
    # another evdet command's output (the converter's copy of the ground truth, a demo's folder) is not
    # replaced either, even with --overwrite
    from evdet.io.output_paths import record_output

    converted = w / "converted"
    converted.mkdir()
    shutil.copy(val / gt, converted / gt)
    record_output(converted / gt, "evdet-generate-hdf5")
    assert detect_app.main([str(ckpt), str(recs[0]), "-o", str(converted), "--overwrite"]) == 2
    assert "was written by evdet-generate-hdf5: evdet-detect does not replace it" in capsys.readouterr().err
    assert (converted / gt).read_bytes() == (val / gt).read_bytes()
    (w / "run" / "checkpoints").mkdir(parents=True)
    record_output(w / "run" / "checkpoints", "evdet-train")
    assert demo_app.main([str(ckpt), str(recs[0]), "-o", str(w / "run" / "checkpoints"), "--overwrite",
                          "--max-duration", "0.1"]) == 2
    assert "evdet-demo-video does not replace it" in capsys.readouterr().err
    assert detect_app.main([str(ckpt), str(val), "-o", str(w / "dt")]) == 0
    assert detect_app.main([str(ckpt), str(val), "-o", str(w / "dt")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert detect_app.main([str(ckpt), str(val), "-o", str(w / "dt"), "--overwrite"]) == 0


def test_export_refuses_to_overwrite_and_bad_names(work, capsys):
    w, ckpt, _ = work
    assert export_app.main([str(ckpt), str(w / "exp")]) == 0
    pt = (w / "exp" / "model.pt").read_bytes()
    assert export_app.main([str(ckpt), str(w / "exp")]) == 2  # before: silently overwritten
    assert "--overwrite" in capsys.readouterr().err
    assert (w / "exp" / "model.pt").read_bytes() == pt
    assert export_app.main([str(ckpt), str(w / "exp"), "--overwrite"]) == 0
    (w / "afile").write_text("x")
    (w / "theirs").mkdir()
    (w / "theirs" / "model.json").write_text("{}")
    for args, what in (([str(w / "afile")], "is an existing file"),  # before: FileExistsError traceback
                       ([str(w / "theirs"), "--overwrite"], "not written by evdet"),
                       ([str(w / "e2"), "--name", ""], "plain file stem"),  # before: hidden .pt/.json
                       ([str(w / "e2"), "--name", "../x"], "plain file stem"),
                       ([str(w)], "contains the input")):
        assert export_app.main([str(ckpt), *args]) == 2, args
        assert what in capsys.readouterr().err
    assert (w / "theirs" / "model.json").read_text() == "{}"


def test_generate_hdf5_policy_and_exit_codes(work, capsys):
    w, _, _ = work
    ds = w / "ds"
    assert convert_app.main([str(ds), str(ds), "--no-progress"]) == 2  # before: converted into the input
    assert "contains the input" in capsys.readouterr().err
    (w / "afile").write_text("x")
    assert convert_app.main([str(ds), str(w / "afile"), "--no-progress"]) == 2  # before: traceback
    assert "is an existing file" in capsys.readouterr().err
    for extra, what in ((["--downsampling-factor", "9"], "too large"),  # before: ZeroDivisionError
                        (["--param", "max_incr_per_pixel=nan"], "max_incr_per_pixel"),  # before: numpy's
                        (["--param", "max_incr_per_pixel=abc"], "max_incr_per_pixel")):  # ufunc error
        assert convert_app.main([str(ds), str(w / "h5"), "--no-progress", *extra]) == 2
        assert what in capsys.readouterr().err
    assert convert_app.main([str(ds), str(w / "h5"), "--no-progress"]) == 0
    assert convert_app.main([str(ds), str(w / "h5"), "--no-progress", "--delta-t", "25000"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert convert_app.main([str(ds), str(w / "h5"), "--no-progress", "--delta-t", "25000",
                             "--overwrite"]) == 0
    (ds / "val" / "broken_td.dat").write_bytes(b"")
    assert convert_app.main([str(ds), str(w / "h6"), "--no-progress"]) == 2  # before: traceback, exit 1
    err = capsys.readouterr().err
    assert "1 of 4 recordings failed" in err and "broken_td.dat" in err
    assert len(list((w / "h6").rglob("*.h5"))) == 3


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_python_drops_still_stops_the_conversion(work, capsys, monkeypatch):
    # before: a Ctrl-C arriving while h5py freed an object was printed as "Exception ignored" and the
    # conversion ran on to exit 0 (about one Ctrl-C in three)
    import signal

    from evdet.io.atomic import is_temporary
    from evdet.preprocessing.builder import TensorBuilder

    class CtrlCWhileFreed:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)

    w, _, _ = work
    add, calls = TensorBuilder.add, []

    def add_then_ctrl_c(self, events):
        calls.append(1)
        if len(calls) == 2:  # in the first recording's first frames, read in pieces of 50 events
            CtrlCWhileFreed()
        return add(self, events)

    monkeypatch.setattr(TensorBuilder, "add", add_then_ctrl_c)
    assert convert_app.main([str(w / "ds"), str(w / "h5"), "--no-progress", "--piece-events", "50"]) == 130
    assert "evdet-generate-hdf5: interrupted" in capsys.readouterr().err
    written = sorted(p for p in (w / "h5").rglob("*") if p.is_file())
    assert not any(is_temporary(p) for p in written)
    assert not [p for p in written if p.suffix == ".h5"]  # it stopped at once
    monkeypatch.setattr(TensorBuilder, "add", add)
    assert convert_app.main([str(w / "ds"), str(w / "h5"), "--no-progress"]) == 0  # resumes
    assert len(list((w / "h5").rglob("*.h5"))) == 3


def test_detect_raw_equals_detect_hdf5(work):
    """evdet-detect on a raw recording and on its HDF5 conversion gives the same detections (one
    preprocessing whatever the source)."""
    from evdet.inference.checkpoint import load_detector
    from evdet.inference.streaming import detect_recording
    from evdet.preprocessing.convert import generate_hdf5

    w, ckpt, recs = work
    (h5,) = generate_hdf5(recs[0], w / "h5", progress=False)
    detector, info = load_detector(ckpt)
    raw = detect_recording(detector, info, recs[0], score_thresh=0.0)
    conv = detect_recording(detector, info, h5, score_thresh=0.0)
    assert raw.size > 0
    np.testing.assert_array_equal(raw, conv)


def test_model_trained_on_downsampled_tensors_refuses_full_resolution_inputs(work):
    from evdet.inference.checkpoint import load_detector
    from evdet.inference.streaming import check_recordings

    w, ckpt, recs = work
    _, info = load_detector(ckpt)
    check_recordings(info, recs)
    half = dataclasses.replace(info, stored_size=(48, 64))  # trained on HDF5 converted with d = 1
    with pytest.raises(ValueError, match=r"_td\.dat: downsampling factor .* = 0 but the model expects 1"):
        check_recordings(half, recs)
