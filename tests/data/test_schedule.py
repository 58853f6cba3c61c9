"""Stream scheduling, epochs, DDP sharding, sub-sequences and random clips (pure bookkeeping)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evdet.data.schedule import AugmentationParams, plan_epoch, shard_videos

LENGTHS = [5, 30, 12, 1, 47, 24, 13, 3, 60]  # frames; T = 12: shorter than a chunk, exact, ragged


def frames_delivered(plans, lengths, t_bins):
    counts = [np.zeros(n, dtype=int) for n in lengths]
    for batch in plans:
        for item in batch:
            if not item.is_padding:
                stop = min(item.start_frame + t_bins, lengths[item.video])
                counts[item.video][item.start_frame:stop] += 1
    return counts


@pytest.mark.parametrize("batch_size", [1, 3, 8])
@pytest.mark.parametrize("shuffle", [False, True])
def test_stream_delivers_every_frame_once_in_order(batch_size, shuffle):
    t = 12
    plans = plan_epoch(LENGTHS, t, batch_size, shuffle=shuffle, seed=3)
    assert all(len(b) == batch_size for b in plans)
    assert all((c == 1).all() for c in frames_delivered(plans, LENGTHS, t))
    # per column: each video's chunks back to back, first chunk flagged, in chronological order
    for col in range(batch_size):
        items = [b[col] for b in plans]
        for prev, cur in zip(items, items[1:], strict=False):
            if cur.is_padding:
                continue
            if cur.first_chunk:
                assert cur.start_frame == 0
            else:
                assert prev.video == cur.video and cur.start_frame == prev.start_frame + t
        # padding only at the end of a stream
        pads = [i for i, it in enumerate(items) if it.is_padding]
        assert pads == list(range(len(items) - len(pads), len(items)))
    assert len(plans) >= math.ceil(sum(math.ceil(n / t) for n in LENGTHS) / batch_size)


def test_epochs_reshuffle_reproducibly():
    a0 = plan_epoch(LENGTHS, 12, 3, shuffle=True, seed=1, epoch=0)
    a1 = plan_epoch(LENGTHS, 12, 3, shuffle=True, seed=1, epoch=1)
    assert plan_epoch(LENGTHS, 12, 3, shuffle=True, seed=1, epoch=0) == a0
    firsts = lambda plans: [it.video for b in plans for it in b if it.first_chunk]  # noqa: E731
    assert firsts(a0) != firsts(a1)
    assert sorted(firsts(a0)) == sorted(firsts(a1)) == list(range(len(LENGTHS)))


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_ddp_shards_cover_every_video_once(world_size):
    t, b = 12, 2
    per_rank = [plan_epoch(LENGTHS, t, b, rank=r, world_size=world_size) for r in range(world_size)]
    assert len({len(p) for p in per_rank}) == 1  # same number of batches on every rank
    videos = [sorted({it.video for batch in p for it in batch if not it.is_padding}) for p in per_rank]
    flat = [v for vs in videos for v in vs]
    assert sorted(flat) == list(range(len(LENGTHS)))  # disjoint and complete
    total = np.zeros(len(LENGTHS), dtype=object)
    for p in per_rank:
        for i, c in enumerate(frames_delivered(p, LENGTHS, t)):
            total[i] = c if isinstance(total[i], int) else total[i] + c
    assert all((c == 1).all() for c in total)
    chunks = [sum(math.ceil(LENGTHS[v] / t) for v in vs) for vs in videos]
    assert max(chunks) - min(chunks) <= max(math.ceil(n / t) for n in LENGTHS)


def test_shard_videos_balanced():
    shares = shard_videos([1] * 10, 3)
    assert sorted(len(s) for s in shares) == [3, 3, 4]
    with pytest.raises(ValueError, match="world_size"):
        shard_videos([1], 0)


def test_max_consecutive_batches_cuts_subsequences():
    t = 4
    plans = plan_epoch([40, 9], t, 2, shuffle=True, max_consecutive=3)
    items = [it for b in plans for it in b if not it.is_padding]
    firsts = sorted((it.video, it.start_frame) for it in items if it.first_chunk)
    assert firsts == [(0, 0), (0, 12), (0, 24), (0, 36), (1, 0)]
    assert all((c == 1).all() for c in frames_delivered(plans, [40, 9], t))


def test_random_clips_end_at_labelled_frames_and_reset():
    labeled = [np.array([20, 35]), np.array([], dtype=np.int64), np.array([3])]
    lengths = [40, 10, 30]
    plans = plan_epoch(lengths, 12, 4, mode="random", seed=5, labeled_frames=labeled)
    items = [it for b in plans for it in b if not it.is_padding]
    assert len(items) >= sum(math.ceil(n / 12) for n in lengths)
    for it in items:
        assert it.first_chunk
        end = min(it.start_frame + 11, lengths[it.video] - 1)
        if it.video == 0:
            assert end in (20, 35)
        if it.video == 2:
            assert it.start_frame == 0
    with pytest.raises(ValueError, match="labeled_frames"):
        plan_epoch(lengths, 12, 4, mode="random")


def test_mixed_half_streams_half_random():
    labeled = [np.arange(0, 40, 5), np.arange(0, 20, 5)]
    plans = plan_epoch([40, 20], 5, 4, mode="mixed", labeled_frames=labeled, shuffle=True)
    stream_cols = [[b[c] for b in plans] for c in range(2)]
    assert all((c == 1).all() for c in frames_delivered([[*b[:2]] for b in plans], [40, 20], 5))
    assert all(it.first_chunk for b in plans for it in b[2:])
    assert any(not it.first_chunk for col in stream_cols for it in col)


def test_augmentation_constant_per_video():
    aug = AugmentationParams(hflip_prob=0.5)
    plans = plan_epoch([100, 100, 100, 100], 5, 2, shuffle=True, augmentation=aug, seed=2)
    per_video = {}
    for b in plans:
        for it in b:
            if not it.is_padding:
                per_video.setdefault(it.video, set()).add(it.aug)
    assert all(len(s) == 1 for s in per_video.values())
    assert {next(iter(s)).hflip for s in per_video.values()} == {True, False}


def test_bad_arguments():
    with pytest.raises(ValueError, match="sampling mode"):
        plan_epoch([1], 2, 1, mode="bogus")
    with pytest.raises(ValueError, match="rank 2"):
        plan_epoch([1], 2, 1, rank=2, world_size=2)


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("max_consecutive", [None, 2])
def test_shuffled_epochs_have_a_fixed_length(world_size, max_consecutive):
    lengths = [5, 30, 12, 1, 47, 24, 13, 3, 60, 100, 7]
    sizes = {len(plan_epoch(lengths, 12, 3, shuffle=True, epoch=e, rank=r, world_size=world_size,
                            max_consecutive=max_consecutive))
             for e in range(8) for r in range(world_size)}
    assert len(sizes) == 1
