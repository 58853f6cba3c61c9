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
