"""evdet.export.onnx: the forward with explicit state, checked with ONNX Runtime, described in JSON."""

import json

import numpy as np
import pytest
import torch
from detectors import anchor_detector, detr_detector, rtdetr_detector, yolox_detector

from evdet.export.onnx import export_onnx, load_onnx
from evdet.inference.checkpoint import CheckpointInfo

pytest.importorskip("onnxruntime")


def _info(**kw):
    values = dict(classes=("car", "pedestrian"), label_map={0: "car", 1: "pedestrian"},
                  representation="histo", representation_params={}, delta_t=50_000, num_tbins=2,
                  in_channels=2, sensor_size=(96, 128), network_size=(48, 64), score_thresh=0.1,
                  nms_thresh=0.5, max_detections=10, model_config={"head": "anchor"})
    values.update(kw)
    return CheckpointInfo(**values)


@pytest.mark.parametrize("backbone", ["Vanilla", "Vanilla_VGG", "Vanilla_VGGRU"])
@pytest.mark.parametrize("build", [anchor_detector, detr_detector, yolox_detector, rtdetr_detector])
def test_every_backbone_and_head_exports_and_matches_eager(tmp_path, backbone, build):
    torch.manual_seed(0)
    det = build(2, 2, 4, 8, backbone=backbone)
    onnx_path, json_path = export_onnx(det, tmp_path, _info())
    assert sorted(p.name for p in tmp_path.iterdir()) == [".evdet-outputs", "model.json", "model.onnx"]
    meta = json.loads(json_path.read_text())
    assert meta["format"] == "evdet-onnx" and meta["checks"]["max_abs_diff"] <= 1e-4
    assert set(meta["checks"]["diffs"]) == {"chunk 0", "chunk 1 after resetting column 0", "batch size 3"}
    names = [i["name"] for i in meta["inputs"]]
    n_state = 10 if backbone != "Vanilla_VGGRU" else 5  # 5 levels x (h, c) or (h)
    assert names == ["x"] + [f"state_in.{i}" for i in range(n_state)]
    outs = [o["name"] for o in meta["outputs"]]
    assert outs[-n_state:] == [f"state_out.{i}" for i in range(n_state)]
    assert all(o["meaning"] for o in meta["outputs"])
    assert meta["preprocessing"]["delta_t"] == 50_000 and "zero state_in" in meta["reset"]


def test_streaming_with_the_session_equals_eager_stream(tmp_path):
    """A user's loop: feed state_out back as state_in, reset one column by zeroing it, any batch size."""
    torch.manual_seed(0)
    det = anchor_detector(2, 2, 4, 8, base_anchor_size=16.0).eval()
    onnx_path, _ = export_onnx(det, tmp_path, _info())
    session, meta = load_onnx(onnx_path)
    shapes = [i["shape"] for i in meta["inputs"][1:]]
    b = 3
    state = [np.zeros([b] + s[1:], np.float32) for s in shapes]
    det.reset_all()
    gen = torch.Generator().manual_seed(3)
    for step in range(3):
        x = torch.rand(2, b, 2, 48, 64, generator=gen)
        if step == 2:  # column 1 starts a new recording
            det.reset(torch.tensor([1.0, 0.0, 1.0]))
            for s in state:
                s[1] = 0.0
        out = session.run(None, {"x": x.numpy(), **{f"state_in.{i}": s for i, s in enumerate(state)}})
        state = out[2:]
        assert out[0].shape[1] == len(meta["decoding"]["anchors_xyxy"])  # the anchors decode loc
        with torch.no_grad():
            loc, cls = det(x)
        np.testing.assert_allclose(out[0], loc.numpy(), atol=1e-4)
        np.testing.assert_allclose(out[1], cls.numpy(), atol=1e-4)


def test_bad_input_and_nothing_left_on_failure(tmp_path, monkeypatch):
    det = anchor_detector(2, 2, 4, 8)
    with pytest.raises(ValueError, match="B >= 2"):
        export_onnx(det, tmp_path, _info(), example_input=torch.zeros(2, 1, 2, 48, 64))
    for bad in (dict(num_tbins=0), dict(num_tbins=-2), dict(atol=float("nan")), dict(atol=float("inf")),
                dict(atol=-1.0)):
        with pytest.raises(ValueError, match="num_tbins must be >= 1|atol must be a finite number >= 0"):
            export_onnx(det, tmp_path / "bad", _info(), **bad)
    assert not (tmp_path / "bad").exists()  # refused before the output folder is made
    import evdet.export.onnx as onnx_mod

    def failing_check(*args, **kwargs):
        raise RuntimeError("ONNX check failed: forced")

    monkeypatch.setattr(onnx_mod, "check_onnx", failing_check)
    with pytest.raises(RuntimeError, match="forced"):
        export_onnx(det, tmp_path / "out", _info())
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(FileNotFoundError):
        load_onnx(tmp_path / "missing.onnx")
