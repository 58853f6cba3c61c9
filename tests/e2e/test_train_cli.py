"""Reliability tests of ``evdet-train`` on a tiny synthetic dataset with a very small model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow

pytest.importorskip("evdet.simulation.dataset")
pytest.importorskip("evdet.preprocessing.convert")

SMALL = ["--base", "4", "--cout", "8", "--anchor-size", "16", "-T", "4", "-B", "2", "--height", "48",
         "--width", "64", "--no-progress", "--log-images-every-n-steps", "0", "--score-thresh", "0.01",
         "--num-workers", "0"]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "evdet.apps.train", *args]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return e


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from evdet.simulation.dataset import make_synthetic_dataset

    root = tmp_path_factory.mktemp("tinyds")
    make_synthetic_dataset(root / "raw", preset="tiny", num_train=2, num_val=2, num_test=1, duration_s=1.0,
                           seed=3, hdf5=True)
    return root / "raw" / "hdf5"


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_ddp_validation_equals_single_process(dataset, tmp_path):
    root = tmp_path / "ddp"
    r = subprocess.run(cli(str(dataset), "--root-dir", str(root), *SMALL, "--max-epochs", "1",
                           "--limit-train-batches", "3", "--devices", "2", "--accelerator", "cpu",
                           "--strategy", "ddp", "--eval-score-thresh", "0.0"),
                       env=env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    ddp = read_json(root / "metrics_val.json")
    single_root = tmp_path / "single"
    r = subprocess.run(cli(str(dataset), "--root-dir", str(single_root), *SMALL, "--just-val", "--checkpoint",
                           str(root / "checkpoints" / "last.ckpt"), "--eval-score-thresh", "0.0"),
                       env=env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    single = read_json(single_root / "metrics_val.json")
    assert set(ddp) == set(single) and "AP_car" in ddp
    assert any(v > 0 for v in single.values()), single  # not a trivial all-zero comparison
    for k in ddp:
        assert ddp[k] == pytest.approx(single[k], abs=1e-6), k


def _kill_after_first_checkpoint(args: list[str], last: Path, delay_s: float) -> None:
    """Start ``args``, SIGKILL it ``delay_s`` after its first checkpoint appears (mid-run: it cannot finish
    in that time), and check that every checkpoint it left is complete. A kill that lands inside a write
    leaves that write's hidden temporary, which no reader takes for a checkpoint; the resumed run's next
    write of that name removes it (:func:`assert_no_temporaries` after the resume)."""
    proc = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert last.exists(), proc.stderr.read().decode()[-3000:] if proc.poll() is not None else "timeout"
    time.sleep(delay_s)
    assert proc.poll() is None, "the run finished before the kill"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for ckpt in last.parent.glob("*.ckpt"):  # every visible checkpoint is complete
        torch.load(ckpt, weights_only=True)


def assert_no_temporaries(folder: Path) -> None:
    from evdet.io.atomic import is_temporary

    assert not [p for p in folder.iterdir() if is_temporary(p)]


@pytest.mark.parametrize("delay_s", [0.0, 1.0], ids=["epoch-start", "mid-epoch"])
def test_sigkill_then_resume_gives_the_uninterrupted_weights(dataset, tmp_path, delay_s):
    """Killed at the start of an epoch or inside one, ``--resume`` continues from the last checkpoint and
    ends with weights bit-identical to an uninterrupted run (same seed, CPU): the resumed epoch replays
    that epoch's data order, optimizer and schedule."""
    def run_args(root: Path) -> list[str]:
        return cli(str(dataset), "--root-dir", str(root), *SMALL, "--limit-train-batches", "8",
                   "--limit-val-batches", "0", "--max-epochs", "6")

    ref = tmp_path / "uninterrupted"
    r = subprocess.run(run_args(ref), env=env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    root = tmp_path / "killed"
    last = root / "checkpoints" / "last.ckpt"
    _kill_after_first_checkpoint(run_args(root), last, delay_s)
    killed_at = torch.load(last, weights_only=True)["global_step"]
    assert killed_at % 8 == 0 and killed_at < 48  # an epoch's checkpoint, not the last one
    (last.parent / ".last.ckpt.evdet-tmp-999999999-0").write_bytes(b"half")  # as a kill inside a write leaves
    r = subprocess.run([*run_args(root), "--resume"], env=env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_no_temporaries(last.parent)
    want = torch.load(ref / "checkpoints" / "last.ckpt", weights_only=True)
    got = torch.load(last, weights_only=True)
    assert got["global_step"] == want["global_step"] == 48 and got["epoch"] == want["epoch"] == 5
    for k, v in want["state_dict"].items():
        assert torch.equal(got["state_dict"][k], v), k


def test_ctrl_c_stops_training_with_exit_130_and_complete_checkpoints(dataset, tmp_path):
    """A Ctrl-C (SIGINT as a terminal sends it) ends evdet-train after Lightning's graceful shutdown with
    exit status 130 and one line, as every evdet command (Lightning itself calls sys.exit(1))."""
    root = tmp_path / "run"
    last = root / "checkpoints" / "last.ckpt"
    args = cli(str(dataset), "--root-dir", str(root), *SMALL, "--limit-train-batches", "8",
               "--limit-val-batches", "0", "--max-epochs", "1000")
    proc = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 180
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()[-3000:]
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "evdet-train: interrupted" in err and "Traceback" not in err, err[-3000:]
    for ckpt in last.parent.glob("*.ckpt"):
        torch.load(ckpt, weights_only=True)


def test_nonfinite_loss_stops_with_the_step_or_is_skipped(dataset, tmp_path, capsys):
    from evdet.apps.train import main

    base = [str(dataset), *SMALL, "--lr", "1e30", "--max-steps", "4", "--limit-val-batches", "0",
            "--warmup-steps", "0"]
    code = main([*base, "--root-dir", str(tmp_path / "nan")])
    assert code == 2
    err = capsys.readouterr().err
    assert "non-finite" in err and "global step 1" in err and "--skip-nonfinite" in err, err[-2000:]
    code = main([*base, "--root-dir", str(tmp_path / "skip"), "--skip-nonfinite"])
    assert code == 0
    state = torch.load(tmp_path / "skip" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_bad_dataset_directories_fail_before_training(dataset, tmp_path, capsys):
    from evdet.apps.train import main

    def run(d: Path) -> str:
        code = main([str(d), "--root-dir", str(tmp_path / "run"), *SMALL, "--max-steps", "1"])
        assert code == 2
        assert not (tmp_path / "run" / "checkpoints").exists()
        return capsys.readouterr().err

    no_map = tmp_path / "nomap"
    shutil.copytree(dataset, no_map)
    (no_map / "label_map_dictionary.json").unlink()
    assert "label_map_dictionary.json" in run(no_map)

    empty = tmp_path / "empty"
    shutil.copytree(dataset, empty)
    shutil.rmtree(empty / "val")
    (empty / "val").mkdir()
    err = run(empty)
    assert "val" in err and "no recording" in err

    mixed = tmp_path / "mixed"
    shutil.copytree(dataset, mixed)
    from evdet.preprocessing.convert import generate_hdf5

    raw_val = sorted((dataset.parent / "val").glob("*_td.dat"))[0]
    out = generate_hdf5([raw_val], tmp_path / "cube", representation="event_cube", progress=False)
    target = sorted((mixed / "val").glob("*.h5"))[0]
    shutil.copy(out[0], target)
    err = run(mixed)
    assert "channels" in err and target.name in err


def test_just_test_writes_detections_per_video(dataset, tmp_path):
    from evdet.data import DataConfig
    from evdet.inference.model_config import AnchorHeadConfig, ModelConfig, VanillaConfig
    from evdet.io import BBOX_DTYPE, load_boxes
    from evdet.training.config import TrainConfig
    from evdet.training.run import train

    mc = ModelConfig(vanilla=VanillaConfig(base=4, cout=8), anchor=AnchorHeadConfig(anchor_size=16.0),
                     score_thresh=0.0)
    dc = DataConfig(num_tbins=4, batch_size=2, height=48, width=64)
    tc = TrainConfig(max_steps=2, limit_val_batches=0, log_images_every_n_steps=0, eval_score_thresh=0.0)
    train(dataset, tmp_path, model_config=mc, data_config=dc, train_config=tc, progress=False)
    res = train(dataset, tmp_path, model_config=mc, data_config=dc, train_config=tc, just_test=True,
                progress=False)
    files = sorted(res.detections_dir.glob("*_bbox.npy"))
    assert [f.name.replace("_bbox.npy", "") for f in files] == \
        [p.stem for p in sorted((dataset / "test").glob("*.h5"))]
    dets = load_boxes(files[0])
    assert dets.dtype == BBOX_DTYPE and len(dets) > 0
    assert np.all(dets["t"] % 50_000 == 0) and np.all(np.diff(dets["t"]) >= 0)
    assert dets["x"].max() > 64  # scaled to sensor pixels (128 wide), not network pixels (64)
    assert "AP" in res.metrics["test"]


def test_a_runs_config_file_repeats_it_bit_for_bit(dataset, tmp_path):
    """Every run writes ROOT/config.yaml; ``--config`` of it with only another --root-dir trains the same
    weights (CPU, same seed), with gradient accumulation: 2 optimizer steps of 2 batches each."""
    first = tmp_path / "first"
    r = subprocess.run(cli(str(dataset), "--root-dir", str(first), *SMALL, "--max-steps", "2",
                           "--accumulate-grad-batches", "2", "--limit-val-batches", "0", "--seed", "5"),
                       env=env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"config: {first / 'config.yaml'}" in r.stdout
    from evdet.training.run_config import load_run_config

    config = load_run_config(first / "config.yaml")
    assert config.dataset_dir == str(dataset) and config.train.accumulate_grad_batches == 2
    assert (config.model.vanilla.cout, config.data.height, config.train.seed) == (8, 48, 5)
    second = tmp_path / "second"
    r = subprocess.run(cli("--config", str(first / "config.yaml"), "--root-dir", str(second),
                           "--no-progress"),
                       env=env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (second / "config.yaml").read_text() == (first / "config.yaml").read_text()
    want = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)
    got = torch.load(second / "checkpoints" / "last.ckpt", weights_only=True)
    assert got["global_step"] == want["global_step"] == 2
    batches = want["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"]
    assert batches == 4  # two batches per optimizer step
    for k, v in want["state_dict"].items():
        assert torch.equal(got["state_dict"][k], v), k


def test_ema_weights_are_the_ones_validated_and_saved(dataset, tmp_path):
    """With ``ema_decay``, checkpoints hold the average (decay 1: the weights after the first optimizer step,
    which a one-step run reproduces), the weights being optimised travel as ``current_model_state``, and the
    final metrics are the average's (a --just-val of the saved weights gives the same numbers)."""
    from evdet.data import DataConfig
    from evdet.inference.model_config import AnchorHeadConfig, ModelConfig, VanillaConfig
    from evdet.training.config import TrainConfig
    from evdet.training.run import train

    mc = ModelConfig(vanilla=VanillaConfig(base=4, cout=8), anchor=AnchorHeadConfig(anchor_size=16.0),
                     score_thresh=0.0)
    dc = DataConfig(num_tbins=4, batch_size=2, height=48, width=64)
    common = dict(lr_schedule="constant", warmup_steps=0, log_images_every_n_steps=0, limit_val_batches=2,
                  eval_score_thresh=0.0, seed=1)
    res = train(dataset, tmp_path / "ema", model_config=mc, data_config=dc, progress=False,
                train_config=TrainConfig(max_steps=3, ema_decay=1.0, ema_warmup_steps=0, **common))
    one = train(dataset, tmp_path / "one", model_config=mc, data_config=dc, progress=False,
                train_config=TrainConfig(max_steps=1, **common))
    ema = torch.load(res.last_checkpoint, weights_only=True)
    ref = torch.load(one.last_checkpoint, weights_only=True)
    assert ema["global_step"] == 3 and ref["global_step"] == 1
    assert ema["state_dict"].keys() == ref["state_dict"].keys() == ema["current_model_state"].keys()
    for k, v in ref["state_dict"].items():
        if v.is_floating_point() and "running" not in k:  # weights; BatchNorm statistics follow the model
            assert torch.equal(ema["state_dict"][k], v), k
    assert any(not torch.equal(ema["state_dict"][k], v) for k, v in ema["current_model_state"].items())
    again = train(dataset, tmp_path / "ema", model_config=mc, data_config=dc, progress=False,
                  train_config=TrainConfig(max_steps=3, **common), just_val=True,
                  checkpoint=res.last_checkpoint)
    assert res.metrics["val"] == again.metrics["val"]


def test_compile_trains_the_same_weights_and_saves_the_same_keys(dataset, tmp_path):
    """``compile`` (torch.compile of the backbone and head, here the aot_eager backend: traced, no code
    generation, seconds on a CPU) trains what eager trains (3 steps, validation on) and keeps the
    checkpoint's keys, so detection and export load it as any other; an unknown backend is refused."""
    from evdet.data import DataConfig
    from evdet.inference.model_config import AnchorHeadConfig, ModelConfig, VanillaConfig
    from evdet.training.config import TrainConfig
    from evdet.training.run import train

    mc = ModelConfig(vanilla=VanillaConfig(base=4, cout=8), anchor=AnchorHeadConfig(anchor_size=16.0),
                     score_thresh=0.0)
    dc = DataConfig(num_tbins=4, batch_size=2, height=48, width=64)
    common = dict(max_steps=3, log_images_every_n_steps=0, limit_val_batches=2, eval_score_thresh=0.0, seed=1)
    eager = train(dataset, tmp_path / "eager", model_config=mc, data_config=dc, progress=False,
                  train_config=TrainConfig(**common))
    compiled = train(dataset, tmp_path / "compiled", model_config=mc, data_config=dc, progress=False,
                     train_config=TrainConfig(compile="aot_eager", **common))
    want = torch.load(eager.last_checkpoint, weights_only=True)["state_dict"]
    got = torch.load(compiled.last_checkpoint, weights_only=True)["state_dict"]
    assert got.keys() == want.keys() and not any("_orig_mod" in k for k in got)
    for k, v in want.items():
        torch.testing.assert_close(got[k], v, rtol=1e-4, atol=1e-5, msg=k)
    assert compiled.metrics["val"]["AP"] == pytest.approx(eager.metrics["val"]["AP"], abs=1e-3)
    r = subprocess.run(cli(str(dataset), "--root-dir", str(tmp_path / "bad"), *SMALL, "--compile", "nope"),
                       env=env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 2 and "TrainConfig.compile = 'nope': not a torch.compile backend" in r.stderr


def test_sigkill_inside_an_epoch_resumes_from_the_step_checkpoint_exactly(dataset, tmp_path):
    """With ``--checkpoint-every-n-steps 3`` (epochs of 8 batches), a run killed after its first checkpoint
    (step 3, inside epoch 0) resumes there: the data order continues at batch 4 of the epoch and the
    recurrent state of the streams is restored, so the weights end bit-identical to an uninterrupted run."""
    def run_args(root: Path) -> list[str]:
        return cli(str(dataset), "--root-dir", str(root), *SMALL, "--limit-train-batches", "8",
                   "--limit-val-batches", "0", "--max-epochs", "3", "--checkpoint-every-n-steps", "3")

    ref = tmp_path / "uninterrupted"
    r = subprocess.run(run_args(ref), env=env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    root = tmp_path / "killed"
    last = root / "checkpoints" / "last.ckpt"
    _kill_after_first_checkpoint(run_args(root), last, 0.0)
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] % 8 != 0 and saved["recurrent_state"]  # inside an epoch, with the memory
    r = subprocess.run([*run_args(root), "--resume"], env=env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "not resumable" not in r.stderr
    assert_no_temporaries(last.parent)
    want = torch.load(ref / "checkpoints" / "last.ckpt", weights_only=True)
    got = torch.load(last, weights_only=True)
    assert got["global_step"] == want["global_step"] == 24
    for k, v in want["state_dict"].items():
        assert torch.equal(got["state_dict"][k], v), k
