from __future__ import annotations

import pytest
import torch

from evdet.inference.checkpoint import CheckpointInfo, save_detector_checkpoint
from evdet.inference.config_dict import config_to_dict
from evdet.inference.model_config import AnchorHeadConfig, ModelConfig, VanillaConfig, build_detector
from evdet.inference.pretrained import load_pretrained, transfer_weights

SRC = ("car", "pedestrian", "two wheeler")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    torch.manual_seed(0)
    mc = ModelConfig(vanilla=VanillaConfig(base=4, cout=8), anchor=AnchorHeadConfig(anchor_size=16.0))
    det = build_detector(mc, 2, len(SRC))
    with torch.no_grad():  # make the class logits distinct per class (not just the prior)
        for p in det.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    info = CheckpointInfo(classes=SRC, label_map=dict(enumerate(SRC)), representation="histo",
                          representation_params={}, delta_t=50_000, num_tbins=2, in_channels=2,
                          sensor_size=(32, 48), network_size=(32, 48), score_thresh=0.0, nms_thresh=0.5,
                          max_detections=50, model_config=config_to_dict(mc))
    path = tmp_path_factory.mktemp("pre") / "src.ckpt"
    save_detector_checkpoint(path, det, info)
    return det.eval(), path


def outputs(det, x):
    det.eval()
    det.reset_all()
    with torch.no_grad():
        return det(x)  # loc [T*B, A, 4], cls [T*B, A, C+1]


def test_reordered_classes_give_identical_detections(source):
    src, path = source
    new, info = load_pretrained(path, ["two wheeler", "car", "pedestrian"])
    assert info.classes == ("two wheeler", "car", "pedestrian")
    x = torch.rand(2, 1, 2, 32, 48, generator=torch.Generator().manual_seed(1))
    src.reset_all()
    new.eval().reset_all()
    a = src.get_boxes(x, score_thresh=0.0, max_detections=50)
    b = new.get_boxes(x, score_thresh=0.0, max_detections=50)
    remap = torch.tensor([1.0, 2.0, 0.0])  # source class index -> new index
    for t in range(2):
        da, db = a[t][0], b[t][0]
        assert da.shape == db.shape and len(da) > 0
        torch.testing.assert_close(db[:, :5], da[:, :5])
        assert torch.equal(db[:, 5], remap[da[:, 5].long()])


@pytest.mark.parametrize("classes", [["pedestrian", "car"], ["car", "pedestrian", "two wheeler", "bus"]])
def test_subset_and_superset_keep_shared_logits_and_boxes(source, classes):
    src, path = source
    new, _ = load_pretrained(path, classes)
    x = torch.rand(2, 2, 2, 32, 48, generator=torch.Generator().manual_seed(2))
    loc_a, cls_a = outputs(src, x)
    loc_b, cls_b = outputs(new, x)
    assert torch.equal(loc_a, loc_b)  # every non-class weight transferred: identical boxes
    assert torch.equal(cls_a[..., -1], cls_b[..., -1])  # background logit (last)
    for j, name in enumerate(classes):
        if name in SRC:
            assert torch.equal(cls_b[..., j], cls_a[..., SRC.index(name)]), name
    # shared-class scores are the source's renormalised over the new class set (softmax head)
    shared = [c for c in classes if c in SRC]
    idx_b = [classes.index(c) for c in shared]
    probs_b = cls_b.softmax(-1)[..., idx_b]
    logits_new_set = torch.cat([cls_a[..., [SRC.index(c) for c in shared]], cls_a[..., -1:]], -1)
    extra = [classes.index(c) for c in classes if c not in SRC]
    if extra:
        logits_new_set = torch.cat([logits_new_set, cls_b[..., extra]], -1)
    expected = logits_new_set.softmax(-1)[..., :len(shared)]
    torch.testing.assert_close(probs_b, expected, rtol=1e-5, atol=1e-7)


def test_new_class_keeps_the_prior(source):
    _, path = source
    mc = ModelConfig(vanilla=VanillaConfig(base=4, cout=8), anchor=AnchorHeadConfig(anchor_size=16.0))
    fresh = build_detector(mc, 2, 4)
    new, _ = load_pretrained(path, ["car", "pedestrian", "two wheeler", "bus"])
    keys = [k for k, v in new.state_dict().items() if "cls" in k and v.shape[0] % 5 == 0]
    assert keys
    for k in keys:
        a = new.state_dict()[k].view(-1, 5, *new.state_dict()[k].shape[1:])[:, 3]  # "bus": new class
        b = fresh.state_dict()[k].view(-1, 5, *fresh.state_dict()[k].shape[1:])[:, 3]
        if k.endswith("bias"):
            assert torch.equal(a, b)


def test_bad_arguments(source, tmp_path):
    _, path = source
    with pytest.raises(ValueError, match="empty"):
        load_pretrained(path, [])
    with pytest.raises(ValueError, match="repeated"):
        load_pretrained(path, ["car", "car"])
    with pytest.raises(FileNotFoundError):
        load_pretrained(tmp_path / "none.ckpt", ["car"])
    det = build_detector(ModelConfig(vanilla=VanillaConfig(base=4, cout=8)), 2, 2)
    with pytest.raises(ValueError, match="2 new classes|new classes"):
        transfer_weights(det, {}, ["a"], ["a", "b", "c"])
