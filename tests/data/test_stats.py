import numpy as np
import pytest

from evdet.data.stats import class_box_sizes, count_events, dataset_stats
from evdet.io.boxes import save_boxes
from evdet.io.dat import write_dat
from evdet.io.dtypes import BBOX_DTYPE, EVENT_DTYPE
from evdet.io.label_map import save_label_map


def _dataset(root):
    save_label_map(root, {0: "car", 1: "pedestrian", 2: "empty"})
    for split, n_rec in (("train", 2), ("val", 1)):
        (root / split).mkdir(parents=True)
        for r in range(n_rec):
            ev = np.zeros(1000, EVENT_DTYPE)
            ev["t"] = np.linspace(0, 1_999_999, 1000).astype(np.int64)
            ev["x"], ev["y"], ev["p"] = 3, 4, 1
            write_dat(root / split / f"r{r}_td.dat", ev, 60, 80)
            boxes = np.zeros(5, BBOX_DTYPE)
            boxes["t"] = [100_000, 100_000, 200_000, 300_000, 400_000]
            boxes["w"], boxes["h"] = [10, 20, 10, 30, 5], [10, 10, 40, 30, 5]
            boxes["class_id"] = [0, 0, 1, 1, 2]  # one "empty" frame marker
            save_boxes(root / split / f"r{r}_bbox.npy", boxes)


def test_dataset_stats_counts_splits_events_boxes_and_label_rate(tmp_path):
    _dataset(tmp_path)
    stats = dataset_stats(tmp_path)
    assert stats.splits == ["train", "val"] and len(stats.of("train")) == 2
    rec = stats.of("val")[0]
    assert rec.num_events == 1000 == count_events(rec.path)
    assert rec.events_per_s == pytest.approx(1000 / (rec.duration / 1e6))
    assert rec.label_instants == 4 and rec.boxes.size == 4  # the empty box marks a frame, is no box
    assert stats.boxes_per_class("train") == {"car": 4, "pedestrian": 4}
    assert stats.label_period() == 100_000
    sizes = class_box_sizes(stats, "val")
    np.testing.assert_array_equal(sizes["pedestrian"], [[10, 40], [30, 30]])
    with pytest.raises(FileNotFoundError, match="label_map"):
        dataset_stats(tmp_path / "train")
