import json
from typing import Optional  # noqa: UP035 (TorchScript needs Optional for attributes)

import pytest
import torch
from torch import Tensor, nn

from evdet.export.torchscript import export_torchscript, load_exported, preprocessing_json
from evdet.inference.checkpoint import CheckpointInfo


class TinyRecurrentDetector(nn.Module):
    """A scriptable stand-in with the detector contract: recurrent state, detect, reset_all, get_boxes."""

    state: Optional[Tensor]  # noqa: UP045

    def __init__(self, in_channels: int = 2, num_classes: int = 2, offset: float = 0.0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4 + num_classes, 3, padding=1)
        self.num_classes = num_classes
        self.offset = offset  # a non-zero offset makes get_boxes disagree with detect (failing export)
        self.state = None

    @torch.jit.export
    def detect(self, x: Tensor, score_thresh: float, nms_thresh: float, max_detections: int) -> list[Tensor]:
        out: list[Tensor] = []
        for t in range(x.shape[0]):
            f = self.conv(x[t])  # [B, 4 + C, H, W]
            state = self.state
            if state is None or state.shape != f.shape:
                state = torch.zeros_like(f)
            state = 0.5 * state + f
            self.state = state
            pooled = state.mean(dim=(2, 3))  # [B, 4 + C]
            w, h = float(x.shape[4]), float(x.shape[3])
            for b in range(x.shape[1]):
                p = torch.sigmoid(pooled[b])
                boxes = torch.stack([p[0] * w / 2, p[1] * h / 2, w / 2 + p[2] * w / 2, h / 2 + p[3] * h / 2])
                scores = p[4:]
                keep = scores > score_thresh
                cls = torch.arange(self.num_classes, dtype=torch.float32)[keep]
                rows = torch.cat([boxes.unsqueeze(0).expand(int(cls.shape[0]), 4), scores[keep, None],
                                  cls[:, None]], dim=1)[:max_detections]
                out.append(rows)
        return out

    @torch.jit.export
    def reset_all(self) -> None:
        self.state = None

    def get_boxes(self, x, score_thresh=0.1, nms_thresh=0.5, max_detections=100):
        flat = self.detect(x, score_thresh, nms_thresh, max_detections)
        b = x.shape[1]
        return [[f + self.offset for f in flat[t * b:(t + 1) * b]] for t in range(x.shape[0])]


def _info(**kw):
    values = dict(classes=("car", "pedestrian"), label_map={0: "car", 1: "pedestrian"},
                  representation="histo", representation_params={}, delta_t=50_000, num_tbins=3,
                  in_channels=2, sensor_size=(96, 128),
                  network_size=(48, 64), score_thresh=0.3, nms_thresh=0.5, max_detections=10,
                  model_config={"backbone": "tiny"})
    values.update(kw)
    return CheckpointInfo(**values)


def test_export_writes_checked_model_and_json(tmp_path):
    torch.manual_seed(0)
    det = TinyRecurrentDetector()
    pt, js = export_torchscript(det, tmp_path / "out", _info())
    assert pt.name == "model.pt" and js.name == "model.json"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.json", "model.pt"]
    meta = json.loads(js.read_text())
    assert meta["classes"] == ["car", "pedestrian"] and meta["label_map"] == {"0": "car", "1": "pedestrian"}
    assert meta["preprocessing"]["delta_t"] == 50_000 and meta["preprocessing"]["representation"] == "histo"
    assert meta["preprocessing"]["params"]  # registry defaults filled in (e.g. max_incr_per_pixel)
    assert meta["preprocessing"]["box_scale"] == {"x": 2.0, "y": 2.0}
    assert meta["score_thresh"] == 0.3 and meta["nms_thresh"] == 0.5 and meta["max_detections"] == 10
    assert meta["checks"]["max_abs_diff"] <= 1e-5 and meta["checks"]["boxes_compared"] > 0

    module, meta2 = load_exported(pt)
    assert meta2 == meta
    x = torch.rand(3, 2, 2, 48, 64)
    det.reset_all()
    ref = [f for row in det.get_boxes(x, 0.0, 0.5, 10) for f in row]
    got = module(x, 0.0)
    assert len(got) == 6 and all(g.shape[1] == 6 for g in got)
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=0)
    second = module(x, 0.0)  # state carried over: different output
    assert any(not torch.equal(a, b) for a, b in zip(got, second, strict=True))
    module.reset_all()
    for a, b in zip(module(x, 0.0), got, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_failed_check_leaves_nothing(tmp_path):
    det = TinyRecurrentDetector(offset=1e-3)
    with pytest.raises(RuntimeError, match="scripted vs eager differ"):
        export_torchscript(det, tmp_path, _info())
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="example_input"):
        export_torchscript(TinyRecurrentDetector(), tmp_path, _info(),
                           example_input=torch.zeros(3, 1, 5, 8, 8))
    with pytest.raises(TypeError, match="detect"):
        export_torchscript(nn.Conv2d(2, 2, 1), tmp_path, _info())
    with pytest.raises(FileNotFoundError):
        load_exported(tmp_path / "missing.pt")


def test_preprocessing_json_keeps_custom_representation():
    pre = preprocessing_json(_info(representation="my_repr", representation_params={"k": (1, 2)}))
    assert pre["representation"] == "my_repr" and pre["params"] == {"k": [1, 2]}


@pytest.mark.parametrize("backbone", ["Vanilla", "Vanilla_VGG", "Vanilla_VGGRU"])
def test_export_real_detectors_all_backbones(tmp_path, backbone):
    from evdet.inference.model_config import ModelConfig, VanillaConfig, build_detector

    torch.manual_seed(0)
    cfg = ModelConfig(backbone=backbone, vanilla=VanillaConfig(base=4, cout=8))
    det = build_detector(cfg, in_channels=2, num_classes=2)
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
