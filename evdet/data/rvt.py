"""RVT's preprocessed Gen1 / 1Mpx datasets (SPEC 2.8, layout in :mod:`evdet.preprocessing.rvt_format`) read as
ordinary evdet recordings: each ``<split>/<sequence>/`` folder is one video, so ``describe_dataset``,
``build_dataloader`` / ``EventDataModule`` and ``stream_batches`` (hence ``evdet-train``, ``evdet-detect``,
``evdet-demo-video``) take RVT folders with no conversion step.

* **Frames.** Representation ``k`` of ``event_representations[_ds2_nearest].h5`` is bin ``k``; it ends at
  ``timestamps_us.npy[k]`` (``VideoSpec.bin_end_ts`` -> ``VideoInfo.bin_end``), which is not ``k·Δt``: Gen1
  representations come every 125 ms and cover 50 ms each. ``delta_t`` is the window (``dt=50`` -> 50 000 µs).
  Inputs are RVT's uint8 counts 0..10 as stored (``uint8_scale`` 1: delivered as uint8 with
  ``input_scale = 1``, float32 counts after ``SequenceBatch.to``; never rescaled), 20 channels
  ``polarity·10 + micro-bin``, representation name ``rvt_stacked_histogram``.
* **Labels**, as RVT's loader (``data/genx_utils/labels.py``, ``sequence_base.py``) attaches them:
  representation ``objframe_idx_2_repr_idx[j]`` carries label frame ``j``'s boxes (``labels.npz`` rows
  ``objframe_idx_2_label_idx[j] : [j + 1]``; when two frames name the same representation the later one
  wins, as RVT's ``dict(zip(...))``); the fields are cast to float32 and clamped to the sensor frame
  (``x1 = clamp(x, 0, W − 1)``, ``x2 = clamp(x + w, 0, W − 1)``, same for y; RVT asserts the result is not
  flat, evdet drops flat boxes); at half resolution (``_ds2_nearest``) they are then scaled by 0.5 with
  ``x2 = min((x + w)·0.5, W/2 − 1)`` and flat boxes removed. A representation whose boxes all vanish is
  unlabelled (RVT's ``None``), every other representation is unlabelled, and nothing is interpolated.
  evdet's sensor-pixel label filters (``clip_boxes``, ``min_box_side``) do not apply (RVT's clamp replaces
  them); ``classes`` selection and ``min_box_diag_network`` do.
* **Class names.** A ``label_map_dictionary.json`` in the dataset folder wins. Otherwise the dataset is
  recognised from the stored size: 240×304 is Gen1 (``0 car, 1 pedestrian``); 360×640
  (``_ds2_nearest``) or 720×1280 is 1Mpx, with the classes RVT keeps (``0 pedestrian, 1 two wheeler,
  2 car``, ``label_maps/gen4_rvt_label_map_dictionary.json``). Other sizes need the JSON file.
* **Sensor size** (label pixels): Gen1 240×304, 1Mpx 720×1280 (RVT's ``get_original_hw``), else the stored
  size (doubled for ``_ds2_nearest``).

Errors name the file: a missing ``labels_v2`` (``FileNotFoundError`` when labels are required),
``timestamps_us.npy`` whose length differs from ``data``, ``objframe_idx_2_repr_idx`` out of range or of
another length than ``objframe_idx_2_label_idx``, a Blosc file without the Blosc filter (``hdf5plugin``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from evdet.data.dataset import FrameLabels
from evdet.data.sources import VideoSpec
from evdet.io.dtypes import BBOX_DTYPE
from evdet.io.label_map import GEN1_LABEL_MAP, GEN4_LABEL_MAP
from evdet.preprocessing.rvt_format import (
    BLOSC_FILTER,
    FRAME_TO_REPR_FILE,
    LABELS_DIR,
    LABELS_FILE,
    REPR_DIR,
    REPR_FILE,
    REPR_FILE_DS2,
    REPR_NAME_RE,
    RVT_MAX_COUNT,
    TIMESTAMPS_FILE,
    repr_dir_name,
    require_blosc,
)
from evdet.preprocessing.rvt_labels import RVT_SENSOR_SIZE, clamp_xywh

RVT_REPRESENTATION = "rvt_stacked_histogram"
RVT_LABEL_MAPS: dict[str, dict[int, str]] = {
    "gen1": dict(GEN1_LABEL_MAP),
    "gen4": {k: v for k, v in GEN4_LABEL_MAP.items() if k <= 2},  # RVT keeps class_id <= 2
}
"""Class names of RVT's preprocessed datasets (1Mpx: the three classes RVT's preprocessing keeps)."""


def is_rvt_sequence(path: str | os.PathLike) -> bool:
    """True for a folder holding ``event_representations_v2/`` (an RVT sequence)."""
    path = Path(path)
    return path.is_dir() and (path / REPR_DIR).is_dir()


def rvt_tensor_file(seq_dir: Path) -> tuple[Path, bool, int, int]:
    """``(representation file, downsampled, window µs, bins)`` of a sequence.

    The representation folder is ``stacked_histogram_dt=<ms>_nbins=<n>`` (RVT's default
    ``dt=50_nbins=10`` when several exist); the file ``event_representations_ds2_nearest.h5`` when present
    (1Mpx at half resolution, RVT's default), else ``event_representations.h5``.

    Raises:
        FileNotFoundError: no representation folder or file (names what is there).
        ValueError: several representation folders without the default one.
    """
    root = seq_dir / REPR_DIR
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and REPR_NAME_RE.match(p.name))
    if not found:
        raise FileNotFoundError(f"{root}: no stacked_histogram_dt=<ms>_nbins=<n> folder (found "
                                f"{sorted(p.name for p in root.iterdir())})")
    name = repr_dir_name() if repr_dir_name() in found else found[0]
    if len(found) > 1 and name != repr_dir_name():
        raise ValueError(f"{root}: several representation folders {found}; evdet reads "
                         f"{repr_dir_name()} (remove or rename the others)")
    window_ms, bins = (int(v) for v in REPR_NAME_RE.match(name).groups())
    folder = root / name
    for file, ds2 in ((REPR_FILE_DS2, True), (REPR_FILE, False)):
        if (folder / file).is_file():
            return folder / file, ds2, window_ms * 1000, bins
    raise FileNotFoundError(f"{folder}: neither {REPR_FILE} nor {REPR_FILE_DS2}")


def rvt_dataset_of(stored_size: tuple[int, int], downsampled: bool) -> str | None:
    """``"gen1"`` / ``"gen4"`` recognised from the stored ``(height, width)``, else None."""
    size = tuple(int(v) for v in stored_size)
    full = (size[0] * 2, size[1] * 2) if downsampled else size
    for name, sensor in RVT_SENSOR_SIZE.items():
        if full == sensor and (not downsampled or name == "gen4"):
            return name
    return None


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"RVT sequence file not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a readable .npy file ({exc})") from exc


def probe_rvt_sequence(seq_dir: str | os.PathLike, delta_t: int | None = None) -> VideoSpec:
    """The :class:`VideoSpec` of an RVT sequence folder (kind ``"rvt"``; see the module docstring).

    Args:
        delta_t: expected window (µs); None accepts the folder's.
    Raises:
        FileNotFoundError: a missing representation folder or file.
        ValueError: ``data`` not uint8 ``[N, 2·bins, H, W]``; ``timestamps_us.npy`` not ``N`` increasing
            times; ``objframe_idx_2_repr_idx`` outside ``[0, N)``; Blosc without its filter; a ``delta_t``
            other than the folder's (each naming the file).
    """
    import h5py

    seq_dir = Path(seq_dir)
    data_file, ds2, window, bins = rvt_tensor_file(seq_dir)
    with h5py.File(data_file, "r") as f:
        if "data" not in f:
            raise ValueError(f"{data_file}: no 'data' dataset (found {sorted(f)})")
        dset = f["data"]
        plist = dset.id.get_create_plist()
        if any(plist.get_filter(i)[0] == BLOSC_FILTER for i in range(plist.get_nfilters())):
            require_blosc(data_file)
        shape, dtype = tuple(int(v) for v in dset.shape), dset.dtype
    if dtype != np.uint8 or len(shape) != 4 or shape[1] != 2 * bins:
        raise ValueError(f"{data_file}: 'data' is {dtype} {list(shape)}, expected uint8 "
                         f"[N, {2 * bins}, H, W]")
    ts_file = data_file.parent / TIMESTAMPS_FILE
    ts = _load_npy(ts_file)
    if ts.ndim != 1 or ts.shape[0] != shape[0] or not np.issubdtype(ts.dtype, np.integer):
        raise ValueError(f"{ts_file}: {ts.dtype} {list(ts.shape)} end times for the {shape[0]} "
                         f"representations of {data_file}")
    ts = ts.astype(np.int64)
    if ts.size > 1 and np.any(np.diff(ts) <= 0):
        bad = int(np.flatnonzero(np.diff(ts) <= 0)[0]) + 1
        raise ValueError(f"{ts_file}: end times not increasing (entry {bad} = {ts[bad]} after {ts[bad - 1]})")
    idx_file = data_file.parent / FRAME_TO_REPR_FILE
    idx = _load_npy(idx_file)
    bad = np.flatnonzero((idx < 0) | (idx >= shape[0])) if idx.ndim == 1 else np.zeros(1, np.int64)
    if bad.size:
        where = f"entry {bad[0]} = {idx.reshape(-1)[bad[0]]}" if idx.ndim == 1 else f"shape {idx.shape}"
        raise ValueError(f"{idx_file}: {where} is not a representation index in [0, {shape[0]}) of "
                         f"{data_file}")
    if delta_t is not None and int(delta_t) != window:
        raise ValueError(f"{seq_dir}: RVT representations of {window} µs but the config asks {delta_t} µs "
                         f"(set delta_t=None)")
    stored = (shape[2], shape[3])
    dataset = rvt_dataset_of(stored, ds2)
    sensor = RVT_SENSOR_SIZE[dataset] if dataset else ((2 * stored[0], 2 * stored[1]) if ds2 else stored)
    return VideoSpec(str(seq_dir), "rvt", shape[0], int(ts[0]) - window if ts.size else 0, window, shape[1],
                     sensor, stored, RVT_REPRESENTATION, {"num_utbins": bins, "max_count": RVT_MAX_COUNT},
                     uint8_scale=1.0, tensor_path=str(data_file), bin_end_ts=ts)


def rvt_label_map(spec: VideoSpec) -> dict[int, str] | None:
    """Class names of an RVT sequence recognised from its size (module docstring), or None."""
    dataset = rvt_dataset_of(spec.stored_size, spec.stored_size != spec.sensor_size)
    return None if dataset is None else dict(RVT_LABEL_MAPS[dataset])


def _rvt_boxes(labels: np.ndarray, sensor: tuple[int, int], stored: tuple[int, int], source: Path
               ) -> tuple[np.ndarray, np.ndarray]:
    """RVT's loader transform of label rows: float32, clamped to the sensor frame, then halved for
    half-resolution data. Returns ``(float32 [n, 4] x, y, w, h in stored pixels, kept row mask [n])``."""
    missing = [f for f in ("x", "y", "w", "h", "class_id") if f not in (labels.dtype.names or ())]
    if missing:
        raise ValueError(f"{source}: 'labels' lacks field(s) {missing}")
    x, y, w, h = (labels[f].astype(np.float32) for f in ("x", "y", "w", "h"))
    x, y, w, h = clamp_xywh(x, y, w, h, np.float32(sensor[0]), np.float32(sensor[1]))
    keep = (w > 0) & (h > 0)  # RVT asserts this; a folder written by RVT never has flat boxes here
    if tuple(stored) != tuple(sensor):
        factor = np.float32(stored[1] / sensor[1])
        new_h, new_w = np.float32(sensor[0] * factor), np.float32(sensor[1] * factor)
        x2 = np.minimum((x + w) * factor, new_w - np.float32(1))
        y2 = np.minimum((y + h) * factor, new_h - np.float32(1))
        x, y = x * factor, y * factor
        w, h = x2 - x, y2 - y
        keep &= (w > 0) & (h > 0)
    return np.stack([x, y, w, h], axis=1), keep


def load_rvt_labels(spec: VideoSpec, *, required: bool = True) -> FrameLabels | None:
    """The labels of an RVT sequence per representation, as RVT's loader attaches them (module docstring):
    ``BBOX_DTYPE`` boxes in stored pixels with ``t`` = the end time of their representation.

    Raises:
        FileNotFoundError: no ``labels_v2/labels.npz`` and ``required``.
        ValueError: a malformed ``labels.npz`` or frame index files of different lengths (naming them).
    Warns:
        UserWarning: no ``labels_v2/labels.npz`` and not ``required`` (the video is unlabelled).
    """
    seq = Path(spec.path)
    label_file = seq / LABELS_DIR / LABELS_FILE
    if not label_file.is_file():
        if required:
            raise FileNotFoundError(f"RVT sequence {seq}: no {LABELS_DIR}/{LABELS_FILE} (labels required)")
        warnings.warn(f"RVT sequence {seq}: no {LABELS_DIR}/{LABELS_FILE}: loaded as unlabelled", UserWarning,
                      stacklevel=3)
        return None
    try:
        with np.load(label_file, allow_pickle=False) as npz:
            labels = npz["labels"].reshape(-1)
            label_idx = npz["objframe_idx_2_label_idx"].astype(np.int64).reshape(-1)
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(f"{label_file}: needs arrays 'labels' and 'objframe_idx_2_label_idx' "
                         f"({exc})") from exc
    idx_file = Path(spec.tensor_file).parent / FRAME_TO_REPR_FILE
    to_repr = _load_npy(idx_file).astype(np.int64).reshape(-1)
    if to_repr.size != label_idx.size:
        raise ValueError(f"{idx_file} has {to_repr.size} label frames but {label_file} has {label_idx.size}")
    ends = np.r_[label_idx[1:], labels.size]
    if label_idx.size and (label_idx[0] < 0 or np.any(ends < label_idx) or ends[-1] > labels.size):
        raise ValueError(f"{label_file}: objframe_idx_2_label_idx is not a non-decreasing index into the "
                         f"{labels.size} labels")
    xywh, keep = _rvt_boxes(labels, spec.sensor_size, spec.stored_size, label_file)
    # representation -> the LAST label frame naming it (RVT: dict(zip(objframe_idx_2_repr_idx, range(F))))
    frame_of_row = np.repeat(np.arange(label_idx.size), ends - label_idx)
    last = np.full(spec.num_frames, -1, dtype=np.int64)
    np.maximum.at(last, to_repr, np.arange(to_repr.size))
    rows = np.flatnonzero(keep & (last[to_repr[frame_of_row]] == frame_of_row))
    repr_of_row = to_repr[frame_of_row[rows]]
    order = np.argsort(repr_of_row, kind="stable")
    rows, repr_of_row = rows[order], repr_of_row[order]
    boxes = np.zeros(rows.size, dtype=BBOX_DTYPE)
    boxes["t"] = spec.bin_end_ts[repr_of_row]
    boxes["x"], boxes["y"], boxes["w"], boxes["h"] = xywh[rows].T
    boxes["class_id"] = labels["class_id"][rows]
    names = labels.dtype.names
    boxes["track_id"] = labels["track_id"][rows] if "track_id" in names else np.arange(rows.size)
    boxes["class_confidence"] = labels["class_confidence"][rows] if "class_confidence" in names else 1.0
    return FrameLabels(boxes, repr_of_row, np.unique(repr_of_row))


def rvt_ground_truth(seq_dir: str | os.PathLike) -> np.ndarray:
    """The ground truth of an RVT sequence as evdet scores it: the boxes of :func:`load_rvt_labels` in sensor
    pixels (``BBOX_DTYPE``, ``t`` = end time of their representation, sorted by ``t``)."""
    spec = probe_rvt_sequence(seq_dir)
    labels = load_rvt_labels(spec)
    boxes = labels.boxes.copy()
    sy, sx = (s / t for s, t in zip(spec.sensor_size, spec.stored_size, strict=True))
    boxes["x"] *= np.float32(sx)
    boxes["w"] *= np.float32(sx)
    boxes["y"] *= np.float32(sy)
    boxes["h"] *= np.float32(sy)
    return boxes


def find_rvt_sequences(folder: str | os.PathLike) -> dict[str, Path]:
    """Sequence name -> folder of every RVT sequence at or below ``folder`` (sorted by path; hidden folders
    skipped).

    Raises:
        ValueError: two sequences share a name (both named).
    """
    folder = Path(folder)
    found: dict[str, Path] = {}
    candidates = [folder] if is_rvt_sequence(folder) else sorted(
        p.parent for p in folder.rglob(REPR_DIR) if p.is_dir() and not any(
            part.startswith(".") for part in p.relative_to(folder).parts))
    for seq in candidates:
        if seq.name in found:
            raise ValueError(f"RVT sequence {seq.name!r} found twice: {found[seq.name]} and {seq}")
        found[seq.name] = seq
    return found
