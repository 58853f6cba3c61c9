"""evdet-import-rvt end to end: an RVT-layout checkpoint imported, then evdet-detect on a raw Gen1-sized
recording (RVT's stacked histogram computed on the fly), evdet-train --finetune straight from the RVT file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from evdet.apps import detect as detect_app
from evdet.apps import import_rvt as import_app
from evdet.apps import train as train_app
from rvt_fixtures import make_rvt_gen1_dataset

from evdet.inference.model_config import ModelConfig, RVTConfig, build_detector
from evdet.inference.rvt_checkpoint import save_rvt_checkpoint
from evdet.io.boxes import load_boxes
from evdet.simulation import make_synthetic_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rvt_ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("import_rvt")
    torch.manual_seed(0)
    config = ModelConfig(backbone="rvt-t", head="yolox", rvt=RVTConfig(partition_split_32=1))
    det = build_detector(config, 20, 2)
    with torch.no_grad():
        for name, p in det.named_parameters():
            if ("obj_preds" in name or "cls_preds" in name) and name.endswith("bias"):
                p.fill_(0.5)  # confident enough to pass RVT's 0.1 threshold
    save_rvt_checkpoint(root / "rvt-t.ckpt", det)
    return root


def test_import_then_detect_on_a_raw_recording(rvt_ckpt, tmp_path, capsys):
    out = tmp_path / "evdet.ckpt"
    assert import_app.main([str(rvt_ckpt / "rvt-t.ckpt"), str(out), "--dataset", "gen1"]) == 0
    text = capsys.readouterr().out
    assert "rvt-t + yolox" in text and "['car', 'pedestrian']" in text and "20x240x304" in text
    assert import_app.main([str(rvt_ckpt / "rvt-t.ckpt"), str(out), "--dataset", "gen1"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    make_synthetic_dataset(tmp_path / "ds", preset="gen1-like", num_train=0, num_val=1, num_test=0,
                           duration_s=0.25)
    rec = sorted((tmp_path / "ds" / "val").glob("*_td.dat"))[0]
    assert detect_app.main([str(out), str(rec), "-o", str(tmp_path / "dt"), "--no-progress"]) == 0
    dets = load_boxes(tmp_path / "dt" / rec.name.replace("_td.dat", "_bbox.npy"))
    assert dets.size > 0 and set(np.unique(dets["t"]).tolist()) <= {50_000 * k for k in range(1, 6)}
    assert dets["class_confidence"].min() >= 0.1 and (dets["x"] + dets["w"]).max() <= 304 + 1e-3


def test_import_refuses_a_wrong_dataset_and_a_non_rvt_file(rvt_ckpt, tmp_path, capsys):
    assert import_app.main([str(rvt_ckpt / "rvt-t.ckpt"), str(tmp_path / "o.ckpt"), "--dataset", "gen4"]) == 2
    assert "2 classes, RVT's gen4 has 3" in capsys.readouterr().err
    (tmp_path / "junk.ckpt").write_bytes(b"\x00" * 100)
    assert import_app.main([str(tmp_path / "junk.ckpt"), str(tmp_path / "o.ckpt"), "--dataset", "gen1"]) == 2
    assert "junk.ckpt" in capsys.readouterr().err and not (tmp_path / "o.ckpt").exists()


def test_finetune_from_the_rvt_file(rvt_ckpt, tmp_path):
    data = make_rvt_gen1_dataset(tmp_path, np.random.default_rng(3), splits=(("train", 1), ("val", 1)),
                                 n_events=4000)
    run = tmp_path / "run"
    code = train_app.main([str(data), "--root-dir", str(run), "--finetune", "--checkpoint",
                           str(rvt_ckpt / "rvt-t.ckpt"), "-T", "2", "-B", "1", "--max-steps", "1",
                           "--max-epochs", "1", "--limit-val-batches", "0", "--no-progress", "--num-workers",
                           "0", "--accelerator", "cpu", "--log-images-every-n-steps", "0"])
    assert code == 0 and (run / "checkpoints" / "last.ckpt").exists()
    from evdet.inference.checkpoint import load_detector

    _, info = load_detector(run / "checkpoints" / "last.ckpt")
    assert (info.config.backbone, info.config.head, info.classes) == ("rvt-t", "yolox", ("car", "pedestrian"))
