"""A shortened ``evdet-quickstart`` run: simulate → convert → train → validate → demo video."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.slow

pytest.importorskip("evdet.simulation.dataset")
pytest.importorskip("evdet.viz.demo")


def test_quickstart_short_chain(tmp_path, capsys):
    from evdet.apps.quickstart import main

    code = main([str(tmp_path), "--num-train", "2", "--num-val", "1", "--duration-s", "1.0",
                 "--max-epochs", "1", "--limit-train-batches", "3", "-T", "4", "-B", "2", "--height", "48",
                 "--width", "64",
                 "--base", "4", "--cout", "8", "--num-workers", "1", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    m = re.search(r"AP = (\d\.\d{4})\s+AP50 = (\d\.\d{4})", out)
    assert m, out[-2000:]
    assert 0.0 <= float(m.group(1)) <= float(m.group(2)) <= 1.0
    assert sorted(p.name for p in (tmp_path / "dataset").iterdir()) == [".evdet-outputs",  # the manifest
                                                                        "label_map_dictionary.json", "train",
                                                                        "val"]
    assert len(list((tmp_path / "hdf5" / "train").glob("*.h5"))) == 2
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "run" / "metrics_val.json").is_file()
    video = [p for p in tmp_path.iterdir() if p.name.startswith("demo")]
    assert video, sorted(p.name for p in tmp_path.iterdir())
    assert "demo video:" in out and "wall time:" in out
    # the closing lines: metrics table with per-class AP, where everything is, then the command to watch
    assert "per-class AP" in out and "where everything is:" in out
    assert (tmp_path / "run" / "training_curves.png").is_file() and "training_curves.png" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("watch the demo video:") and str(tmp_path / "demo.mp4") in last
    from evdet.viz.mp4_probe import probe_mp4

    track = probe_mp4(tmp_path / "demo.mp4")
    assert track.codec == "avc1" and track.chroma == "4:2:0" and track.num_frames == 20  # 1 s of 50 ms bins


def test_quickstart_is_deterministic(tmp_path):
    """Two miniature quickstarts with the same seed: identical metrics and identical trained weights."""
    import json

    import torch
    from evdet.apps.quickstart import main

    def run(out):
        code = main([str(out), "--num-train", "2", "--num-val", "1", "--duration-s", "1.0",
                     "--max-epochs", "1", "--limit-train-batches", "3", "-T", "4", "-B", "2",
                     "--base", "4", "--cout", "8", "--num-workers", "1", "--no-video", "--no-progress"])
        assert code == 0
        ckpt = torch.load(out / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        return json.loads((out / "run" / "metrics_val.json").read_text()), ckpt["state_dict"]

    metrics_a, weights_a = run(tmp_path / "a")
    metrics_b, weights_b = run(tmp_path / "b")
    assert metrics_a == metrics_b
    assert weights_a.keys() == weights_b.keys()
    for name, value in weights_a.items():
        assert torch.equal(value, weights_b[name]), name
