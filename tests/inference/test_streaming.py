import numpy as np
import pytest
import torch

from evdet.inference.checkpoint import CheckpointInfo
from evdet.inference.model_config import ModelConfig, VanillaConfig, build_detector
from evdet.inference.streaming import (
    class_ids_for,
    detect_recording,
    detect_recordings,
)
from evdet.io.boxes import load_boxes
from evdet.io.dat import write_dat
from evdet.io.dtypes import BBOX_DTYPE, EVENT_DTYPE
from evdet.preprocessing import events_to_tensor

H, W, DT = 64, 64, 50_000


def _events(rng, n=4000, duration=10 * DT - 1):
    ev = np.zeros(n, EVENT_DTYPE)
    ev["x"] = rng.integers(0, W, n)
    ev["y"] = rng.integers(0, H, n)
    ev["p"] = rng.integers(0, 2, n)
    ev["t"] = np.sort(rng.integers(0, duration, n))
    ev["t"][-1] = duration
    return ev


def _info(**kw):
    values = dict(classes=("pedestrian", "car"), label_map={0: "car", 1: "pedestrian"},
                  representation="histo", representation_params={}, delta_t=DT, num_tbins=3, in_channels=2,
                  sensor_size=(H, W),
                  network_size=(H, W), score_thresh=0.0, nms_thresh=0.5, max_detections=20,
                  model_config={})
    values.update(kw)
    return CheckpointInfo(**values)


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    mc = ModelConfig(backbone="Vanilla_VGG", vanilla=VanillaConfig(base=4, cout=8))
    return build_detector(mc, 2, 2).eval()


def _reference(detector, events, info):
    """Whole recording in one pass (no chunking), converted by hand."""
    x = torch.from_numpy(events_to_tensor(events, "histo", 10, H, W, DT))[:, None]  # [T, 1, C, H, W]
    detector.reset_all()
    with torch.no_grad():
        dets = detector.get_boxes(x, score_thresh=0.0, nms_thresh=0.5, max_detections=20)
    rows, ids = [], class_ids_for(info)
    for k, row in enumerate(dets):
        for r in row[0].numpy():
            rows.append(((k + 1) * DT, r[0], r[1], r[2] - r[0], r[3] - r[1], ids[int(r[5])], r[4]))
    return np.array(rows)


def test_detect_recording_matches_unchunked_reference(tmp_path, rng, detector):
    ev = _events(rng)
    write_dat(tmp_path / "rec.dat", ev, H, W)
    info = _info()
    out = detect_recording(detector, info, tmp_path / "rec.dat")
    assert out.dtype == BBOX_DTYPE and out.size > 0
    assert set(np.unique(out["t"])) <= {(k + 1) * DT for k in range(10)}  # bin ends, no padded bins
    ref = _reference(detector, ev, info)
    got = np.stack([out[f] for f in ("t", "x", "y", "w", "h", "class_id", "class_confidence")], 1)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_batched_equals_one_by_one_and_files_written(tmp_path, rng, detector):
    for name, n in (("a", 2000), ("b", 1000)):
        duration = (4 if name == "b" else 6) * DT - 1
        write_dat(tmp_path / f"{name}.dat", _events(rng, n, duration=duration), H, W)
    info = _info()
    paths = [tmp_path / "a.dat", tmp_path / "b.dat"]
    together = detect_recordings(detector, info, paths, out_dir=tmp_path / "out", batch_size=2)
    alone = detect_recording(detector, info, paths[1])  # the shorter one: its column ends in padding
    np.testing.assert_array_equal(together[str(paths[1])], alone)
    assert alone.size > 0 and alone["t"].max() <= 4 * DT
    for p in paths:
        np.testing.assert_array_equal(load_boxes(tmp_path / "out" / f"{p.stem}_bbox.npy"), together[str(p)])
    assert together[str(paths[0])]["t"].max() == 6 * DT


def test_errors(tmp_path, rng, detector):
    with pytest.raises(FileNotFoundError, match="missing.dat"):
        detect_recording(detector, _info(), tmp_path / "missing.dat")
    (tmp_path / "x").mkdir()
    write_dat(tmp_path / "rec.dat", _events(rng, 100), H, W)
    write_dat(tmp_path / "x" / "rec.dat", _events(rng, 100), H, W)
    with pytest.raises(ValueError, match="'rec'"):
        detect_recordings(detector, _info(), [tmp_path / "rec.dat", tmp_path / "x" / "rec.dat"])


def test_class_ids_follow_label_map_names():
    assert class_ids_for(_info()).tolist() == [1, 0]


def test_a_recording_of_another_sensor_size_is_resized_with_a_warning(tmp_path, rng, detector):
    # before: resized to the network input without a word (aspect ratio changes included)
    write_dat(tmp_path / "big.dat", _events(rng, 100), H * 2, W * 3)
    with pytest.warns(UserWarning, match=rf"big\.dat: sensor {2 * H}x{3 * W} differs from the model's "
                                         rf"{H}x{W}: its frames are resized"):
        detect_recording(detector, _info(), tmp_path / "big.dat")
