"""Entry points: ``build_dataloader`` (a split of a dataset directory, train or eval, DDP-aware) and
``stream_batches`` (whole recordings in order, for detection and demo videos)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from evdet.data.batch import SequenceBatch
from evdet.data.config import DataConfig
from evdet.data.dataset import EpochSampler, FrameLabels, LabelOptions, SequenceDataset, VideoLabels
from evdet.data.info import DatasetInfo, check_consistent, describe_dataset
from evdet.data.labels import resolve_classes
from evdet.data.schedule import AugmentationParams, plan_epoch
from evdet.data.sources import VideoSpec, probe_video
from evdet.io.boxes import label_path_for, load_boxes
from evdet.io.label_map import LABEL_MAP_FILENAME


def load_video_labels(spec: VideoSpec, *, required: bool, max_interp_gap: int | None
                      ) -> VideoLabels | FrameLabels | None:
    """Labels of a video from ``<stem>_bbox.npy`` next to it (an RVT sequence: its ``labels_v2``, see
    :func:`evdet.data.rvt.load_rvt_labels`).

    Raises:
        FileNotFoundError: the label file is missing and ``required``.
    Warns:
        UserWarning: the label file is missing and not ``required`` (the video is unlabelled).
    """
    if spec.kind == "rvt":
        from evdet.data.rvt import load_rvt_labels

        return load_rvt_labels(spec, required=required)
    path = label_path_for(spec.path)
    if not path.exists():
        if required:
            raise FileNotFoundError(f"label file {path} of recording {spec.path} not found "
                                    f"(set require_labels=False to load it as unlabelled)")
        warnings.warn(f"label file {path} of recording {spec.path} not found: loaded as unlabelled",
                      UserWarning, stacklevel=3)
        return None
    return VideoLabels.from_boxes(load_boxes(path), max_interp_gap)


def network_size_of(config: DataConfig, stored_size: tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` of the network inputs: the config's, else the stored size."""
    if config.height is not None and config.width is not None:
        return config.height, config.width
    return tuple(stored_size)


def _no_collate(batch: SequenceBatch) -> SequenceBatch:
    return batch


def make_dataset(videos: Sequence[VideoSpec], config: DataConfig, label_map: Mapping[int, str] | None, *,
                 train: bool, require_labels: bool, source: str = "label map") -> SequenceDataset:
    """A :class:`SequenceDataset` over ``videos``: labels loaded, classes resolved by name.

    ``label_map`` None keeps the original class ids as ``class_idx``. Training interpolates labels when
    ``config.interpolate``; evaluation never does.
    """
    if label_map is None:
        lookup: dict[int, int] = {}
    else:
        _, lookup = resolve_classes(label_map, config.classes, source)
    gap = config.max_interp_gap
    labels = [load_video_labels(v, required=require_labels, max_interp_gap=gap) for v in videos]
    if label_map is not None:
        _warn_unknown_class_ids(videos, labels, label_map, source)
    if label_map is None:
        ids = sorted({int(c) for lab in labels if lab is not None for c in lab.boxes["class_id"]})
        lookup = {c: c for c in ids}
    options = LabelOptions(lookup, interpolate=train and config.interpolate, max_interp_gap=gap,
                           clip=config.clip_boxes, min_box_side=config.min_box_side,
                           min_box_diag_network=config.min_box_diag_network)
    stored = videos[0].stored_size if videos else (1, 1)
    return SequenceDataset(videos, labels, config.num_tbins, network_size_of(config, stored), options,
                           uint8_inputs=config.uint8_inputs)


def _warn_unknown_class_ids(videos: Sequence[VideoSpec], labels: Sequence[VideoLabels | FrameLabels | None],
                            label_map: Mapping[int, str], source: str) -> None:
    """Warn (once, naming the first file) when label files hold class ids that ``label_map`` does not
    name: their boxes are dropped, usually because the label map does not belong to the labels (to train
    on fewer classes, name them with ``DataConfig.classes`` / ``--classes`` instead). RVT folders are left
    out: their loader drops the classes RVT drops (1Mpx ids above 2) on purpose."""
    unknown: dict[int, int] = {}
    first = None
    for video, lab in zip(videos, labels, strict=True):
        if lab is None or video.kind == "rvt":
            continue
        ids, counts = np.unique(lab.boxes["class_id"].astype(np.int64), return_counts=True)
        for cid, n in zip(ids.tolist(), counts.tolist(), strict=True):
            if cid not in label_map:
                unknown[cid] = unknown.get(cid, 0) + n
                first = first or label_path_for(video.path)
    if unknown:
        warnings.warn(f"{sum(unknown.values())} boxes have class ids {sorted(unknown)} that the {source} "
                      f"does not name (first in {first}): they are ignored. Is it the label map of these "
                      "labels?",
                      UserWarning, stacklevel=3)


def build_dataloader(dataset_dir: str | os.PathLike, split: str, config: DataConfig, *, train: bool,
                     rank: int = 0, world_size: int = 1, epoch: int = 0, info: DatasetInfo | None = None
                     ) -> DataLoader:
    """A DataLoader yielding :class:`SequenceBatch` for one split (and one DDP rank).

    Training (``train=True``): ``config.sampling`` mode, videos reshuffled every epoch from
    ``config.seed + epoch`` (``loader.sampler.set_epoch(e)`` switches epoch; Lightning calls it),
    augmentation, interpolated labels (``config.interpolate``), ``max_consecutive_batches``.
    Evaluation: stream mode, videos in file order, no augmentation, no interpolation (labelled bins are
    the annotation instants), every video exactly once across ranks. Every rank gets the same number
    of batches (padding columns where its share is shorter).

    Args:
        info: the result of :func:`describe_dataset` (read here when None).
    Raises:
        ValueError: unknown split (names the valid ones), class names not in the label map, bad files.
        FileNotFoundError: missing directory/label map/label files (see ``describe_dataset``).
    """
    if info is None:
        info = describe_dataset(dataset_dir, delta_t=config.delta_t, representation=config.representation,
                                representation_params=config.representation_params)
    if split not in info.splits:
        raise ValueError(f"{info.dataset_dir}: no split {split!r}; available: {sorted(info.splits)}")
    videos = info.videos[split]
    dataset = make_dataset(videos, config, info.label_map, train=train, require_labels=config.require_labels,
                           source=str(Path(info.dataset_dir) / LABEL_MAP_FILENAME))
    mode = config.sampling if train else "stream"
    labeled = None
    if mode != "stream":
        labeled = [lab.labeled_frames(v) if lab is not None else np.zeros(0, dtype=np.int64)
                   for v, lab in zip(videos, dataset.labels, strict=True)]
    aug = None
    if train:
        aug = AugmentationParams(config.hflip_prob, config.zoom_in_prob, config.zoom_out_prob,
                                 config.max_zoom)
    sampler = EpochSampler([v.num_frames for v in videos], config.num_tbins, config.batch_size, mode=mode,
                           seed=config.seed, shuffle=train, rank=rank, world_size=world_size,
                           max_consecutive=config.max_consecutive_batches if train else None,
                           labeled_frames=labeled, augmentation=aug, epoch=epoch)
    # Persistent workers: the sampler (and its epoch) lives in the main process and items are
    # stateless, so keeping workers (and their open files) across epochs changes no batch.
    return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=config.num_workers,
                      collate_fn=_no_collate, pin_memory=config.pin_memory,
                      persistent_workers=config.num_workers > 0)


def stream_batches(paths: Sequence[str | os.PathLike], config: DataConfig, *, batch_size: int = 1,
                   label_map: Mapping[int, str] | None = None) -> Iterator[SequenceBatch]:
    """Stream whole recordings (HDF5 or .dat/.raw), in the given order, in chunks of ``config.num_tbins``.

    With ``batch_size = 1`` the batches follow the files one after the other; with B > 1, B files play
    at once (each column its own stream). Labels come from ``_bbox.npy`` files when present (never
    required, never interpolated); ``label_map`` None keeps the original class ids as ``class_idx``.
    Raw recordings use ``config.representation`` (default histo) and ``config.delta_t`` (default 50 ms).

    Yields:
        :class:`SequenceBatch` with ``Tensor[T, batch_size, C, H, W]`` inputs.
    Raises:
        FileNotFoundError: a path does not exist. ValueError: files of different channels/delta_t/size.
    """
    if not paths:
        return
    videos = [probe_video(p, delta_t=config.delta_t, representation=config.representation,
                          params=config.representation_params) for p in paths]
    check_consistent(videos, "recordings streamed side by side (one batch, e.g. one demo video) must share "
                             "their format; process them in separate runs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dataset = make_dataset(videos, config, label_map, train=False, require_labels=False)
    for plan in plan_epoch([v.num_frames for v in videos], config.num_tbins, batch_size, mode="stream"):
        yield dataset[plan]
