"""RVT's preprocessed folders as evdet datasets: frames, bin end times, labels as RVT's loader attaches them,
class names, sampling modes, sharding, and the errors that name the file."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from rvt_fixtures import MPX_LABEL_DTYPE, make_rvt_gen1_dataset, write_rvt_sequence

from evdet.data import DataConfig, build_dataloader, describe_dataset, stream_batches
from evdet.data.rvt import load_rvt_labels, probe_rvt_sequence, rvt_ground_truth
from evdet.io.label_map import GEN1_LABEL_MAP, save_label_map

REPR = "event_representations_v2/stacked_histogram_dt=50_nbins=10"


@pytest.fixture(scope="module")
def gen1(tmp_path_factory):
    return make_rvt_gen1_dataset(tmp_path_factory.mktemp("rvt"), np.random.default_rng(5))


def _expected_targets(seq):
    """Frame j's boxes at representation objframe_idx_2_repr_idx[j], clamped to [0, 303] x [0, 239] in
    float32, xyxy (restated from RVT's loader)."""
    npz = np.load(seq / "labels_v2" / "labels.npz")
    lab, idx = npz["labels"], npz["objframe_idx_2_label_idx"]
    to_repr = np.load(seq / REPR / "objframe_idx_2_repr_idx.npy")
    ends = list(idx[1:]) + [lab.size]
    out = {}
    for j, (a, b) in enumerate(zip(idx, ends, strict=True)):
        rows = lab[a:b]
        x1 = np.clip(rows["x"].astype(np.float32), 0, 303)
        y1 = np.clip(rows["y"].astype(np.float32), 0, 239)
        x2 = np.clip(rows["x"].astype(np.float32) + rows["w"], 0, 303)
        y2 = np.clip(rows["y"].astype(np.float32) + rows["h"], 0, 239)
        cls = rows["class_id"].astype(np.float32)  # Gen1 label map: class index = class id
        out[int(to_repr[j])] = np.stack([x1, y1, x2, y2, cls], axis=1)
    return out


def test_describe_dataset_recognises_gen1_without_a_label_map(gen1):
    info = describe_dataset(gen1)
    assert info.label_map == GEN1_LABEL_MAP
    assert info.in_channels == 20 and info.representation == "rvt_stacked_histogram"
    assert info.delta_t == 50_000 and info.sensor_size == (240, 304) and info.stored_size == (240, 304)
    assert [p.name for p in info.splits["train"]] == ["train0", "train1"]
    spec = info.videos["val"][0]
    assert spec.kind == "rvt" and spec.uint8_scale == 1.0
    assert np.array_equal(spec.bin_end_ts, np.load(gen1 / "val" / "val0" / REPR / "timestamps_us.npy"))


def test_stream_batches_deliver_stored_counts_labels_and_end_times(gen1):
    seq = gen1 / "val" / "val0"
    ts = np.load(seq / REPR / "timestamps_us.npy")
    with h5py.File(seq / REPR / "event_representations.h5", "r") as f:
        data = f["data"][:]
    expected = _expected_targets(seq)
    config = DataConfig(num_tbins=4, batch_size=1)
    k = 0
    for batch in stream_batches([seq], config, label_map=GEN1_LABEL_MAP):
        assert batch.inputs.dtype == torch.uint8 and batch.input_scale == 1.0
        vi = batch.video_infos[0]
        for t in range(vi.num_valid_bins):
            assert vi.bin_end(t) == ts[k]
            np.testing.assert_array_equal(batch.inputs[t, 0].numpy(), data[k])
            labels = batch.labels[t][0].numpy()
            assert bool(batch.frame_is_labeled[t, 0]) == (k in expected)
            np.testing.assert_array_equal(labels, expected.get(k, np.zeros((0, 5), np.float32)))
            k += 1
        floats = batch.to("cpu").inputs
        assert floats.dtype == torch.float32 and float(floats.max()) <= 10  # counts, not rescaled
    assert k == ts.size and len(expected) == 5


def test_ds2_labels_clamped_then_halved_duplicates_and_flat_frames(tmp_path):
    # 1Mpx at half resolution: 4 representations 360x640; label frames 0..3
    lab = np.zeros(5, MPX_LABEL_DTYPE)
    lab["t"] = [100_000, 200_000, 300_000, 300_000, 400_000]
    lab["x"] = [1270.0, 10.0, 20.0, -4.0, 1279.0]
    lab["y"] = [700.0, 10.0, 30.0, 5.0, 300.0]
    lab["w"] = [30.0, 40.0, 50.0, 20.0, 1.0]
    lab["h"] = [40.0, 20.0, 20.0, 8.0, 5.0]
    lab["class_id"] = [2, 0, 1, 2, 0]
    # frames 1 and 2 both name representation 2: the later (2) wins; frame 3's box becomes flat
    seq = write_rvt_sequence(tmp_path / "test" / "s", np.zeros((4, 20, 360, 640), np.uint8),
                             [100_000, 150_000, 200_000, 400_000], lab, [0, 1, 2, 4], [0, 2, 2, 3],
                             ds2=True)
    spec = probe_rvt_sequence(seq)
    assert spec.sensor_size == (720, 1280) and spec.stored_size == (360, 640)
    labels = load_rvt_labels(spec)
    assert labels.labeled.tolist() == [0, 2]  # repr 3: its only box is flat after halving; repr 1: none
    got = {int(f): (float(b["x"]), float(b["y"]), float(b["w"]), float(b["h"]), int(b["class_id"]))
           for f, b in zip(labels.frames, labels.boxes, strict=True) if f == 0}
    # x: clamp(1270, 0, 1279) = 1270, x2 = clamp(1300) = 1279 -> w 9; halved: x 635, x2 min(639.5, 639)
    # -> w 4; y: 700, y2 = clamp(740, 0, 719) = 719 -> h 19; halved: y 350, y2 359.5 -> 359, h 9
    assert got == {0: (635.0, 350.0, 4.0, 9.0, 2)}
    rep2 = labels.boxes[labels.frames == 2]
    assert rep2["x"].tolist() == [10.0, 0.0] and rep2["w"].tolist() == [25.0, 8.0]  # frame 2's boxes
    assert np.all(labels.boxes["t"][labels.frames == 2] == 200_000)  # stamped at the representation end
    gt = rvt_ground_truth(seq)
    assert gt["x"].tolist() == [1270.0, 20.0, 0.0] and gt["w"].tolist() == [8.0, 50.0, 16.0]
    # the dataset: 1Mpx recognised, RVT's three classes, --classes selects by name
    (tmp_path / "train").mkdir()
    write_rvt_sequence(tmp_path / "train" / "s", np.zeros((4, 20, 360, 640), np.uint8),
                       [100_000, 150_000, 200_000, 400_000], lab, [0, 1, 2, 4], [0, 2, 2, 3], ds2=True)
    info = describe_dataset(tmp_path)
    assert info.label_map == {0: "pedestrian", 1: "two wheeler", 2: "car"}
    config = DataConfig(num_tbins=4, batch_size=1, classes=("car",))
    batch = next(iter(build_dataloader(tmp_path, "test", config, train=False, info=info)))
    assert batch.frame_is_labeled[:, 0].tolist() == [True, False, True, False]
    assert batch.labels[0][0].tolist() == [[635.0, 350.0, 639.0, 359.0, 0.0]]
    assert batch.labels[2][0].tolist() == [[0.0, 2.5, 8.0, 6.5, 0.0]]  # the two-wheeler box is not kept


def test_label_map_file_wins_and_unknown_sizes_need_one(tmp_path):
    lab = np.zeros(1, MPX_LABEL_DTYPE)
    lab["w"] = lab["h"] = 5.0
    write_rvt_sequence(tmp_path / "train" / "s", np.zeros((2, 20, 8, 8), np.uint8), [50_000, 100_000], lab,
                       [0], [1])
    with pytest.raises(FileNotFoundError, match=r"no label_map_dictionary.json .*neither Gen1 nor 1Mpx"):
        describe_dataset(tmp_path)
    save_label_map(tmp_path, {0: "thing"})
    info = describe_dataset(tmp_path)
    assert info.label_map == {0: "thing"} and info.sensor_size == (8, 8)


@pytest.mark.parametrize("mode", ["random", "mixed"])
def test_random_and_mixed_clips_end_at_labelled_representations(gen1, mode):
    config = DataConfig(num_tbins=3, batch_size=2, sampling=mode, hflip_prob=0.0)
    loader = build_dataloader(gen1, "train", config, train=True)
    checked = 0
    for batch in loader:
        for b, vi in enumerate(batch.video_infos):
            if not vi.path or (mode == "mixed" and b == 0):  # padding, or mixed's stream column
                continue
            ts = np.load(f"{vi.path}/{REPR}/timestamps_us.npy")
            start = int(np.searchsorted(ts, vi.bin_end(0)))
            assert vi.first_chunk and batch.frame_is_labeled[:, b].any()
            if start > 0:  # a clip ends at a labelled representation (unless clamped at the video start)
                assert batch.frame_is_labeled[2, b]
            checked += 1
    assert checked


def test_ddp_shards_are_disjoint_and_cover_every_sequence(gen1):
    config = DataConfig(num_tbins=4, batch_size=1)
    seen = []
    for rank in (0, 1):
        loader = build_dataloader(gen1, "train", config, train=True, rank=rank, world_size=2)
        paths = {vi.path for batch in loader for vi in batch.video_infos if vi.path}
        seen.append(paths)
    assert seen[0].isdisjoint(seen[1]) and len(seen[0] | seen[1]) == 2


def test_two_workers_give_the_same_batches(gen1):
    def run(workers):
        config = DataConfig(num_tbins=4, batch_size=2, num_workers=workers, hflip_prob=0.5)
        return [(b.inputs.clone(), [[lab.clone() for lab in row] for row in b.labels])
                for b in build_dataloader(gen1, "train", config, train=True)]
    a, b = run(0), run(2)
    assert len(a) == len(b)
    for (ia, la), (ib, lb) in zip(a, b, strict=True):
        assert torch.equal(ia, ib)
        pairs = [(x, y) for ra, rb in zip(la, lb, strict=True) for x, y in zip(ra, rb, strict=True)]
        assert all(torch.equal(x, y) for x, y in pairs)


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_missing_labels_v2_names_the_folder(gen1, tmp_path):
    root = tmp_path / "ds"
    _copy(gen1 / "train", root / "train")
    shutil.rmtree(root / "train" / "train1" / "labels_v2")
    with pytest.raises(FileNotFoundError, match=r"train1: no labels_v2/labels\.npz"):
        build_dataloader(root, "train", DataConfig(), train=True)
    batch = next(iter(stream_batches([root / "train" / "train1"], DataConfig(num_tbins=2))))
    assert not batch.frame_is_labeled.any()  # detection: labels optional


def test_mismatched_timestamps_and_bad_frame_indices_name_the_file(gen1, tmp_path):
    seq = _copy(gen1 / "val" / "val0", tmp_path / "s")
    ts_file = seq / REPR / "timestamps_us.npy"
    ts = np.load(ts_file)
    np.save(ts_file, ts[:-1])
    with pytest.raises(ValueError, match=rf"timestamps_us\.npy: int64 \[{ts.size - 1}\] end times for the "
                                         rf"{ts.size} representations of .*event_representations\.h5"):
        probe_rvt_sequence(seq)
    np.save(ts_file, ts)
    idx_file = seq / REPR / "objframe_idx_2_repr_idx.npy"
    idx = np.load(idx_file)
    idx[2] = ts.size
    np.save(idx_file, idx)
    with pytest.raises(ValueError, match=rf"objframe_idx_2_repr_idx\.npy: entry 2 = {ts.size} is not a "
                                         rf"representation index in \[0, {ts.size}\)"):
        probe_rvt_sequence(seq)
    np.save(idx_file, idx[:-1].clip(0, ts.size - 1))
    with pytest.raises(ValueError, match=r"objframe_idx_2_repr_idx\.npy has 4 label frames but .*labels\.npz "
                                         r"has 5"):
        load_rvt_labels(probe_rvt_sequence(seq))


def test_blosc_file_without_hdf5plugin_names_the_file(gen1):
    # a fresh interpreter in which "import hdf5plugin" fails (h5py itself has no Blosc filter)
    code = ("import sys; sys.modules['hdf5plugin'] = None\n"
            "import h5py; assert not h5py.h5z.filter_avail(32001)\n"
            "from evdet.data.rvt import probe_rvt_sequence\n"
            "try:\n    probe_rvt_sequence(sys.argv[1])\n"
            "except ValueError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code, str(gen1 / "val" / "val0")], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert re.search(r"val0/.*event_representations\.h5: reading RVT's Blosc-compressed representations "
                     r"needs the Blosc HDF5 filter \(32001\), which is not available: pip install hdf5plugin",
                     out.stdout), out.stdout


def test_repo_label_maps_agree_with_rvt_class_names():
    from pathlib import Path

    from evdet.data.rvt import RVT_LABEL_MAPS
    from evdet.io.label_map import load_label_map

    maps = Path(__file__).resolve().parents[2] / "label_maps"
    assert load_label_map(maps / "gen4_rvt_label_map_dictionary.json") == RVT_LABEL_MAPS["gen4"]
    assert load_label_map(maps / "gen1_label_map_dictionary.json") == RVT_LABEL_MAPS["gen1"]


@pytest.mark.parametrize("which", ["gen1", "ds2"])
def test_validation_ground_truth_equals_evdet_eval_ground_truth(gen1, tmp_path, which):
    # training validation turns batch labels into rows (sensor pixels, bin end times); evdet-eval reads the
    # folder with rvt_ground_truth: the same boxes, so both score the same images
    from evdet.inference.label_rows import batch_label_rows

    if which == "gen1":
        seq, label_map = gen1 / "val" / "val0", GEN1_LABEL_MAP
    else:
        lab = np.zeros(3, MPX_LABEL_DTYPE)
        lab["t"], lab["x"], lab["y"] = [100_000, 200_000, 200_000], [1270.0, 13.0, 600.0], [3.0, 9.0, 700.0]
        lab["w"], lab["h"], lab["class_id"] = [30.0, 41.0, 77.0], [40.0, 21.0, 50.0], [2, 0, 1]
        seq = write_rvt_sequence(tmp_path / "s", np.zeros((3, 20, 360, 640), np.uint8),
                                 [50_000, 100_000, 200_000], lab, [0, 1], [1, 2], ds2=True)
        label_map = {0: "pedestrian", 1: "two wheeler", 2: "car"}
    rows = []
    for batch in stream_batches([seq], DataConfig(num_tbins=2, batch_size=1), label_map=label_map):
        dets = [[torch.zeros((0, 6))] for _ in range(batch.num_tbins)]
        rows += [r.ground_truth for r in batch_label_rows(batch, dets, labeled_only=True)]
    got = np.concatenate(rows)
    want = rvt_ground_truth(seq)
    assert got.size == want.size > 0
    for f in ("t", "x", "y", "w", "h", "class_id"):
        np.testing.assert_allclose(got[f], want[f], rtol=0, atol=1e-4, err_msg=f)
