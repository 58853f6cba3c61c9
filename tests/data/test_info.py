"""evdet.data.info: describe_dataset / list_recordings / check_consistent on tiny dataset folders."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from evdet.data.info import check_consistent, describe_dataset, list_recordings
from evdet.io.h5 import H5TensorWriter
from evdet.io.label_map import save_label_map


def _h5(path: Path, *, channels: int = 2, delta_t: int = 5000, size=(8, 10), representation="histo", n=3):
    with H5TensorWriter(path, (channels, *size), representation=representation, delta_t=delta_t,
                        sensor_size=(16, 20), downsampling_factor=1) as w:
        w.write(np.zeros((n, channels, *size), np.float32))


def _dataset(root: Path, splits=("train", "val")) -> Path:
    root.mkdir()
    save_label_map(root, {0: "car", 1: "pedestrian"})
    for split in splits:
        (root / split).mkdir()
        for name in ("b.h5", "a.h5"):
            _h5(root / split / name)
    return root


def test_describe_dataset(tmp_path):
    root = _dataset(tmp_path / "ds")
    (root / "train" / "a_bbox.npy").write_bytes(b"")  # labels and other files are not recordings
    (root / "train" / ".hidden.h5").write_bytes(b"")
    (root / "train" / "readme.txt").write_text("x")
    info = describe_dataset(root)
    assert info.dataset_dir == root and info.label_map == {0: "car", 1: "pedestrian"}
    assert sorted(info.splits) == ["train", "val"]
    assert [p.name for p in info.splits["train"]] == ["a.h5", "b.h5"]
    assert [s.path for s in info.videos["val"]] == [str(p) for p in info.splits["val"]]
    assert (info.in_channels, info.delta_t, info.representation) == (2, 5000, "histo")
    assert info.sensor_size == (16, 20) and info.stored_size == (8, 10)
    assert describe_dataset(root, delta_t=5000).delta_t == 5000


def test_missing_pieces_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset directory not found: .*nowhere"):
        describe_dataset(tmp_path / "nowhere")
    root = tmp_path / "ds"
    root.mkdir()
    with pytest.raises(FileNotFoundError, match="no label_map_dictionary.json"):
        describe_dataset(root)
    save_label_map(root, {0: "car"})
    (root / "val").mkdir()
    found = r"\(found \['label_map_dictionary.json', 'val'\]\)"
    with pytest.raises(FileNotFoundError, match=r"no train/ split folder " + found):
        describe_dataset(root)
    (root / "train").mkdir()
    with pytest.raises(ValueError, match=r"split folder .*train holds no recording"):
        describe_dataset(root)


def test_empty_optional_split_is_reported(tmp_path):
    root = _dataset(tmp_path / "ds", splits=("train",))
    assert list(describe_dataset(root).splits) == ["train"]  # val/test optional
    (root / "test").mkdir()
    with pytest.raises(ValueError, match=r"split folder .*test holds no recording"):
        describe_dataset(root)


@pytest.mark.parametrize("kwargs, attr", [({"channels": 3}, "channels"), ({"delta_t": 10_000}, "delta_t"),
                                          ({"size": (4, 5)}, "stored_size"),
                                          ({"representation": "diff", "channels": 2}, "representation")])
def test_inconsistent_files_name_both_files(tmp_path, kwargs, attr):
    root = _dataset(tmp_path / "ds")
    _h5(root / "val" / "odd.h5", **kwargs)
    with pytest.raises(ValueError, match=rf"inconsistent dataset: {attr} = .* in .*a.h5 but .* in .*odd.h5"):
        describe_dataset(root)


def test_bad_file_and_delta_t_mismatch_name_the_file(tmp_path):
    root = _dataset(tmp_path / "ds")
    with pytest.raises(ValueError, match=r"a.h5: stored delta_t = 5000 µs but the config asks 1000 µs"):
        describe_dataset(root, delta_t=1000)
    (root / "val" / "c.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"c.h5"):
        describe_dataset(root)


def test_list_recordings_and_check_consistent(tmp_path):
    for name in ("z.RAW", "b.dat", "a.hdf5", "c.h5", "c_bbox.npy", "d.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.h5").mkdir()
    assert [p.name for p in list_recordings(tmp_path)] == ["a.hdf5", "b.dat", "c.h5", "z.RAW"]
    root = _dataset(tmp_path / "ds")
    specs = describe_dataset(root).videos["train"]
    check_consistent([])
    check_consistent(specs)
    with pytest.raises(ValueError, match=r"delta_t = 5000 in .*a.h5 but 1 in .*b.h5"):
        check_consistent([specs[0], replace(specs[1], delta_t=1)])


def test_different_representation_parameters_name_both_files(tmp_path):
    root = _dataset(tmp_path / "ds")
    with H5TensorWriter(root / "val" / "odd.h5", (2, 8, 10), representation="histo", delta_t=5000,
                        sensor_size=(16, 20), downsampling_factor=1,
                        params={"max_incr_per_pixel": 10.0}) as w:
        w.write(np.zeros((3, 2, 8, 10), np.float32))
    import h5py

    for p in sorted(root.rglob("[ab].h5")):  # the others say 5
        with h5py.File(p, "r+") as f:
            f["data"].attrs["max_incr_per_pixel"] = 5.0
    with pytest.raises(ValueError, match=r"representation parameters = \{'max_incr_per_pixel': 5.0\} in "
                                         r".*a\.h5 but \{'max_incr_per_pixel': 10.0\} in .*odd\.h5"):
        describe_dataset(root)


def test_different_sensor_sizes_name_both_files(tmp_path):
    root = _dataset(tmp_path / "ds")
    with H5TensorWriter(root / "val" / "odd.h5", (2, 8, 10), representation="histo", delta_t=5000,
                        sensor_size=(32, 40), downsampling_factor=2) as w:
        w.write(np.zeros((3, 2, 8, 10), np.float32))
    with pytest.raises(ValueError, match=r"sensor_size = \(16, 20\) in .*a\.h5 but \(32, 40\) in .*odd\.h5"):
        describe_dataset(root)


def test_non_integer_delta_t_names_file_and_value(tmp_path):
    import h5py

    root = _dataset(tmp_path / "ds")
    with h5py.File(root / "val" / "b.h5", "r+") as f:
        f["data"].attrs["delta_t"] = 5000.5
    with pytest.raises(ValueError, match=r"b\.h5: attribute 'delta_t' = 5000.5 is not a whole number"):
        describe_dataset(root)
