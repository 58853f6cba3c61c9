from __future__ import annotations

import dataclasses
import os
import time

import pytest
import torch
from fake_detector import FakeDetector, fake_config, register_fake

from evdet.inference.checkpoint import (
    CheckpointInfo,
    atomic_torch_save,
    find_latest_checkpoint,
    load_checkpoint_dict,
    load_detector,
    load_weights,
    save_detector_checkpoint,
    with_class_score_only,
)
from evdet.inference.config_dict import config_to_dict
from evdet.inference.model_config import ModelConfig, VanillaConfig, build_detector


@pytest.fixture
def fake_head(monkeypatch):
    return register_fake(monkeypatch)


def make_info(head: str = "anchor", classes=("car", "pedestrian"), cout: int = 256) -> CheckpointInfo:
    mc = (fake_config(4) if head == "fake"
          else ModelConfig(head=head, vanilla=VanillaConfig(base=4, cout=cout)))
    return CheckpointInfo(
        classes=tuple(classes),
        label_map={0: "car", 1: "pedestrian", 2: "two wheeler"},
        representation="histo",
        representation_params={"max_incr_per_pixel": 5},
        delta_t=50_000,
        num_tbins=4,
        in_channels=2,
        sensor_size=(96, 128),
        network_size=(48, 64),
        score_thresh=mc.score_thresh,
        nms_thresh=mc.nms_thresh,
        max_detections=mc.max_detections,
        model_config=config_to_dict(mc),
    )


def test_info_round_trip_through_weights_only_load(tmp_path):
    info = make_info()
    path = tmp_path / "info.pt"
    torch.save({"info": info.to_dict()}, path)
    loaded = torch.load(path, weights_only=True)
    back = CheckpointInfo.from_dict(loaded["info"])
    assert back == info
    assert back.config == ModelConfig(vanilla=VanillaConfig(base=4))


def test_info_rejects_missing_field_and_bad_sizes():
    d = make_info().to_dict()
    del d["delta_t"]
    with pytest.raises(ValueError, match="delta_t"):
        CheckpointInfo.from_dict(d)
    d = make_info().to_dict()
    d["network_size"] = [0, 64]
    with pytest.raises(ValueError, match="network_size"):
        CheckpointInfo.from_dict(d)


def test_load_detector_round_trip(tmp_path, fake_head):
    info = make_info(head=fake_head)
    det = FakeDetector(2, 2, width=4)
    path = tmp_path / "m.ckpt"
    save_detector_checkpoint(path, det, info)
    loaded, info2 = load_detector(path)
    assert info2 == info
    assert not loaded.training
    for k, v in det.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    x = torch.rand(3, 2, 2, 8, 8)
    det.eval()
    a = det.get_boxes(x)
    b = loaded.get_boxes(x)
    assert torch.equal(a[2][1], b[2][1])


def test_load_detector_errors(tmp_path, fake_head):
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        load_detector(tmp_path / "nope.ckpt")
    info = make_info(head=fake_head)
    path = tmp_path / "m.ckpt"
    save_detector_checkpoint(path, FakeDetector(2, 2, width=4), info)
    data = path.read_bytes()
    trunc = tmp_path / "trunc.ckpt"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="trunc.ckpt"):
        load_detector(trunc)
    # weights of another shape than the info says
    wrong = tmp_path / "wrong.ckpt"
    save_detector_checkpoint(wrong, FakeDetector(2, 3, width=4), info)
    with pytest.raises(ValueError, match=r"wrong.ckpt: weights do not match its model config: \d+ of another "
                                         r"shape \(first [\w.]+: \(\d+, .*\) in the file, \(\d+, .*\) in the "
                                         r"model\)") as err:
        load_detector(wrong)
    assert "\n" not in str(err.value)  # one line, not torch's list of every tensor
    # a checkpoint holding code (a pickled class instance) is refused by weights_only loading
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"info": ModelConfig()}}, evil)
    with pytest.raises(ValueError, match="evil.ckpt"):
        load_checkpoint_dict(evil)
    # a folder where the file was expected is said to be one
    (tmp_path / "run.ckpt").mkdir()
    with pytest.raises(FileNotFoundError, match="run.ckpt is a directory, not a checkpoint file"):
        load_detector(tmp_path / "run.ckpt")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_weights_of_a_diverged_run_are_refused_naming_the_file_and_tensor(tmp_path, fake_head, value):
    det = FakeDetector(2, 2, width=4)
    name, param = next(iter(det.named_parameters()))
    with torch.no_grad():
        param.view(-1)[1] = value
    path = tmp_path / "diverged.ckpt"
    save_detector_checkpoint(path, det, make_info(head=fake_head))
    with pytest.raises(ValueError, match=rf"diverged.ckpt: 1 weight tensor\(s\) hold NaN or inf values, the "
                                         rf"first '{name}'"):
        load_detector(path)


def test_atomic_save_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "a.ckpt"
    atomic_torch_save({"x": torch.ones(3)}, path)
    with pytest.raises(Exception):  # noqa: B017 - pickling a lambda fails inside torch.save
        atomic_torch_save({"x": lambda: 1}, path)
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(3))
    assert sorted(os.listdir(tmp_path)) == ["a.ckpt"]


def test_find_latest_checkpoint(tmp_path):
    assert find_latest_checkpoint(tmp_path / "missing") is None
    assert find_latest_checkpoint(tmp_path) is None
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    atomic_torch_save({}, ck / "epoch=0.ckpt")
    old = time.time() - 100
    os.utime(ck / "epoch=0.ckpt", (old, old))
    atomic_torch_save({}, ck / "last.ckpt")
    (ck / ".last.ckpt.evdet-tmp-1-abc.ckpt").write_bytes(b"partial")
    assert find_latest_checkpoint(tmp_path) == ck / "last.ckpt"


def test_with_class_score_only_changes_the_yolox_score_mode_only():
    info = make_info(head="yolox", cout=8)
    on = with_class_score_only(info, True)
    assert on.config.yolox.class_score_only and not info.config.yolox.class_score_only
    assert dataclasses.replace(on.config, yolox=info.config.yolox) == info.config
    assert with_class_score_only(on, False) == info
    assert dataclasses.replace(on, model_config=info.model_config) == info  # nothing else changed
    with pytest.raises(ValueError, match="m.ckpt: .* only defined for yolox-head checkpoints; this one has "
                                         "head 'anchor'"):
        with_class_score_only(make_info(head="anchor", cout=8), True, "m.ckpt")


def test_load_detector_class_score_only(tmp_path):
    torch.manual_seed(0)
    info = make_info(head="yolox", cout=8)
    path = tmp_path / "y.ckpt"
    save_detector_checkpoint(path, build_detector(info.config, 2, 2), info)
    plain, info_plain = load_detector(path)
    cls_only, info_cls = load_detector(path, class_score_only=True)
    assert info_plain == info and info_cls.config.yolox.class_score_only
    assert not plain.head.class_score_only and cls_only.head.class_score_only
    x = torch.rand(2, 1, 2, 48, 64)
    a = plain.get_boxes(x, score_thresh=0.0, nms_thresh=0.5, max_detections=1000)
    b = cls_only.get_boxes(x, score_thresh=0.0, nms_thresh=0.5, max_detections=1000)
    for da, db in zip(a, b, strict=True):
        da, db = da[0], db[0]
        assert da.shape == db.shape and da.shape[0] > 0
        # same boxes and classes (ordered by the written score); class probability >= the product
        sa = {tuple(r[:4] + r[5:]): r[4] for r in da.tolist()}
        sb = {tuple(r[:4] + r[5:]): r[4] for r in db.tolist()}
        assert sa.keys() == sb.keys() and len(sa) == da.shape[0]
        assert all(sb[k] >= sa[k] for k in sa) and any(sb[k] > sa[k] for k in sa)
        assert torch.all(db[:-1, 4] >= db[1:, 4])
    anchor = make_info(cout=8)
    save_detector_checkpoint(tmp_path / "a.ckpt", build_detector(anchor.config, 2, 2), anchor)
    with pytest.raises(ValueError, match="a.ckpt.*head 'anchor'"):
        load_detector(tmp_path / "a.ckpt", class_score_only=True)


def test_files_that_are_no_checkpoint_get_one_line_saying_what_they_are(tmp_path, fake_head):
    # before: "KeyError: 544502645" for a text file, "EOFError: " for an empty one, torch's multi-line
    # advice to load a file holding os.system with weights_only=False, 500 characters of miniz internals
    import os
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    path = tmp_path / "m.ckpt"
    save_detector_checkpoint(path, FakeDetector(2, 2, width=4), make_info(head=fake_head))
    files = {"empty.ckpt": b"", "text.ckpt": b"just text\n", "trunc.ckpt": path.read_bytes()[:2000],
             "pickle.ckpt": pickle.dumps({"x": [1, 2, 3]})}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"state_dict": Evil()}, tmp_path / "evil.ckpt")
    expect = {"empty.ckpt": "is empty", "text.ckpt": "is not a PyTorch checkpoint",
              "trunc.ckpt": "is truncated or corrupt", "pickle.ckpt": "is not a PyTorch checkpoint",
              "evil.ckpt": r"holds Python objects other than weights \(posix.system\); evdet loads weights"}
    for name, why in expect.items():
        with pytest.raises(ValueError, match=f"{name} {why}") as info:
            load_checkpoint_dict(tmp_path / name)
        msg = str(info.value)
        assert "\n" not in msg and "weights_only=False" not in msg and len(msg) < 300, msg


def test_load_weights_names_what_is_missing_unexpected_or_resized():
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    state = dict(net.state_dict())
    load_weights(net, state, "ok")
    del state["1.bias"]
    state["2.weight"] = torch.zeros(1)
    state["0.weight"] = torch.zeros(4, 2)
    with pytest.raises(ValueError) as err:
        load_weights(net, state, "m.ckpt")
    assert str(err.value) == ("m.ckpt: 1 missing (first 1.bias); 1 unexpected (first 2.weight); 1 of another "
                              "shape (first 0.weight: (4, 2) in the file, (3, 2) in the model)")
