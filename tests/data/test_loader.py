"""build_dataloader / describe_dataset / stream_batches on real HDF5 and DAT files written to tmp_path."""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch

from evdet.data import DataConfig, build_dataloader, describe_dataset, stream_batches
from evdet.io.boxes import save_boxes
from evdet.io.dtypes import BBOX_DTYPE, EVENT_DTYPE
from evdet.io.h5 import H5TensorReader, H5TensorWriter
from evdet.io.label_map import save_label_map

DT = 10_000
SIZE = (12, 16)


def write_video(path, rng, n, *, start_ts=0, channels=2, delta_t=DT, labels=True):
    frames = np.round(rng.random((n, channels, *SIZE)) * 255) / 255
    with H5TensorWriter(path, (channels, *SIZE), representation="histo", delta_t=delta_t, sensor_size=SIZE,
                        start_ts=start_ts, store_as_uint8=True) as w:
        w.write(frames.astype(np.float32))
    if labels:
        boxes = np.zeros(n, dtype=BBOX_DTYPE)
        boxes["t"] = start_ts + (np.arange(n) + 1) * delta_t
        boxes["x"], boxes["y"], boxes["w"], boxes["h"] = 1, 2, 6, 5
        boxes["class_id"] = np.arange(n) % 2
        boxes["track_id"] = 0
        save_boxes(path.with_name(path.stem + "_bbox.npy"), boxes)


def make_dataset_dir(root, rng, train=(5, 17, 3), val=(7, 30, 1, 12, 25)):
    root.mkdir(parents=True)
    save_label_map(root / "label_map_dictionary.json", {0: "car", 1: "pedestrian"})
    for split, lengths in (("train", train), ("val", val)):
        (root / split).mkdir(parents=True)
        for i, n in enumerate(lengths):
            write_video(root / split / f"rec{i}.h5", rng, n, start_ts=1000 * i)
    return root


@pytest.fixture
def dataset_dir(tmp_path, rng):
    return make_dataset_dir(tmp_path / "ds", rng)


def test_describe_dataset(dataset_dir):
    info = describe_dataset(dataset_dir)
    assert info.in_channels == 2 and info.delta_t == DT and info.representation == "histo"
    assert info.sensor_size == SIZE and info.stored_size == SIZE
    assert [p.name for p in info.splits["val"]] == [f"rec{i}.h5" for i in range(5)]
    assert info.label_map == {0: "car", 1: "pedestrian"}


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_validation_covers_every_frame_once_across_ranks(dataset_dir, world_size):
    config = DataConfig(num_tbins=4, batch_size=2)
    info = describe_dataset(dataset_dir)
    seen = {}
    lengths = set()
    for rank in range(world_size):
        loader = build_dataloader(dataset_dir, "val", config, train=False, rank=rank, world_size=world_size,
                                  info=info)
        lengths.add(len(loader))
        for batch in loader:
            for b, vi in enumerate(batch.video_infos):
                if batch.padding[b]:
                    continue
                with H5TensorReader(vi.path) as r:
                    f0 = (vi.start_ts - r.start_ts) // DT
                    np.testing.assert_array_equal(batch.float_inputs()[:vi.num_valid_bins, b].numpy(),
                                                  r.read(f0, f0 + vi.num_valid_bins))
                for f in range(f0, f0 + vi.num_valid_bins):
                    seen[(vi.path, f)] = seen.get((vi.path, f), 0) + 1
                # val: labelled bins are exactly the annotation instants; box class alternates
                assert batch.frame_is_labeled[:vi.num_valid_bins, b].all()
                assert [int(batch.labels[k][b][0, 4]) for k in range(vi.num_valid_bins)] == [
                    f % 2 for f in range(f0, f0 + vi.num_valid_bins)]
    assert len(lengths) == 1
    expected = {(str(p), f) for p, v in zip(info.splits["val"], info.videos["val"], strict=True)
                for f in range(v.num_frames)}
    assert set(seen) == expected and set(seen.values()) == {1}


def test_train_workers_identical_and_epochs_differ(dataset_dir):
    config = DataConfig(num_tbins=4, batch_size=2, hflip_prob=0.5, zoom_out_prob=0.5, num_workers=0, seed=3)
    a = list(build_dataloader(dataset_dir, "train", config, train=True, epoch=1))
    loader = build_dataloader(dataset_dir, "train", DataConfig(**{**config.__dict__, "num_workers": 2}),
                              train=True, epoch=0)
    loader.sampler.set_epoch(1)
    b = list(loader)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.inputs, y.inputs) and x.video_infos == y.video_infos
        assert torch.equal(x.mask_keep_memory, y.mask_keep_memory)
    loader.sampler.set_epoch(2)
    c = list(loader)
    assert [v.path for x in a for v in x.video_infos] != [v.path for x in c for v in x.video_infos] or \
        [v.hflip for x in a for v in x.video_infos] != [v.hflip for x in c for v in x.video_infos]


def test_random_sampling_mode(dataset_dir):
    config = DataConfig(num_tbins=4, batch_size=3, sampling="random")
    batches = list(build_dataloader(dataset_dir, "train", config, train=True))
    cols = [(x, b) for x in batches for b in range(3) if not x.padding[b]]
    assert cols and all(x.mask_keep_memory[b] == 0 for x, b in cols)
    assert all(x.frame_is_labeled[:, b].any() for x, b in cols)


def test_network_size_and_class_subset(dataset_dir):
    config = DataConfig(num_tbins=4, batch_size=1, height=6, width=8, classes=("pedestrian",))
    batch = next(iter(build_dataloader(dataset_dir, "val", config, train=False)))
    assert batch.inputs.shape == (4, 1, 2, 6, 8)
    labels = [batch.labels[k][0] for k in range(4)]
    assert [lab.shape[0] for lab in labels] == [0, 1, 0, 1]  # class 0 (car) frames dropped
    np.testing.assert_allclose(labels[1][0].numpy(), [0.5, 1.0, 3.5, 3.5, 0.0])


def test_missing_label_file(dataset_dir):
    (dataset_dir / "val" / "rec2_bbox.npy").unlink()
    with pytest.raises(FileNotFoundError, match="rec2_bbox.npy"):
        build_dataloader(dataset_dir, "val", DataConfig(num_tbins=4), train=False)
    with pytest.warns(UserWarning, match="rec2_bbox.npy"):
        config = DataConfig(num_tbins=4, require_labels=False)
        loader = build_dataloader(dataset_dir, "val", config, train=False)
    for batch in loader:
        for b, vi in enumerate(batch.video_infos):
            if vi.path.endswith("rec2.h5"):
                assert not batch.frame_is_labeled[:, b].any()


def test_unknown_class_lists_valid_names(dataset_dir):
    with pytest.raises(ValueError, match=r"'truck'.*\['car', 'pedestrian'\]"):
        build_dataloader(dataset_dir, "val", DataConfig(classes=("truck",)), train=False)


def test_bad_hdf5_files_named(tmp_path, rng):
    root = make_dataset_dir(tmp_path / "ds", rng, train=(3,), val=(3,))
    bad = root / "val" / "rec0.h5"
    with h5py.File(bad, "a") as f:
        del f["data"].attrs["delta_t"]
    with pytest.raises(ValueError, match=r"rec0\.h5.*delta_t"):
        describe_dataset(root)
    with h5py.File(bad, "a") as f:
        f["data"].attrs["delta_t"] = DT
        f["data"].attrs["shape"] = np.array([2, 12, 15])
    with pytest.raises(ValueError, match=r"rec0\.h5.*shape"):
        describe_dataset(root)


def test_inconsistent_files_name_both(tmp_path, rng):
    root = make_dataset_dir(tmp_path / "ds", rng, train=(3,), val=(3,))
    write_video(root / "val" / "zz.h5", rng, 3, channels=3)
    with pytest.raises(ValueError, match=r"channels.*rec0\.h5.*zz\.h5"):
        describe_dataset(root)


def test_dataset_layout_errors(tmp_path, rng):
    root = make_dataset_dir(tmp_path / "ds", rng, train=(3,), val=(3,))
    (root / "test").mkdir()
    with pytest.raises(ValueError, match=r"test.*holds no recording"):
        describe_dataset(root)
    (root / "test").rmdir()
    (root / "label_map_dictionary.json").unlink()
    with pytest.raises(FileNotFoundError, match="label_map_dictionary.json"):
        describe_dataset(root)
    with pytest.raises(FileNotFoundError, match="dataset directory"):
        describe_dataset(tmp_path / "nope")
    with pytest.raises(ValueError, match="no split 'test'"):
        save_label_map(root / "label_map_dictionary.json", {0: "car"})
        build_dataloader(root, "test", DataConfig(), train=False)


def test_stream_batches_h5_in_order(tmp_path, rng):
    paths = [tmp_path / "a.h5", tmp_path / "b.h5"]
    write_video(paths[0], rng, 6)
    write_video(paths[1], rng, 3, labels=False)
    batches = list(stream_batches(paths, DataConfig(num_tbins=4), batch_size=1))
    assert [(b.video_infos[0].path, b.video_infos[0].start_ts) for b in batches] == [
        (str(paths[0]), 0), (str(paths[0]), 4 * DT), (str(paths[1]), 0)]
    assert [b.mask_keep_memory.item() for b in batches] == [0.0, 1.0, 0.0]
    assert batches[0].frame_is_labeled[:, 0].all() and not batches[2].frame_is_labeled.any()
    assert batches[0].labels[1][0][0, 4] == 1  # original class id kept without a label map


def test_recordings_of_two_sensors_streamed_together_are_named(tmp_path, rng):
    from evdet.io.dat import write_dat

    ev = np.zeros(10, dtype=EVENT_DTYPE)
    ev["t"] = np.arange(10) * 1000
    write_dat(tmp_path / "small_td.dat", ev, 12, 16)
    write_dat(tmp_path / "large_td.dat", ev, 24, 32)
    paths = [tmp_path / "small_td.dat", tmp_path / "large_td.dat"]
    with pytest.raises(ValueError, match=r"recordings streamed side by side .* must share their format; "
                                         r"process them in separate runs: sensor_size = \(12, 16\) in "
                                         r".*small_td.dat but \(24, 32\) in .*large_td.dat"):
        list(stream_batches(paths, DataConfig(num_tbins=4, delta_t=DT), batch_size=2))


def test_stream_batches_raw_dat_matches_direct_conversion(tmp_path, rng):
    from evdet.io.dat import write_dat
    from evdet.preprocessing import events_to_tensor
    n = 2000
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 95_000, n))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 16, n), rng.integers(0, 12, n), rng.integers(0, 2, n)
    path = tmp_path / "rec_td.dat"
    write_dat(path, ev, 12, 16)
    config = DataConfig(num_tbins=4, delta_t=DT)
    batches = list(stream_batches([path], config))
    got = torch.cat([b.float_inputs()[:b.video_infos[0].num_valid_bins, 0] for b in batches]).numpy()
    ref = events_to_tensor(ev, "histo", got.shape[0], 12, 16, DT)
    assert got.shape[0] == 95_000 // DT + 1
    np.testing.assert_allclose(got, ref)
    half = list(stream_batches([path], DataConfig(num_tbins=4, delta_t=DT, height=6, width=8)))
    ref_half = events_to_tensor(ev, "histo", 4, 12, 16, DT, downsampling_factor=1)
    np.testing.assert_allclose(half[0].float_inputs()[:, 0].numpy(), ref_half)


@pytest.mark.parametrize("name", ["sample_ncars.dat", "evt3_sample.raw"])
def test_stream_batches_real_recordings(real_data, name):
    from evdet.io.read import open_events, read_events
    from evdet.preprocessing import events_to_tensor
    path = real_data / name
    with open_events(path) as reader:
        height, width = reader.height, reader.width
    d = 0 if name.endswith(".dat") else 2  # 1280x720 -> 320x180 (power-of-two downsampling)
    config = DataConfig(num_tbins=12, delta_t=10_000 if d == 0 else 50_000, height=height >> d,
                        width=width >> d)
    batches = list(stream_batches([path], config))
    got = torch.cat([b.float_inputs()[:b.video_infos[0].num_valid_bins, 0] for b in batches]).numpy()
    events = read_events(path)
    assert got.shape[0] == int(events["t"].max()) // config.delta_t + 1
    assert got.shape[1:] == (2, height >> d, width >> d)
    full = events_to_tensor(events, "histo", got.shape[0], height, width, config.delta_t)
    f = 1 << d  # one preprocessing for every source: full sensor resolution, then an area resize
    ref = full.reshape(full.shape[0], 2, height >> d, f, width >> d, f).mean(axis=(3, 5))
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert got.sum() > 0
    assert batches[0].mask_keep_memory.item() == 0
    assert all(b.mask_keep_memory.item() == 1 for b in batches[1:])


@pytest.mark.parametrize("hflip_prob", [0.0, 1.0])
def test_uint8_inputs_equal_float_path_and_workers_change_nothing(dataset_dir, hflip_prob):
    """No zoom: every batch of the uint8-stored dataset keeps its stored bytes (a flip is applied to the
    bytes), in process and from workers (through shared memory); the values equal the float32 path's."""
    config = DataConfig(num_tbins=4, batch_size=2, hflip_prob=hflip_prob, num_workers=0, seed=1)
    floats = list(build_dataloader(dataset_dir, "train", replace(config, uint8_inputs=False), train=True))
    a = list(build_dataloader(dataset_dir, "train", config, train=True))
    loader = build_dataloader(dataset_dir, "train", replace(config, num_workers=2), train=True)
    b = list(loader)
    assert len(floats) == len(a) == len(b) > 0
    for f, x, y in zip(floats, a, b, strict=True):
        assert f.inputs.dtype == torch.float32 and f.input_scale == 1.0
        assert x.inputs.dtype == y.inputs.dtype == torch.uint8 and x.input_scale == y.input_scale == 255.0
        assert torch.equal(x.inputs, y.inputs) and x.video_infos == y.video_infos
        assert torch.equal(f.inputs, x.float_inputs()) and torch.equal(f.inputs, y.to("cpu").inputs)
        assert torch.equal(x.padding, y.padding) and torch.equal(x.frame_is_labeled, y.frame_is_labeled)
        assert f.video_infos == x.video_infos
    assert list(loader) and loader.persistent_workers  # a second epoch with the same workers
    assert any(info.hflip == (hflip_prob == 1.0) for batch in a for info in batch.video_infos if info.path)


def test_zoomed_batches_are_float32(dataset_dir):
    config = DataConfig(num_tbins=4, batch_size=2, hflip_prob=0.0, zoom_in_prob=1.0, seed=1)
    batches = list(build_dataloader(dataset_dir, "train", config, train=True))
    data = [b for b in batches if not b.padding.all()]  # (all-padding batches stay uint8: no column zoomed)
    assert data and all(b.inputs.dtype == torch.float32 and b.input_scale == 1.0 for b in data)


def test_dsec_sequence_folders_are_a_dataset_with_labels(tmp_path, rng):
    """A split of DSEC sequences (``<seq>/events/left/events.h5`` with ``t_offset`` and
    ``<seq>/object_detections/left/tracks.npy``) trains as it is: bins start at ``t_offset``, and the
    tracks label the bins ending at their (absolute) times."""
    from evdet.preprocessing import events_to_tensor

    n, offset = 2000, 7_000_000_000
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 40_000, n))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 16, n), rng.integers(0, 12, n), rng.integers(0, 2, n)
    seq = tmp_path / "train" / "zurich_city_00_a"
    (seq / "events" / "left").mkdir(parents=True)
    with h5py.File(seq / "events" / "left" / "events.h5", "w") as f:
        for k, dtype in (("x", np.uint16), ("y", np.uint16), ("p", np.uint8), ("t", np.uint32)):
            f.create_dataset(f"events/{k}", data=ev[k].astype(dtype))
        f["t_offset"] = np.int64(offset)
        f["ms_to_idx"] = np.searchsorted(ev["t"], 1000 * np.arange(41)).astype(np.uint64)
    tracks = np.zeros(2, dtype=BBOX_DTYPE)
    tracks["t"] = offset + np.array([2 * DT, 3 * DT])  # ends of bins 1 and 2
    tracks["x"], tracks["y"], tracks["w"], tracks["h"], tracks["class_id"] = 2, 3, 5, 4, [0, 1]
    (seq / "object_detections" / "left").mkdir(parents=True)
    np.save(seq / "object_detections" / "left" / "tracks.npy", tracks)
    save_label_map(tmp_path, {0: "pedestrian", 1: "car"})

    info = describe_dataset(tmp_path, delta_t=DT)
    (spec,) = info.videos["train"]
    assert spec.path.endswith("events.h5") and spec.start_ts == offset and spec.sensor_size == (12, 16)
    (batch,) = stream_batches([seq / "events" / "left" / "events.h5"], DataConfig(num_tbins=4, delta_t=DT))
    assert [batch.labels[k][0].shape[0] for k in range(4)] == [0, 1, 1, 0]
    assert batch.frame_is_labeled[:, 0].tolist() == [False, True, True, False]
    ref = events_to_tensor(ev, "histo", 4, 12, 16, DT)  # the file's times are relative to t_offset
    np.testing.assert_allclose(batch.float_inputs()[:, 0].numpy(), ref)


@pytest.mark.parametrize("keep", ["nothing", "views"])
def test_reused_worker_buffers_never_change_what_the_main_process_still_sees(dataset_dir, keep):
    """Workers write batches into reused shared-memory buffers (evdet.data.shared_memory): a buffer is only
    rewritten once the main process dropped every tensor over it. Many batches per worker (more than its
    buffers); "views" keeps a view of every batch's inputs (not the batch) until the epoch ends, so every
    buffer stays taken and the workers must fall back to fresh ones; "nothing" drops each batch (buffers
    are reused) after cloning it. Both equal the in-process batches."""
    config = DataConfig(num_tbins=1, batch_size=1, hflip_prob=0.5, num_workers=0, seed=3)
    expected = [b.inputs.clone() for b in build_dataloader(dataset_dir, "train", config, train=True)]
    loader = build_dataloader(dataset_dir, "train", replace(config, num_workers=2), train=True)
    if keep == "views":
        got = [b.inputs[:, :1] for b in loader]  # views: the batches themselves are dropped
    else:
        got = [b.inputs.clone() for b in loader]
    assert len(expected) == len(got) > 4 * 2 * 2
    assert all(torch.equal(x, y) for x, y in zip(expected, got, strict=True))


def test_label_files_with_class_ids_the_label_map_does_not_name_warn(dataset_dir):
    # before: a label map of the wrong dataset silently dropped the boxes of the ids it lacked
    import warnings

    save_label_map(dataset_dir / "label_map_dictionary.json", {0: "car"})
    with pytest.warns(UserWarning, match=r"boxes have class ids \[1\] that the .*label_map_dictionary.json "
                                         r"does not name \(first in .*rec0_bbox\.npy\): they are ignored"):
        build_dataloader(dataset_dir, "train", DataConfig(num_tbins=4), train=True)
    save_label_map(dataset_dir / "label_map_dictionary.json", {0: "car", 1: "pedestrian"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_dataloader(dataset_dir, "train", DataConfig(num_tbins=4, classes=("car",)), train=True)
