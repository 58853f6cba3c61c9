import json

import pytest
import torch
from detectors import anchor_detector, detr_detector, rtdetr_detector, yolox_detector
from torch import nn

from evdet.export.metadata import preprocessing_json
from evdet.export.torchscript import export_torchscript, load_exported
from evdet.inference.checkpoint import CheckpointInfo
from evdet.models import RecurrentDetector


class OffsetDetector(RecurrentDetector):
    """A real detector whose eager get_boxes disagrees with its scripted detect (a failing export)."""

    def get_boxes(self, x, score_thresh=0.1, nms_thresh=0.5, max_detections=100):
        rows = super().get_boxes(x, score_thresh, nms_thresh, max_detections)
        return [[f + 1e-3 for f in row] for row in rows]


def _small(num_classes: int = 2) -> RecurrentDetector:
    torch.manual_seed(0)
    return anchor_detector(2, num_classes, 4, 8, base_anchor_size=16.0)


def _info(**kw):
    values = dict(classes=("car", "pedestrian"), label_map={0: "car", 1: "pedestrian"},
                  representation="histo", representation_params={}, delta_t=50_000, num_tbins=3,
                  in_channels=2, sensor_size=(96, 128),
                  network_size=(48, 64), score_thresh=0.3, nms_thresh=0.5, max_detections=10,
                  model_config={"backbone": "tiny"})
    values.update(kw)
    return CheckpointInfo(**values)


@pytest.mark.parametrize("atol", [float("nan"), float("inf"), -1e-5])
def test_a_tolerance_no_check_can_fail_is_refused(tmp_path, atol):
    """Against NaN or inf every comparison passes, so a broken export would be written as checked."""
    with pytest.raises(ValueError, match="atol must be a finite number >= 0"):
        export_torchscript(_small(), tmp_path / "out", _info(), atol=atol)
    assert not (tmp_path / "out").exists()


def test_export_writes_checked_model_and_json(tmp_path):
    det = _small()
    pt, js = export_torchscript(det, tmp_path / "out", _info(score_thresh=0.01))
    assert pt.name == "model.pt" and js.name == "model.json"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".evdet-outputs",  # the manifest
                                                                    "model.json", "model.pt"]
    meta = json.loads(js.read_text())
    assert meta["classes"] == ["car", "pedestrian"] and meta["label_map"] == {"0": "car", "1": "pedestrian"}
    assert meta["preprocessing"]["delta_t"] == 50_000 and meta["preprocessing"]["representation"] == "histo"
    assert meta["preprocessing"]["params"]  # registry defaults filled in (e.g. max_incr_per_pixel)
    assert meta["preprocessing"]["box_scale"] == {"x": 2.0, "y": 2.0}
    assert meta["score_thresh"] == 0.01 and meta["nms_thresh"] == 0.5 and meta["max_detections"] == 10
    assert "get_state() -> List[Tensor]" in meta["methods"] and meta["format"] == "evdet-torchscript"
    assert meta["checks"]["max_abs_diff"] <= 1e-5 and meta["checks"]["boxes_compared"] > 0

    module, meta2 = load_exported(pt)
    assert meta2 == meta
    x = torch.rand(3, 2, 2, 48, 64)
    det.eval().reset_all()
    ref = [f for row in det.get_boxes(x, 0.0, 0.5, 10) for f in row]
    got = module(x, 0.0)
    assert len(got) == 6 and all(g.shape[1] == 6 for g in got)
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=0)
    state = [s.clone() for s in module.get_state()]
    second = module(x, 0.0)  # state carried over: different output
    assert any(not torch.equal(a, b) for a, b in zip(got, second, strict=True))
    module.set_state(state)  # the explicit state replays the second chunk exactly
    for a, b in zip(module(x, 0.0), second, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    module.reset_all()
    for a, b in zip(module(x, 0.0), got, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_failed_check_leaves_nothing(tmp_path):
    base = _small()
    det = OffsetDetector(base.backbone, base.head)
    with pytest.raises(RuntimeError, match="scripted vs eager differ"):
        export_torchscript(det, tmp_path, _info())
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="example_input"):
        export_torchscript(_small(), tmp_path, _info(), example_input=torch.zeros(3, 1, 5, 8, 8))
    with pytest.raises(TypeError, match="detector contract"):
        export_torchscript(nn.Conv2d(2, 2, 1), tmp_path, _info())
    with pytest.raises(FileNotFoundError):
        load_exported(tmp_path / "missing.pt")
    import os

    bad = tmp_path / os.fsdecode(b"exp\xffz")  # before: pybind11's "incompatible function arguments"
    with pytest.raises(ValueError, match="is not valid UTF-8: TorchScript cannot save there"):
        export_torchscript(_small(), bad, _info())
    assert not bad.exists()


def test_preprocessing_json_keeps_custom_representation():
    pre = preprocessing_json(_info(representation="my_repr", representation_params={"k": (1, 2)}))
    assert pre["representation"] == "my_repr" and pre["params"] == {"k": [1, 2]}


@pytest.mark.parametrize("backbone", ["Vanilla", "Vanilla_VGG", "Vanilla_VGGRU"])
@pytest.mark.parametrize("build", [anchor_detector, detr_detector, yolox_detector, rtdetr_detector])
def test_export_real_detectors_all_backbones_and_heads(tmp_path, backbone, build):
    torch.manual_seed(0)
    det = build(2, 2, 4, 8, backbone=backbone)
    info = _info(num_tbins=2, network_size=(64, 64), sensor_size=(64, 64), score_thresh=0.05,
                 model_config={"backbone": backbone, "base": 4, "cout": 8})
    x = torch.rand(1, 1, 2, 64, 64) * (torch.rand(1, 1, 2, 64, 64) < 0.2)
    pt, js = export_torchscript(det, tmp_path, info, example_input=x)
    meta = json.loads(js.read_text())
    assert meta["checks"]["max_abs_diff"] <= 1e-5
    assert meta["checks"]["boxes_compared"] > 0  # the comparison covered real boxes
    assert "reset(mask_keep_memory: Tensor[B])" in meta["methods"]
    module, _ = load_exported(pt)
    with torch.jit.optimized_execution(False):  # skip seconds of profiling-executor compilation
        first = module(x, 0.0)
        module.reset(torch.zeros(1))  # a zero mask forgets the state like reset_all
        again = module(x, 0.0)
    for a, b in zip(again, first, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
