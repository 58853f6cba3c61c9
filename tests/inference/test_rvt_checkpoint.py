"""RVT checkpoints: model inferred from the weight shapes, mdl. keys mapped, classes/input of the dataset,
round trip evdet -> RVT layout -> evdet with identical outputs, load_pretrained on the RVT file itself, and
the errors of files that are not RVT checkpoints."""

from __future__ import annotations

import dataclasses
import sys
import types

import pytest
import torch

from evdet.inference.checkpoint import load_detector, save_detector_checkpoint
from evdet.inference.model_config import ModelConfig, RVTConfig, YoloxHeadConfig, build_detector
from evdet.inference.pretrained import load_pretrained
from evdet.inference.rvt_checkpoint import (
    evdet_state_dict_from_rvt,
    import_rvt_checkpoint,
    load_rvt_checkpoint,
    rvt_model_config,
    rvt_state_dict,
    save_rvt_checkpoint,
)
from evdet.io.output_paths import OutputPathError


def _rvt_detector(backbone="rvt-t", num_classes=2, split=1, seed=0, **kw):
    torch.manual_seed(seed)
    rvt = RVTConfig(partition_split_32=split, **kw.pop("rvt", {}))
    config = ModelConfig(backbone=backbone, head="yolox", rvt=rvt, yolox=YoloxHeadConfig(**kw))
    det = build_detector(config, 20, num_classes).eval()
    with torch.no_grad():  # objectness and classes away from their prior, so that boxes pass 0.1
        for name, p in det.named_parameters():
            if "obj_preds" in name or "cls_preds" in name:
                p.copy_(torch.randn_like(p) * (0.5 if name.endswith("bias") else 0.3))
    return det


def _lightning_like(path, detector, tmp_path):
    """RVT's file as Lightning writes it: mdl.* weights, a pickled OmegaConf-like config (its class in a
    module that no longer exists when the file is read), optimizer state, scheduler state with a function."""
    mod = types.ModuleType("fake_omegaconf_for_rvt")

    DictConfig = type("DictConfig", (), {"__module__": mod.__name__})
    mod.DictConfig = DictConfig
    sys.modules[mod.__name__] = mod
    try:
        cfg = DictConfig()
        cfg.content = {"model": {"backbone": {"embed_dim": 32}}}
        state = rvt_state_dict(detector)
        torch.save({"epoch": 3, "global_step": 1000, "pytorch-lightning_version": "1.8.6",
                    "state_dict": state,
                    "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": []}],
                    "lr_schedulers": [{"anneal_func": max}], "hparams_name": "full_config",
                    "hyper_parameters": {"full_config": cfg}}, path)
    finally:
        del sys.modules[mod.__name__]


def _run_two_chunks(det, x1, x2):
    out = []
    det.reset_all()
    with torch.no_grad():
        out += det.detect(x1, score_thresh=0.1, nms_thresh=0.45, max_detections=1000)
        det.reset(torch.tensor([0.0, 1.0]))  # column 0 starts a new recording
        out += det.detect(x2, score_thresh=0.1, nms_thresh=0.45, max_detections=1000)
    return out


@pytest.mark.parametrize("backbone, dataset, num_classes, split", [("rvt-t", "gen1", 2, 1),
                                                                    ("rvt-s", "gen4", 3, 2)])
def test_round_trip_through_rvt_layout_gives_identical_outputs(tmp_path, backbone, dataset, num_classes,
                                                               split):
    det = _rvt_detector(backbone, num_classes, split)
    _lightning_like(tmp_path / "rvt.ckpt", det, tmp_path)
    info = import_rvt_checkpoint(tmp_path / "rvt.ckpt", tmp_path / "evdet.ckpt", dataset)
    loaded, info2 = load_detector(tmp_path / "evdet.ckpt")
    assert info2 == info and info.config.backbone == backbone and info.config.rvt.partition_split_32 == split
    x1, x2 = (torch.rand(2, 2, 20, 64, 96) * 4).floor(), (torch.rand(2, 2, 20, 64, 96) * 4).floor()
    ref, got = _run_two_chunks(det, x1, x2), _run_two_chunks(loaded, x1, x2)
    assert sum(r.shape[0] for r in ref) > 0
    assert all(torch.equal(r, g) for r, g in zip(ref, got, strict=True))


def test_dataset_fixes_classes_input_and_decoding(tmp_path):
    _, gen1 = load_rvt_checkpoint(_saved(tmp_path / "a.ckpt", _rvt_detector()), "gen1")
    assert gen1.classes == ("car", "pedestrian") and gen1.label_map == {0: "car", 1: "pedestrian"}
    assert (gen1.sensor_size, gen1.network_size, gen1.stored_size) == ((240, 304),) * 3
    assert (gen1.representation, gen1.representation_params, gen1.delta_t, gen1.in_channels) == (
        "rvt_stacked_histogram", {"num_utbins": 10, "max_count": 10}, 50_000, 20)
    assert (gen1.score_thresh, gen1.nms_thresh, gen1.config.score_thresh, gen1.config.nms_thresh) == (
        0.1, 0.45, 0.1, 0.45)
    _, gen4 = load_rvt_checkpoint(_saved(tmp_path / "b.ckpt", _rvt_detector(num_classes=3, split=2)))
    assert gen4.classes == ("pedestrian", "two wheeler", "car")  # dataset from the 3 classes
    assert (gen4.sensor_size, gen4.network_size, gen4.config.rvt.partition_split_32) == ((720, 1280),
                                                                                        (360, 640), 2)
    with pytest.raises(ValueError, match="3 classes, RVT's gen1 has 2"):
        load_rvt_checkpoint(tmp_path / "b.ckpt", "gen1")
    with pytest.raises(ValueError, match="unknown RVT dataset 'dsec'"):
        load_rvt_checkpoint(tmp_path / "b.ckpt", "dsec")


def _saved(path, det):
    save_rvt_checkpoint(path, det)
    return path


@pytest.mark.parametrize("backbone, kw", [
    ("rvt-b", {"depth": 0.67}),
    ("rvt-t", {"depthwise": True}),
    ("rvt-t", {"rvt": {"lstm_dws_conv": True, "lstm_dws_conv_only_hidden": False,
                       "lstm_dws_conv_kernel_size": 5}}),
    ("rvt-t", {"in_strides": (4, 8, 16),
               "rvt": {"overlap": False, "stem_patch_size": 2, "num_blocks": (1, 2, 1, 1),
                       "ls_init_value": 0.0, "mlp_ratio": 2, "norm_affine": False, "attention_bias": False}}),
])
def test_model_is_inferred_from_the_weight_shapes(backbone, kw):
    det = _rvt_detector(backbone, **kw)
    weights = {k[len("mdl."):]: v for k, v in rvt_state_dict(det).items()}
    config, in_channels, num_classes = rvt_model_config(weights, "gen1")
    rebuilt = build_detector(config, in_channels, num_classes)
    rebuilt.load_state_dict(evdet_state_dict_from_rvt(weights), strict=True)
    expected = ModelConfig(backbone=backbone, head="yolox",
                           rvt=RVTConfig(partition_split_32=1, **kw.get("rvt", {})),
                           yolox=YoloxHeadConfig(**{k: v for k, v in kw.items() if k != "rvt"}),
                           score_thresh=0.1, nms_thresh=0.45, max_detections=1000)
    if not expected.rvt.lstm_dws_conv:  # unused options of an absent part are RVT's defaults
        rvt = dataclasses.replace(expected.rvt, lstm_dws_conv_kernel_size=3)
        expected = dataclasses.replace(expected, rvt=rvt)
    assert config == expected and (in_channels, num_classes) == (20, 2)


def test_other_widths_need_dim_head(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="rvt", head="yolox",
                      rvt=RVTConfig(embed_dim=16, dim_head=8, partition_split_32=1))
    path = _saved(tmp_path / "w16.ckpt", build_detector(cfg, 20, 2))
    with pytest.raises(ValueError, match="stage-1 width 16 is none of RVT's sizes.*dim_head"):
        load_rvt_checkpoint(path, "gen1")
    det, info = load_rvt_checkpoint(path, "gen1", dim_head=8)
    assert (info.config.backbone, info.config.rvt.embed_dim, info.config.rvt.dim_head) == ("rvt", 16, 8)


def test_compiled_prefixes_are_stripped(tmp_path):
    det = _rvt_detector()
    state = {k.replace("mdl.backbone.", "mdl.backbone._orig_mod."): v for k, v in rvt_state_dict(det).items()}
    torch.save({"state_dict": state}, tmp_path / "c.ckpt")
    loaded, _ = load_rvt_checkpoint(tmp_path / "c.ckpt", "gen1")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), det.state_dict().values(),
                                                 strict=True))


def test_load_pretrained_takes_the_rvt_file_and_remaps_classes(tmp_path):
    det = _rvt_detector()
    _lightning_like(tmp_path / "rvt.ckpt", det, tmp_path)
    new, info = load_pretrained(tmp_path / "rvt.ckpt", ["pedestrian", "car", "truck"])
    assert info.classes == ("pedestrian", "car", "truck") and info.representation == "rvt_stacked_histogram"
    src = det.state_dict()["head.yolox_head.cls_preds.0.weight"]
    dst = new.state_dict()["head.yolox_head.cls_preds.0.weight"]
    assert torch.equal(dst[0], src[1]) and torch.equal(dst[1], src[0])  # pedestrian, car moved by name
    key = "backbone.stages.0.lstm.conv1x1.weight"
    assert torch.equal(new.state_dict()[key], det.state_dict()[key])


def test_errors_name_the_file_and_outputs_follow_the_policy(tmp_path):
    # an evdet checkpoint is not an RVT one
    cfg = ModelConfig(backbone="rvt-t", head="yolox", rvt=RVTConfig(partition_split_32=1))
    det = build_detector(cfg, 20, 2)
    _, info = load_rvt_checkpoint(_saved(tmp_path / "rvt.ckpt", det), "gen1")
    save_detector_checkpoint(tmp_path / "evdet.ckpt", det, info)
    with pytest.raises(ValueError, match="evdet.ckpt: no tensors with prefix 'mdl.'"):
        load_rvt_checkpoint(tmp_path / "evdet.ckpt", "gen1")
    torch.save({"state_dict": {"mdl.other.w": torch.ones(1), "mdl.backbone.x": torch.ones(1)}},
               tmp_path / "o.ckpt")
    with pytest.raises(ValueError, match="o.ckpt"):
        load_rvt_checkpoint(tmp_path / "o.ckpt", "gen1")
    with pytest.raises(ValueError, match="weights of no known RVT part"):
        evdet_state_dict_from_rvt({"other.w": torch.ones(1)})
    # a weight of the wrong rank is named, not taken for a class count
    damaged = torch.load(tmp_path / "rvt.ckpt", weights_only=True)
    damaged["state_dict"]["mdl.yolox_head.cls_preds.0.weight"] = torch.ones(3)
    torch.save(damaged, tmp_path / "damaged.ckpt")
    with pytest.raises(ValueError, match=r"damaged.ckpt: weight 'yolox_head.cls_preds.0.weight' has shape "
                                         r"\[3\], expected 4 dimensions"):
        load_rvt_checkpoint(tmp_path / "damaged.ckpt", "gen1")
    # a weight of another shape than the inferred model's: one line naming it (not torch's list)
    resized = torch.load(tmp_path / "rvt.ckpt", weights_only=True)
    w = resized["state_dict"]["mdl.yolox_head.obj_preds.0.weight"]
    resized["state_dict"]["mdl.yolox_head.obj_preds.0.weight"] = torch.ones(*w.shape[:2], 3, 3)
    torch.save(resized, tmp_path / "resized.ckpt")
    with pytest.raises(ValueError, match=r"resized.ckpt: RVT weights do not fit the inferred model rvt-t \+ "
                                         r"yolox: 1 of another shape \(first [\w.]*obj_preds.0.weight: "
                                         r"\(1, \d+, 3, 3\) in the file, \(1, \d+, 1, 1\) in the model\)$"):
        load_rvt_checkpoint(tmp_path / "resized.ckpt", "gen1")
    # a diverged RVT run is refused, naming the tensor (RVT's name, prefix removed)
    nan_det = build_detector(cfg, 20, 2)
    nan_det.load_state_dict(det.state_dict())
    with torch.no_grad():
        nan_det.head.yolox_head.obj_preds[0].bias.fill_(float("nan"))
    with pytest.raises(ValueError, match=r"nan.ckpt: 1 weight tensor\(s\) hold NaN or inf values, the first "
                                         r"'yolox_head.obj_preds.0.bias'"):
        load_rvt_checkpoint(_saved(tmp_path / "nan.ckpt", nan_det), "gen1")
    # never over the input, never over a foreign file; an earlier import only with overwrite
    with pytest.raises(OutputPathError):
        import_rvt_checkpoint(tmp_path / "rvt.ckpt", tmp_path / "rvt.ckpt", "gen1")
    (tmp_path / "mine.ckpt").write_text("someone's file")
    with pytest.raises(OutputPathError, match="not written by evdet"):
        import_rvt_checkpoint(tmp_path / "rvt.ckpt", tmp_path / "mine.ckpt", "gen1")
    assert (tmp_path / "mine.ckpt").read_text() == "someone's file"
    import_rvt_checkpoint(tmp_path / "rvt.ckpt", tmp_path / "out.ckpt", "gen1")
    with pytest.raises(OutputPathError, match="--overwrite"):
        import_rvt_checkpoint(tmp_path / "rvt.ckpt", tmp_path / "out.ckpt", "gen1")
    import_rvt_checkpoint(tmp_path / "rvt.ckpt", tmp_path / "out.ckpt", "gen1", overwrite=True)
