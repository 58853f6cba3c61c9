"""evdet.training.run: the ``train`` library entry on a tiny dataset, its argument checks and helpers."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest
import torch

from evdet.data import DataConfig
from evdet.inference.model_config import AnchorHeadConfig, ModelConfig, VanillaConfig
from evdet.io.boxes import save_boxes
from evdet.io.dtypes import BBOX_DTYPE
from evdet.io.h5 import H5TensorWriter
from evdet.io.label_map import save_label_map
from evdet.training.config import TrainConfig
from evdet.training.datamodule import EventDataModule
from evdet.training.run import TrainResult, data_config_from_dict, data_config_to_dict, make_info, train

pytestmark = pytest.mark.usefixtures("one_thread")

MC = ModelConfig(vanilla=VanillaConfig(base=4, cout=8), anchor=AnchorHeadConfig(anchor_size=8.0))
DC = DataConfig(num_tbins=2, batch_size=1, hflip_prob=0.0)
TC = TrainConfig(max_epochs=1, max_steps=2, limit_val_batches=1, log_every_n_steps=1,
                 log_images_every_n_steps=0, accelerator="cpu", eval_skip_ts=0)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("runds")
    save_label_map(root, {0: "car", 1: "pedestrian"})
    for split in ("train", "val", "test"):
        (root / split).mkdir()
        n = 4
        with H5TensorWriter(root / split / "r0.h5", (2, 32, 32), representation="histo", delta_t=5000,
                            sensor_size=(32, 32), downsampling_factor=0) as w:
            w.write(rng.random((n, 2, 32, 32)).astype(np.float32))
        boxes = np.zeros(n, dtype=BBOX_DTYPE)
        boxes["t"], boxes["x"], boxes["y"], boxes["w"], boxes["h"] = (np.arange(n) + 1) * 5000, 4, 6, 12, 10
        boxes["class_id"] = np.arange(n) % 2
        save_boxes(root / split / "r0_bbox.npy", boxes)
    return root


def test_train_two_steps_then_just_val_and_just_test(dataset_dir, tmp_path):
    logging.getLogger("lightning").setLevel(logging.ERROR)
    root = tmp_path / "run"
    result = train(dataset_dir, root, model_config=MC, data_config=DC, train_config=TC, progress=False)
    assert isinstance(result, TrainResult) and result.root_dir == root and result.is_global_zero
    assert result.last_checkpoint == root / "checkpoints" / "last.ckpt" and result.last_checkpoint.exists()
    assert "AP" in result.metrics["val"] and 0.0 <= result.metrics["val"]["AP"] <= 1.0
    assert json.loads((root / "metrics_val.json").read_text()) == pytest.approx(result.metrics["val"])
    assert list((root / "logs" / "csv").glob("version_*/metrics.csv"))

    res_val = train(dataset_dir, root, model_config=MC, data_config=DC, train_config=TC, just_val=True,
                    progress=False)
    assert res_val.metrics["val"]["AP"] == pytest.approx(result.metrics["val"]["AP"])  # same weights

    res_test = train(dataset_dir, root, model_config=MC, data_config=DC, train_config=TC, just_test=True,
                     checkpoint=result.last_checkpoint, progress=False)
    assert "AP" in res_test.metrics["test"] and (root / "metrics_test.json").exists()
    assert res_test.detections_dir == root / "detections" / "test"
    assert [p.name for p in res_test.detections_dir.iterdir()] == ["r0_bbox.npy"]


def test_argument_errors_come_before_any_work(dataset_dir, tmp_path):
    root = tmp_path / "run"
    with pytest.raises(ValueError, match="give just_val or just_test, not both"):
        train(dataset_dir, root, just_val=True, just_test=True)
    with pytest.raises(ValueError, match="finetune needs a checkpoint"):
        train(dataset_dir, root, finetune=True)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        train(tmp_path / "nowhere", root)
    assert not root.exists()  # nothing written before the checks


def test_just_val_without_checkpoint_and_missing_test_split(dataset_dir, tmp_path):
    root = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="no checkpoint given and none found under .*checkpoints"):
        train(dataset_dir, root, data_config=DC, just_val=True, progress=False)
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        train(dataset_dir, root, data_config=DC, just_val=True, checkpoint=tmp_path / "missing.ckpt",
              progress=False)
    no_test = tmp_path / "notest"
    no_test.mkdir()
    for item in ("label_map_dictionary.json", "train"):
        (no_test / item).symlink_to(dataset_dir / item)
    with pytest.raises(ValueError, match=r"no test/ split to evaluate \(found \['train'\]\)"):
        train(no_test, root, data_config=DC, just_test=True, progress=False)


def test_data_config_round_trip_and_make_info(dataset_dir):
    dc = DataConfig(num_tbins=3, classes=("pedestrian",), representation_params={"a": 1})
    d = data_config_to_dict(dc)
    assert d["classes"] == ["pedestrian"] and d["representation_params"] == {"a": 1}
    json.dumps(d)  # plain types
    assert data_config_from_dict({**d, "unknown_key": 5}) == dc
    dm = EventDataModule(dataset_dir, DataConfig(num_tbins=2, classes=("pedestrian",)))
    info = make_info(dm, MC)
    assert info.classes == ("pedestrian",) and info.in_channels == 2 and info.delta_t == 5000
    assert info.num_tbins == 2 and info.network_size == (32, 32) and info.sensor_size == (32, 32)
    assert info.label_map == {0: "car", 1: "pedestrian"} and info.representation == "histo"
    assert (info.score_thresh, info.nms_thresh, info.max_detections) == (0.05, 0.5, 100)


def test_run_folder_policy(dataset_dir, tmp_path):
    from evdet.io.output_paths import OutputPathError, record_output

    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputPathError, match="is an existing file"):  # before: FileExistsError traceback
        train(dataset_dir, tmp_path / "afile", data_config=DC, progress=False)
    with pytest.raises(OutputPathError, match="contains the input"):
        train(dataset_dir, dataset_dir, data_config=DC, progress=False)
    with pytest.raises(OutputPathError, match="lies inside the input folder"):
        train(dataset_dir, dataset_dir / "train" / "run", data_config=DC, progress=False)
    import shutil

    two_splits = tmp_path / "two_splits"
    shutil.copytree(dataset_dir, two_splits)
    shutil.rmtree(two_splits / "test")
    with pytest.raises(OutputPathError, match="is the input"):  # before: the run became a broken test split
        train(two_splits, two_splits / "test", data_config=DC, progress=False)
    assert not (two_splits / "test").exists()
    foreign = tmp_path / "foreign"
    (foreign / "checkpoints").mkdir(parents=True)
    with pytest.raises(OutputPathError, match=r"checkpoints exists and was not written by evdet"):
        train(dataset_dir, foreign, data_config=DC, progress=False)
    earlier = tmp_path / "earlier"
    (earlier / "checkpoints").mkdir(parents=True)
    (earlier / "checkpoints" / "last.ckpt").write_bytes(b"an earlier run")
    record_output(earlier / "checkpoints", "evdet-train")
    with pytest.raises(OutputPathError, match="pass --resume to continue it, or --overwrite"):
        train(dataset_dir, earlier, data_config=DC, progress=False)
    assert (earlier / "checkpoints" / "last.ckpt").read_bytes() == b"an earlier run"


def test_new_run_over_an_earlier_one_needs_overwrite(dataset_dir, tmp_path):
    from evdet.io.output_paths import OutputPathError

    logging.getLogger("lightning").setLevel(logging.ERROR)
    root = tmp_path / "run"
    tc = TrainConfig(max_epochs=1, max_steps=1, limit_val_batches=0, log_images_every_n_steps=0,
                     accelerator="cpu")
    train(dataset_dir, root, model_config=MC, data_config=DC, train_config=tc, progress=False)
    first = (root / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    with pytest.raises(OutputPathError, match="--overwrite"):  # before: silently replaced last.ckpt
        train(dataset_dir, root, model_config=MC, data_config=DC, train_config=tc, progress=False)
    assert (root / "checkpoints" / "last.ckpt").stat().st_mtime_ns == first
    train(dataset_dir, root, model_config=MC, data_config=DC, train_config=tc, progress=False, overwrite=True)
    assert (root / "checkpoints" / "last.ckpt").stat().st_mtime_ns != first


def test_max_steps_inside_an_epoch_reports_the_final_weights_metrics(dataset_dir, tmp_path):
    """Validation ran after epoch 0 (step 2); --max-steps 3 stops inside epoch 1: the metrics returned and
    saved are those of the step-3 weights (the ones in last.ckpt), not the epoch-0 validation's."""
    import dataclasses
    import json

    logging.getLogger("lightning").setLevel(logging.ERROR)
    tc = dataclasses.replace(TC, max_epochs=3, max_steps=3, eval_score_thresh=0.0, lr=5e-2)
    root = tmp_path / "run"
    result = train(dataset_dir, root, model_config=MC, data_config=DC, train_config=tc, progress=False)
    assert torch.load(result.last_checkpoint, weights_only=True)["global_step"] == 3
    final = train(dataset_dir, tmp_path / "check", model_config=MC, data_config=DC, train_config=tc,
                  checkpoint=result.last_checkpoint, just_val=True, progress=False).metrics["val"]
    assert result.metrics["val"] == final
    assert json.loads((root / "metrics_val.json").read_text()) == final


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_python_drops_still_stops_training(dataset_dir, tmp_path, monkeypatch):
    # a KeyboardInterrupt raised while an object is freed is dropped by Python: the InterruptCheck callback
    # raises it again after the batch, Lightning's graceful shutdown ends the run (with sys.exit(1)) and
    # train raises KeyboardInterrupt again, so the app exits 130 as for any Ctrl-C
    import signal

    from evdet.io.interrupts import catch_interrupts
    from evdet.training.callbacks import InterruptCheck

    class CtrlCWhileFreed:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)

    steps = []
    check = InterruptCheck.on_train_batch_end

    def first_batch_then_ctrl_c(self, *args):
        steps.append(1)
        CtrlCWhileFreed()
        check(self, *args)

    monkeypatch.setattr(InterruptCheck, "on_train_batch_end", first_batch_then_ctrl_c)
    tc = TrainConfig(**{**TC.__dict__, "max_steps": 50, "max_epochs": 50})
    with pytest.raises(KeyboardInterrupt), catch_interrupts():
        train(dataset_dir, tmp_path / "run", model_config=MC, data_config=DC, train_config=tc, progress=False)
    assert steps == [1]


def _files(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_overwrite_deletes_only_the_earlier_runs_files_and_only_after_every_check(dataset_dir, tmp_path):
    # before: --overwrite rmtree'd checkpoints/ (user files, the checkpoint to fine-tune from and a link's
    # target check included) before the model or trainer was built, so a run refused with exit 2 had
    # already deleted the earlier run; training_curves.png replaced a user's file
    import shutil

    from evdet.io.output_paths import OutputPathError

    logging.getLogger("lightning").setLevel(logging.ERROR)
    tc = TrainConfig(max_epochs=1, max_steps=1, limit_val_batches=0, log_images_every_n_steps=0,
                     accelerator="cpu")
    run = dict(model_config=MC, data_config=DC, train_config=tc, progress=False)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "training_curves.png").write_bytes(b"my plot")
    with pytest.raises(OutputPathError, match="training_curves.png exists and was not written by evdet"):
        train(dataset_dir, mine, **run)
    assert (mine / "training_curves.png").read_bytes() == b"my plot"

    first = tmp_path / "first"
    train(dataset_dir, first, **run)
    last = first / "checkpoints" / "last.ckpt"
    for case, kwargs in (("finetune from it", dict(finetune=True, checkpoint=last)),
                         ("unreadable checkpoint", dict(finetune=True, checkpoint=tmp_path / "none.ckpt")),
                         ("bad trainer option", dict(train_config=dataclasses.replace(tc, precision="7")))):
        root = tmp_path / case.replace(" ", "_")
        shutil.copytree(first, root)
        kwargs = {**run, **kwargs}
        if "checkpoint" in kwargs and kwargs["checkpoint"] == last:
            kwargs["checkpoint"] = root / "checkpoints" / "last.ckpt"
        before = _files(root)
        with pytest.raises((ValueError, FileNotFoundError)):
            train(dataset_dir, root, overwrite=True, **kwargs)
        assert _files(root) == before, case

    notes = tmp_path / "notes"
    shutil.copytree(first, notes)
    (notes / "checkpoints" / "NOTES.txt").write_text("my notes")
    with pytest.raises(OutputPathError, match=r"NOTES\.txt was not written by evdet"):
        train(dataset_dir, notes, overwrite=True, **run)
    assert (notes / "checkpoints" / "NOTES.txt").read_text() == "my notes"

    linked = tmp_path / "linked"
    shutil.copytree(first, linked)
    shutil.move(linked / "checkpoints", tmp_path / "bigdisk")
    (linked / "checkpoints").symlink_to(tmp_path / "bigdisk")
    with pytest.raises(OutputPathError, match="is a link"):
        train(dataset_dir, linked, overwrite=True, **run)
    assert (tmp_path / "bigdisk" / "last.ckpt").exists()

    train(dataset_dir, first, overwrite=True, **run)  # the earlier run's own files: replaced
    assert last.exists() and (first / "training_curves.png").exists()

    legacy = tmp_path / "legacy"  # a run of an evdet that recorded neither the curves nor the checkpoints
    shutil.copytree(first, legacy)
    (legacy / "checkpoints" / ".evdet-outputs").unlink()
    manifest = legacy / ".evdet-outputs"
    manifest.write_text(manifest.read_text().replace("training_curves.png\tevdet-train\n", ""))
    train(dataset_dir, legacy, resume=True, **run)
    (legacy / "checkpoints" / ".evdet-outputs").unlink(missing_ok=True)
    train(dataset_dir, legacy, overwrite=True, **run)


def test_resume_continues_the_runs_own_checkpoints_even_in_a_copied_folder(dataset_dir, tmp_path):
    # before: --resume took the newest *.ckpt in checkpoints/ (a copy of another run's model became this
    # run), a copied run folder wrote last-v1.ckpt while last.ckpt stayed the old model, and --overwrite
    # deleted another command's checkpoint there
    import shutil

    from evdet.inference.checkpoint import find_latest_checkpoint
    from evdet.io.output_paths import OutputPathError, record_output

    logging.getLogger("lightning").setLevel(logging.ERROR)
    tc = TrainConfig(max_epochs=1, limit_val_batches=0, log_images_every_n_steps=0, accelerator="cpu")
    run = dict(model_config=MC, data_config=DC, progress=False)
    first = tmp_path / "first"
    train(dataset_dir, first, train_config=tc, **run)
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    other = copy / "checkpoints" / "from_other_run.ckpt"
    shutil.copyfile(first / "checkpoints" / "last.ckpt", other)  # newest, but not this run's
    assert find_latest_checkpoint(copy / "checkpoints", "evdet-train").name != other.name
    result = train(dataset_dir, copy, train_config=dataclasses.replace(tc, max_epochs=2), resume=True, **run)
    assert result.last_checkpoint == copy / "checkpoints" / "last.ckpt"
    assert torch.load(result.last_checkpoint, weights_only=True)["epoch"] == 1  # the epoch-2 model
    assert not list((copy / "checkpoints").glob("*-v1.ckpt"))
    other.unlink()
    imported = copy / "checkpoints" / "imported.ckpt"
    imported.write_bytes(b"an imported model")
    record_output(imported, "evdet-import-rvt")
    with pytest.raises(OutputPathError, match="imported.ckpt was written by evdet-import-rvt"):
        train(dataset_dir, copy, train_config=tc, overwrite=True, **run)
    assert imported.read_bytes() == b"an imported model"
