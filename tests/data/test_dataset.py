"""SequenceDataset + EpochSampler on in-memory videos: every frame delivered once, resets, padding,
labels, augmentation together with boxes, and worker-count independence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from evdet.data.augment import Augmentation
from evdet.data.dataset import EpochSampler, LabelOptions, SequenceDataset, VideoLabels
from evdet.data.loader import _no_collate
from evdet.data.schedule import AugmentationParams, ChunkItem
from evdet.io.dtypes import BBOX_DTYPE

DT = 1000
DATA: dict[str, np.ndarray] = {}


def make_videos(tensor_video, rng, lengths, size=(6, 8), start_ts=0):
    """HDF5 videos of random frames (``DATA[path]`` keeps each video's frames) with one box per frame."""
    videos, labels = [], []
    for i, n in enumerate(lengths):
        data = rng.random((n, 2, *size)).astype(np.float32) + 0.01  # never zero
        videos.append(tensor_video(f"v{i}", data, start_ts, DT))
        DATA[videos[-1].path] = data
        boxes = np.zeros(n, dtype=BBOX_DTYPE)  # one box per frame, at its end; x encodes the frame
        boxes["t"] = start_ts + (np.arange(n) + 1) * DT
        boxes["x"], boxes["y"], boxes["w"], boxes["h"] = np.arange(n) % 5, 1, 3, 3
        boxes["track_id"] = np.arange(n)
        labels.append(VideoLabels.from_boxes(boxes, None))
    return videos, labels


def make_dataset(videos, labels, t=4, network=(6, 8)):
    return SequenceDataset(videos, labels, t, network, LabelOptions({0: 0}))


def reconstruct(batches, videos):
    got = {v.path: np.zeros((v.num_frames, v.channels, *v.stored_size), dtype=np.float32) for v in videos}
    count = {v.path: np.zeros(v.num_frames, dtype=int) for v in videos}
    for batch in batches:
        for b, info in enumerate(batch.video_infos):
            if batch.padding[b]:
                continue
            f0 = (info.start_ts - 0) // info.delta_t
            n = info.num_valid_bins
            got[info.path][f0:f0 + n] = batch.float_inputs()[:n, b].numpy()
            count[info.path][f0:f0 + n] += 1
            assert (batch.inputs[n:, b] == 0).all() and not batch.frame_is_labeled[n:, b].any()
    return got, count


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_every_frame_delivered_once(rng, batch_size, tensor_video):
    videos, labels = make_videos(tensor_video, rng, [3, 9, 4, 13, 1, 7])
    ds = make_dataset(videos, labels)
    sampler = EpochSampler([v.num_frames for v in videos], 4, batch_size, shuffle=True, seed=1)
    batches = [ds[p] for p in sampler]
    got, count = reconstruct(batches, videos)
    for v in videos:
        assert (count[v.path] == 1).all()
        np.testing.assert_array_equal(got[v.path], DATA[v.path])
    for batch in batches:
        assert batch.inputs.shape == (4, batch_size, 2, 6, 8) and batch.inputs.dtype == torch.float32
        assert batch.mask_keep_memory.dtype == torch.float32 and batch.frame_is_labeled.dtype == torch.bool
        for b, info in enumerate(batch.video_infos):
            first = (not batch.padding[b]) and info.start_ts == 0
            assert batch.mask_keep_memory[b] == (0.0 if (first or batch.padding[b]) else 1.0)
            if batch.padding[b]:
                assert (batch.inputs[:, b] == 0).all() and not batch.frame_is_labeled[:, b].any()
                assert info.path == "" and all(batch.labels[k][b].shape == (0, 5) for k in range(4))
            else:
                n = info.num_valid_bins
                assert batch.frame_is_labeled[:n, b].all()
                for k in range(n):  # the box of frame f sits in bin k with x = f % 5
                    f = info.start_ts // DT + k
                    assert batch.labels[k][b][:, 0].tolist() == [float(f % 5)]


def test_workers_do_not_change_batches(rng, tensor_video):
    videos, labels = make_videos(tensor_video, rng, [5, 11, 2, 8])
    ds = make_dataset(videos, labels)
    aug = AugmentationParams(hflip_prob=0.5, zoom_in_prob=0.3, zoom_out_prob=0.3, max_zoom=2.0)

    def run(workers):
        sampler = EpochSampler([v.num_frames for v in videos], 4, 3, shuffle=True, seed=4, augmentation=aug)
        sampler.set_epoch(2)
        loader = DataLoader(ds, batch_size=None, sampler=sampler, num_workers=workers, collate_fn=_no_collate)
        return list(loader)

    a, b = run(0), run(2)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.inputs, y.inputs) and torch.equal(x.frame_is_labeled, y.frame_is_labeled)
        assert x.video_infos == y.video_infos
        assert all(torch.equal(p, q) for rp, rq in zip(x.labels, y.labels, strict=True)
                   for p, q in zip(rp, rq, strict=True))


def test_hflip_moves_tensor_and_boxes_together(rng, tensor_video):
    size = (6, 8)
    data = np.zeros((4, 1, *size), dtype=np.float32)
    data[:, 0, 2:5, 1:4] = 1.0  # a blob exactly where the box is
    spec = tensor_video("a", data, 0, DT)
    boxes = np.zeros(4, dtype=BBOX_DTYPE)
    boxes["t"], boxes["x"], boxes["y"], boxes["w"], boxes["h"] = (np.arange(4) + 1) * DT, 1, 2, 3, 3
    boxes["track_id"] = 0
    ds = make_dataset([spec], [VideoLabels.from_boxes(boxes, None)])
    for aug in (Augmentation(hflip=True), Augmentation(zoom=2.0, pos_y=0.0, pos_x=0.0),
                Augmentation(zoom=0.5, pos_y=1.0, pos_x=1.0)):
        batch = ds[[ChunkItem(0, 0, True, aug)]]
        box = batch.labels[0][0][0]
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        img = batch.float_inputs()[0, 0, 0].numpy()
        ys, xs = np.mgrid[0:6, 0:8] + 0.5
        cy, cx = (img * ys).sum() / img.sum(), (img * xs).sum() / img.sum()
        assert x1 < cx < x2 and y1 < cy < y2  # the blob's centre stays inside the transformed box
        assert abs(cx - (x1 + x2) / 2) < 0.3 and abs(cy - (y1 + y2) / 2) < 0.3
        assert batch.video_infos[0].hflip == aug.hflip


def test_resize_to_network_size_scales_boxes(rng, tensor_video):
    videos, labels = make_videos(tensor_video, rng, [4], size=(8, 16))
    ds = make_dataset(videos, labels, network=(4, 8))
    batch = ds[[ChunkItem(0, 0, True)]]
    assert batch.inputs.shape == (4, 1, 2, 4, 8)
    expected = DATA[videos[0].path].reshape(4, 2, 4, 2, 8, 2).mean((3, 5))  # 2x2 area average
    np.testing.assert_allclose(batch.float_inputs()[:, 0].numpy(), expected, rtol=1e-5)
    assert batch.video_infos[0].scale == (2.0, 2.0)
    np.testing.assert_allclose(batch.labels[1][0][0, :4].numpy(), [0.5, 0.5, 2.0, 2.0])


def test_unlabelled_video_never_labelled(rng, tensor_video):
    videos, _ = make_videos(tensor_video, rng, [6])
    ds = make_dataset(videos, [None])
    batch = ds[[ChunkItem(0, 0, True), ChunkItem(0, 4, False)]]
    assert not batch.frame_is_labeled.any() and batch.mask_keep_memory.tolist() == [0.0, 1.0]


def test_to_and_pin_memory_keep_fields(rng, tensor_video):
    videos, labels = make_videos(tensor_video, rng, [4])
    batch = make_dataset(videos, labels)[[ChunkItem(0, 0, True)]]
    moved = batch.to("cpu")
    assert torch.equal(moved.inputs, batch.inputs) and moved.video_infos == batch.video_infos
    assert len(moved.labels) == 4 and len(moved.labels[0]) == 1
