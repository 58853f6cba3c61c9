"""Which chunk of which video each column of each batch holds (SPEC 4): streams, epochs, DDP sharding,
``max_consecutive_batches`` and random/mixed clip sampling. Pure bookkeeping: no file is read here.

A schedule is a list of batches; a batch is a list of B :class:`ChunkItem`. Every rank computes the
whole plan from the same seed, so ranks agree on the number of batches (shorter shares are padded).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evdet.data.augment import NO_AUGMENTATION, Augmentation, draw_augmentation


@dataclass(frozen=True)
class ChunkItem:
    """One column of one batch.

    Attributes:
        video: index of the video in the split; -1 for padding.
        start_frame: first frame (bin) of the chunk in the video.
        first_chunk: the chunk starts a video, a sub-sequence or a random clip (state reset).
        aug: augmentation of the column.
    """

    video: int
    start_frame: int = 0
    first_chunk: bool = False
    aug: Augmentation = NO_AUGMENTATION

    @property
    def is_padding(self) -> bool:
        return self.video < 0


PADDING_ITEM = ChunkItem(-1)


@dataclass(frozen=True)
class AugmentationParams:
    """Probabilities of :func:`evdet.data.augment.draw_augmentation` (all 0: no augmentation)."""

    hflip_prob: float = 0.0
    zoom_in_prob: float = 0.0
    zoom_out_prob: float = 0.0
    max_zoom: float = 1.0

    def draw(self, rng: np.random.Generator) -> Augmentation:
        if self.hflip_prob == 0 and self.zoom_in_prob == 0 and self.zoom_out_prob == 0:
            return NO_AUGMENTATION
        return draw_augmentation(rng, self.hflip_prob, self.zoom_in_prob, self.zoom_out_prob, self.max_zoom)


def _balanced_assign(weights: Sequence[int], order: Sequence[int], bins: int) -> list[list[int]]:
    """Assign items (in ``order``) one by one to the bin of least total weight (ties: lowest bin)."""
    loads = [0] * bins
    out: list[list[int]] = [[] for _ in range(bins)]
    for i in order:
        b = min(range(bins), key=lambda k: (loads[k], k))
        out[b].append(i)
        loads[b] += weights[i]
    return out


def shard_videos(num_chunks: Sequence[int], world_size: int,
                 order: Sequence[int] | None = None) -> list[list[int]]:
    """Split videos between DDP ranks: disjoint shares, balanced in chunks, union = every video once.

    Args:
        num_chunks: chunks per video. order: the order in which videos are dealt (default: index order).
    Returns:
        ``world_size`` lists of video indices, each in dealing order.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be ≥ 1, got {world_size}")
    if order is None:
        order = range(len(num_chunks))
    return _balanced_assign(num_chunks, order, world_size)


def _segments(videos: Sequence[int], num_chunks: Sequence[int],
              max_consecutive: int | None) -> list[tuple[int, int, int]]:
    """``(video, first chunk, chunk count)`` sub-sequences of at most ``max_consecutive`` chunks."""
    out = []
    for v in videos:
        n = num_chunks[v]
        step = n if max_consecutive is None else max_consecutive
        out.extend((v, c, min(step, n - c)) for c in range(0, n, max(step, 1)))
    return out


def stream_columns(videos: Sequence[int], num_chunks: Sequence[int], num_tbins: int, batch_size: int, *,
                   max_consecutive: int | None = None, rng: np.random.Generator | None = None,
                   augs: dict[int, Augmentation] | None = None) -> list[list[ChunkItem]]:
    """Columns of stream items: B streams each playing its videos (or sub-sequences) back to back.

    Sub-sequences are shuffled with ``rng`` when given (training), else kept in order. Returns B lists
    of items (one per chunk), unpadded.
    """
    segs = _segments(videos, num_chunks, max_consecutive)
    order = list(range(len(segs)))
    if rng is not None and max_consecutive is not None:
        order = [int(i) for i in rng.permutation(len(segs))]
    streams = _balanced_assign([s[2] for s in segs], order, batch_size)
    columns = []
    for stream in streams:
        col = []
        for si in stream:
            v, c0, n = segs[si]
            aug = augs.get(v, NO_AUGMENTATION) if augs else NO_AUGMENTATION
            col.extend(ChunkItem(v, (c0 + c) * num_tbins, c == 0, aug) for c in range(n))
        columns.append(col)
    return columns


def random_clip(rng: np.random.Generator, video: int, num_frames: int, labeled_frames: np.ndarray,
                num_tbins: int, aug: Augmentation) -> ChunkItem:
    """A clip of T bins ending at a random labelled frame (any frame when the video has none)."""
    end = int(rng.choice(labeled_frames)) if labeled_frames.size else int(rng.integers(num_frames))
    return ChunkItem(video, max(0, end - num_tbins + 1), True, aug)


def shuffled_epoch_length(num_chunks: Sequence[int], batch_size: int, world_size: int,
                          max_consecutive: int | None = None) -> int:
    """Batches per epoch of a shuffled stream schedule, the same for every epoch and rank: the bound of
    greedy least-loaded dealing (max load ≤ total / bins + largest item · (1 − 1 / bins)) applied to the
    rank shares, then to the B streams of a share. Training epochs are padded to it so that the number
    of batches (Lightning's count, LR schedules) does not change when videos are reshuffled."""
    items = [c for n in num_chunks if n > 0 for c in ([n] if max_consecutive is None else
                                                      [min(max_consecutive, n - s)
                                                       for s in range(0, n, max_consecutive)])]
    if not items:
        return 0
    video_max = max(num_chunks)
    share = sum(num_chunks) / world_size + video_max * (1 - 1 / world_size)
    return math.ceil(share / batch_size + max(items) * (1 - 1 / batch_size) - 1e-9)


def plan_epoch(num_frames: Sequence[int], num_tbins: int, batch_size: int, *, mode: str = "stream",
               epoch: int = 0, seed: int = 0, shuffle: bool = False, rank: int = 0, world_size: int = 1,
               max_consecutive: int | None = None, labeled_frames: Sequence[np.ndarray] | None = None,
               augmentation: AugmentationParams | None = None) -> list[list[ChunkItem]]:
    """The batches of one epoch for one DDP rank.

    Args:
        num_frames: frames (bins) per video; a video of n frames has ceil(n / T) chunks (tail padded).
        mode: ``"stream"``, ``"random"`` or ``"mixed"`` (SPEC 4).
        epoch, seed: the plan depends only on ``(seed + epoch)``: reproducible, reshuffled every epoch.
        shuffle: deal videos in a random order (training); False keeps index order (validation).
        rank, world_size: DDP share; every rank gets the same number of batches.
        max_consecutive: ``max_consecutive_batches`` (stream columns only).
        labeled_frames: per video, indices of labelled frames (needed by random clips).
        augmentation: drawn once per video per epoch (per clip for random clips); None: none.
    Returns:
        Batches, each a list of B :class:`ChunkItem` (padding items where streams ran out). With
        ``shuffle`` and stream columns, the epoch is padded to :func:`shuffled_epoch_length` batches.
    Raises:
        ValueError: unknown mode, bad rank/world size, or random sampling without ``labeled_frames``.
    """
    if mode not in ("stream", "random", "mixed"):
        raise ValueError(f"unknown sampling mode {mode!r}; valid: ['stream', 'random', 'mixed']")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} not in [0, world_size = {world_size})")
    if mode != "stream" and labeled_frames is None:
        raise ValueError(f"sampling mode {mode!r} needs labeled_frames")
    num_chunks = [max(1, math.ceil(n / num_tbins)) if n > 0 else 0 for n in num_frames]
    rng = np.random.default_rng([seed + epoch, 7])
    order = [int(i) for i in rng.permutation(len(num_frames))] if shuffle else None
    shares = shard_videos(num_chunks, world_size, order)
    aug_params = augmentation or AugmentationParams()
    augs = {v: aug_params.draw(np.random.default_rng([seed + epoch, v, 11])) for v in range(len(num_frames))}

    n_stream = {"stream": batch_size, "random": 0, "mixed": math.ceil(batch_size / 2)}[mode]
    n_random = batch_size - n_stream
    target = 0  # training: a fixed number of batches whatever the shuffle
    if shuffle and n_stream:
        target = shuffled_epoch_length(num_chunks, n_stream, world_size, max_consecutive)
    plans = []
    for r, share in enumerate(shares):
        share = [v for v in share if num_chunks[v] > 0]
        r_rng = np.random.default_rng([seed + epoch, r, 13])
        columns = stream_columns(share, num_chunks, num_tbins, n_stream, max_consecutive=max_consecutive,
                                 rng=r_rng if shuffle else None, augs=augs) if n_stream else []
        if mode == "random":
            n_batches = math.ceil(sum(num_chunks[v] for v in share) / batch_size)
        else:
            n_batches = max(max((len(c) for c in columns), default=0), target)
        plan = [[col[i] if i < len(col) else PADDING_ITEM for col in columns] for i in range(n_batches)]
        if n_random and share:
            weights = np.array([num_chunks[v] for v in share], dtype=np.float64)
            picks = r_rng.choice(len(share), size=(n_batches, n_random), p=weights / weights.sum())
            for i, row in enumerate(picks):
                for j in row:
                    v = share[int(j)]
                    plan[i].append(random_clip(r_rng, v, num_frames[v], labeled_frames[v], num_tbins,
                                               aug_params.draw(r_rng)))
        elif n_random:
            for batch in plan:
                batch.extend([PADDING_ITEM] * n_random)
        plans.append(plan)
    n_total = max((len(p) for p in plans), default=0)
    mine = plans[rank]
    mine.extend([[PADDING_ITEM] * batch_size for _ in range(n_total - len(mine))])
    return mine
