"""End to end: evdet-info on a small synthetic dataset."""

import cv2
import pytest
from evdet.apps import info as info_app

from evdet.simulation import make_synthetic_dataset

pytestmark = pytest.mark.slow


def test_info_prints_splits_classes_anchors_and_writes_png(tmp_path, capsys):
    make_synthetic_dataset(tmp_path / "ds", preset="tiny", num_train=2, num_val=1, num_test=0, duration_s=0.6)
    png = tmp_path / "info.png"
    assert info_app.main([str(tmp_path / "ds"), "--plot", str(png), "--height", "48", "--width", "64",
                          "--no-progress"]) == 0
    out = capsys.readouterr().out
    for text in ("train", "val", "kev/s", "car", "pedestrian", "two wheeler", "suggested: --anchor-size",
                 "20.0 Hz", str(png)):
        assert text in out
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] == 360 and img.shape[1] > 1000
    assert info_app.main([str(tmp_path / "missing")]) == 2


def test_plot_follows_the_output_path_policy(tmp_path, capsys, monkeypatch):
    # before: --plot (and the default ./<name>_info.png) replaced any file; x.jpg was a cv2 traceback
    make_synthetic_dataset(tmp_path / "ds", preset="tiny", num_train=1, num_val=0, num_test=0, duration_s=0.3)
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"my picture")
    for plot, why in ((mine, "not written by evdet"), (tmp_path / "x.jpg", "give a .png file name"),
                      (tmp_path / "ds" / "x.png", "lies inside the input folder")):
        assert info_app.main([str(tmp_path / "ds"), "--plot", str(plot), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err, err
    assert mine.read_bytes() == b"my picture"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ds_info.png").write_bytes(b"someone's")  # the default output, not evdet's
    assert info_app.main(["ds", "--no-progress"]) == 2
    assert (tmp_path / "ds_info.png").read_bytes() == b"someone's"
    (tmp_path / "ds_info.png").unlink()
    assert info_app.main(["ds", "--no-progress"]) == 0
    assert info_app.main(["ds", "--no-progress"]) == 2
    assert info_app.main(["ds", "--no-progress", "--overwrite"]) == 0
