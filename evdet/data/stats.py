"""Numbers a user checks before training (``evdet-info DATASET_DIR``): recordings per split, durations,
event rates, boxes per class, box sizes and aspect ratios, label frequency.

Everything is read from the files (label files in full, event files only as far as their size needs:
a DAT file's event count is its record count; EVT 2.0/3.0 RAW files are decoded). HDF5 tensor files
hold per-bin tensors, not events: their event rate is unknown (None).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evdet.data.info import list_recordings
from evdet.data.labels import detect_label_period
from evdet.data.sources import probe_video
from evdet.io.boxes import label_path_for, load_boxes
from evdet.io.dtypes import BBOX_DTYPE
from evdet.io.label_map import EMPTY_CLASS, LABEL_MAP_FILENAME, load_label_map
from evdet.io.layout import SPLITS

__all__ = ["DatasetStats", "RecordingStats", "class_box_sizes", "class_boxes", "count_events",
           "dataset_stats", "percentiles"]


@dataclass(frozen=True)
class RecordingStats:
    """One recording.

    Attributes:
        path, split: the file and its split. kind: ``"raw"`` (``.dat``/``.raw``) or ``"h5"``.
        duration: µs covered (``num_frames · delta_t``). sensor_size: ``(height, width)``.
        num_events: events in the file (None for HDF5 tensor files).
        boxes: its ``BBOX_DTYPE`` labels ("empty" boxes removed; empty array without a label file).
        label_instants: distinct label timestamps (an "empty" box counts: the frame is labelled).
        has_labels: a ``_bbox.npy`` exists.
    """

    path: Path
    split: str
    kind: str
    duration: int
    sensor_size: tuple[int, int]
    num_events: int | None
    boxes: np.ndarray
    label_instants: int
    has_labels: bool

    @property
    def events_per_s(self) -> float | None:
        if self.num_events is None or self.duration <= 0:
            return None
        return self.num_events / (self.duration / 1e6)


def count_events(path: str | os.PathLike) -> int:
    """Number of events of a ``.dat`` (its record count, without decoding) or ``.raw`` file (decoded)."""
    from evdet.io.read import open_events

    with open_events(path) as reader:
        if hasattr(reader, "event_count"):
            return int(reader.event_count)
        return int(reader.load_all().size)


def percentiles(values: np.ndarray, q: Sequence[float] = (5, 50, 95)) -> list[float]:
    """``np.percentile`` of ``values`` (NaN when empty)."""
    values = np.asarray(values, np.float64)
    return [float(v) for v in np.percentile(values, q)] if values.size else [float("nan")] * len(q)


@dataclass(frozen=True)
class DatasetStats:
    """What :func:`dataset_stats` found.

    Attributes:
        dataset_dir, label_map: the folder and its ``{id: name}`` map. recordings: every recording.
        delta_t, representation: of the HDF5 files (None for raw-only datasets).
    """

    dataset_dir: Path
    label_map: dict[int, str]
    recordings: list[RecordingStats]
    delta_t: int | None
    representation: str | None

    @property
    def classes(self) -> list[str]:
        """Class names by id ("empty" left out)."""
        return [name for _, name in sorted(self.label_map.items()) if name != EMPTY_CLASS]

    @property
    def splits(self) -> list[str]:
        return [s for s in SPLITS if any(r.split == s for r in self.recordings)]

    def of(self, split: str | None = None) -> list[RecordingStats]:
        """Recordings of a split (None: all)."""
        return [r for r in self.recordings if split is None or r.split == split]

    def boxes(self, split: str | None = None) -> np.ndarray:
        """Every box of a split (None: all), ``BBOX_DTYPE`` in sensor pixels."""
        parts = [r.boxes for r in self.of(split)]
        return np.concatenate(parts) if parts else np.zeros(0, BBOX_DTYPE)

    def boxes_per_class(self, split: str | None = None) -> dict[str, int]:
        """Box count per class name (ids missing from the label map appear as ``"id N"``)."""
        ids, counts = np.unique(self.boxes(split)["class_id"], return_counts=True)
        names = {cid: name for cid, name in self.label_map.items()}
        out = {name: 0 for name in self.classes}
        for cid, n in zip(ids.tolist(), counts.tolist(), strict=True):
            out[names.get(int(cid), f"id {cid}")] = int(n)
        return out

    def label_period(self, split: str | None = None) -> int | None:
        """Median time between label instants (µs) over the recordings of a split, None if unknown."""
        periods = [p for r in self.of(split) if r.boxes.size > 1
                   and (p := detect_label_period(r.boxes)) is not None]
        return int(np.median(periods)) if periods else None


def dataset_stats(dataset_dir: str | os.PathLike, *, count_raw_events: bool = True,
                  progress: bool = False) -> DatasetStats:
    """Read the statistics of a dataset directory (SPEC 2.6: ``label_map_dictionary.json`` and
    ``train/``, ``val/``, ``test/`` with recordings and ``_bbox.npy`` labels).

    Args:
        count_raw_events: decode ``.raw`` files to count their events (DAT files are never decoded).
        progress: a progress bar over the recordings (stderr).

    Raises:
        FileNotFoundError: no such folder, no label map, or no split folder with recordings.
    """
    from tqdm.auto import tqdm

    root = Path(dataset_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {root}")
    if not (root / LABEL_MAP_FILENAME).exists():
        raise FileNotFoundError(f"{root}: no {LABEL_MAP_FILENAME}")
    label_map = load_label_map(root / LABEL_MAP_FILENAME)
    empty = np.asarray([cid for cid, name in label_map.items() if name == EMPTY_CLASS], dtype=np.int64)
    files = [(split, f) for split in SPLITS if (root / split).is_dir() for f in list_recordings(root / split)]
    if not files:
        raise FileNotFoundError(f"{root}: no recordings in {', '.join(s + '/' for s in SPLITS)}")
    recordings, delta_t, representation = [], None, None
    for split, path in tqdm(files, desc="reading recordings", unit="rec", disable=not progress):
        spec = probe_video(path)
        raw = spec.kind == "raw"
        if not raw:
            delta_t, representation = spec.delta_t, spec.representation
        n_events = None
        if raw and (count_raw_events or path.suffix.lower() == ".dat"):
            n_events = count_events(path)
        label_file = label_path_for(path)
        boxes = load_boxes(label_file) if label_file.exists() else np.zeros(0, BBOX_DTYPE)
        instants = int(np.unique(boxes["t"]).size)
        boxes = boxes[~np.isin(boxes["class_id"].astype(np.int64), empty)]
        # raw recordings last up to their last event, HDF5 files cover num_frames whole bins
        duration = spec.duration if not raw else spec.num_frames * spec.delta_t
        recordings.append(RecordingStats(path, split, "raw" if raw else "h5", int(duration),
                                         tuple(spec.sensor_size), n_events, boxes, instants,
                                         label_file.exists()))
    return DatasetStats(root, dict(label_map), recordings, delta_t, representation)


def class_box_sizes(stats: DatasetStats, split: str | None = None) -> Mapping[str, np.ndarray]:
    """``{class name: ndarray[n, 2]}`` box ``(w, h)`` in sensor pixels per class."""
    return {name: xywh[:, 2:] for name, xywh in class_boxes(stats, split).items()}


def class_boxes(stats: DatasetStats, split: str | None = None) -> Mapping[str, np.ndarray]:
    """``{class name: ndarray[n, 4]}`` boxes (top-left x, y, w, h) in sensor pixels per class."""
    boxes = stats.boxes(split)
    out = {}
    for cid, name in sorted(stats.label_map.items()):
        sel = boxes[boxes["class_id"] == cid]
        if name != EMPTY_CLASS and sel.size:
            out[name] = np.stack([sel["x"], sel["y"], sel["w"], sel["h"]], axis=1).astype(np.float64)
    return out
