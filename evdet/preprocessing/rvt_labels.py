"""RVT's label preprocessing (``scripts/genx/preprocess_dataset.py`` of uzh-rpg/RVT): box filters, the choice
of label frames, and the end times of the event representations. Pure numpy functions.

Everything here reproduces RVT's script, quirks included (each marked *quirk*):

* **Filters**, in RVT's order (:func:`rvt_filter_labels`): 1Mpx (``gen4``) keeps ``class_id <= 2``; crop to
  the field of view (``x1 = clip(x, 0, W − 1)``, ``x2 = clip(x + w, 0, W − 1)``, the same for y, boxes with
  ``w`` or ``h`` 0 dropped; *quirk*: the frame ends at ``W − 1``, not ``W``); Gen1 keeps
  ``w² + h² >= 30²`` and ``w, h >= 10`` (the Prophesee filter, computed in the label file's float type),
  1Mpx keeps ``w, h >= 5``; train split only: ``w <= (9·W) // 10``. ``W, H`` are the dataset's sensor size
  (304×240, 1280×720), whatever the event file says.
* **Label frames** (:func:`rvt_label_frames`): Δ = 250 ms for Gen1; for 1Mpx the label rate
  ``rint(1e6 / median gap)`` between unique label times must be 30 or 60 Hz and Δ = ``int(6·median)`` at
  60 Hz, ``int(3·median)`` at 30 Hz. The first frame is the first unique label time ``>= 100 ms``; a later
  time is accepted when it lies within 2 ms of a whole multiple ``k·Δ`` (``k = round(gap / Δ)``, Python's
  round-half-to-even) after the *last accepted* frame, and then brings ``2k`` representations (one per
  50 ms of nominal time). A frame's boxes are all boxes at exactly its time.
* **Representation end times** (:func:`rvt_repr_timestamps`): before the first frame ``f0``,
  ``list(reversed(range(f0, 0, -50000)))[1:-1]`` (*quirk*: the earliest representation of that grid and
  ``f0`` itself are dropped; ``f0`` comes back as the start of the first pair); between frames ``a`` and
  ``b``, ``np.linspace(a, b, 2k + 1)`` cast to int64 (truncating), without its last point except for the
  last pair; a sequence with a single frame gets ``f0`` appended. Each frame's representation is
  ``searchsorted(repr_ts, frame_ts, "left")``.

Where RVT's script stops with an exception (no label at or after 100 ms, a 1Mpx label rate that is not 30 or
60 Hz, two label times within 2 ms of each other after a frame, frames 98 ms apart or closer), these
functions raise ``ValueError`` naming the label file; a sequence left without labels by the filters raises
:class:`NoLabelsError` (RVT then deletes the sequence's output folder).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RVT_DATASETS = ("gen1", "gen4")
RVT_SENSOR_SIZE: dict[str, tuple[int, int]] = {"gen1": (240, 304), "gen4": (720, 1280)}
"""Sensor ``(height, width)`` RVT assumes for each dataset (its labels are cropped to this frame)."""
RVT_IGNORED_SEQUENCES: dict[str, tuple[str, ...]] = {
    "gen1": ("17-04-06_09-57-37_6344500000_6404500000", "17-04-13_19-17-27_976500000_1036500000",
             "17-04-06_15-14-36_1159500000_1219500000", "17-04-11_15-13-23_122500000_182500000"),
    "gen4": (),
}
"""Sequences RVT's script skips without writing anything (all their labels would be filtered out)."""
RVT_ALIGN_US = 100_000
"""The first label frame is the first label time at or after this (µs)."""
RVT_REPR_STEP_US = 50_000
"""Nominal spacing of the representations (µs): 2 per 100 ms of label-frame spacing."""
RVT_JITTER_US = 2_000
"""Largest distance (µs) between a label time and the multiple of Δ it is accepted for."""
RVT_MIN_FRAME_GAP_US = 98_000
"""RVT asserts that accepted frames are more than this apart (µs)."""


class NoLabelsError(ValueError):
    """No box of a sequence survives RVT's filters (RVT's script deletes the sequence's output folder)."""


def check_dataset(dataset: str) -> str:
    """``dataset`` if it is ``"gen1"`` or ``"gen4"``.

    Raises:
        ValueError: another name (the message lists the valid ones).
    """
    if dataset not in RVT_DATASETS:
        raise ValueError(f"unknown RVT dataset {dataset!r}; valid: {list(RVT_DATASETS)}")
    return dataset


def rename_legacy_fields(labels: np.ndarray) -> np.ndarray:
    """The label array with legacy field names ``ts`` / ``confidence`` renamed ``t`` / ``class_confidence``
    (field order, types and values kept; other arrays returned as they are)."""
    names = labels.dtype.names or ()
    mapping = {"ts": "t", "confidence": "class_confidence"}
    if not any(n in mapping and mapping[n] not in names for n in names):
        return labels
    renamed = [mapping[n] if n in mapping and mapping[n] not in names else n for n in names]
    dtype = np.dtype({"names": renamed, "formats": [labels.dtype.fields[n][0] for n in names],
                      "offsets": [labels.dtype.fields[n][1] for n in names],
                      "itemsize": labels.dtype.itemsize})
    return labels.view(dtype)


def clamp_xywh(x: np.ndarray, y: np.ndarray, w: np.ndarray, h: np.ndarray, height: float, width: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Boxes cropped to ``[0, width − 1] × [0, height − 1]`` as RVT crops them (its preprocessing and its
    loader): ``x1 = clip(x, 0, W − 1)``, ``x2 = clip(x + w, 0, W − 1)``, ``w = x2 − x1``, same for y. The
    arithmetic stays in the arrays' float type (float32 for label files). Returns new ``(x, y, w, h)``."""
    x1 = np.clip(x, 0, width - 1)
    y1 = np.clip(y, 0, height - 1)
    x2 = np.clip(x + w, 0, width - 1)
    y2 = np.clip(y + h, 0, height - 1)
    return x1, y1, x2 - x1, y2 - y1


def rvt_filter_labels(labels: np.ndarray, dataset: str, train: bool) -> np.ndarray:
    """RVT's label filters in RVT's order (see the module docstring).

    Args:
        labels: structured label array with fields ``x, y, w, h, class_id`` (any further fields are kept);
            not modified.
        dataset: ``"gen1"`` or ``"gen4"``.
        train: the sequence belongs to the train split (the huge-box filter applies).
    Returns:
        A new array of the same dtype with the kept (and cropped) boxes, in input order.
    """
    height, width = RVT_SENSOR_SIZE[check_dataset(dataset)]
    if dataset == "gen4":
        labels = labels[labels["class_id"] <= 2]
    labels = labels.copy()
    labels["x"], labels["y"], labels["w"], labels["h"] = clamp_xywh(labels["x"], labels["y"], labels["w"],
                                                                    labels["h"], height, width)
    labels = labels[(labels["w"] > 0) & (labels["h"] > 0)]
    w, h = labels["w"], labels["h"]
    if dataset == "gen1":  # Prophesee filter (diagonal 30, side 10), in the fields' float type
        keep = (w ** 2 + h ** 2 >= 30 ** 2) & (w >= 10) & (h >= 10)
    else:  # RVT's "conservative" filter for 1Mpx
        keep = (w >= 5) & (h >= 5)
    labels = labels[keep]
    if train:
        labels = labels[labels["w"] <= (9 * width) // 10]
    return labels


def rvt_label_period(unique_ts: np.ndarray, dataset: str, source: str = "labels") -> int:
    """Δ (µs), the spacing of RVT's label-frame grid: 250 000 for Gen1; for 1Mpx ``int(6·median)`` at 60 Hz
    or ``int(3·median)`` at 30 Hz (``median`` the median gap between unique label times).

    Raises:
        ValueError: 1Mpx with fewer than 2 label times or a rate other than 30/60 Hz (names ``source``).
    """
    if check_dataset(dataset) == "gen1":
        return 250_000
    if unique_ts.size < 2:
        raise ValueError(f"{source}: a single label time after RVT's filters: the 1Mpx label rate is "
                         f"undefined (RVT's preprocessing fails on this sequence)")
    median = float(np.median(np.diff(unique_ts)))
    hz = int(np.rint(1e6 / median))
    if hz not in (30, 60):
        raise ValueError(f"{source}: label rate {hz} Hz (median gap {median} µs); RVT's preprocessing "
                         f"accepts only 30 or 60 Hz 1Mpx labels")
    return int(6 * median if hz == 60 else 3 * median)


@dataclass(frozen=True)
class RvtLabelFrames:
    """The label frames of one sequence, as RVT writes them.

    Attributes:
        frame_ts: int64 ``[F]`` frame times (µs), increasing (``labels_v2/timestamps_us.npy``).
        labels: the boxes of every frame, in frame order, the input dtype (``labels.npz['labels']``).
        label_index: int64 ``[F]`` first row of each frame in ``labels`` (``objframe_idx_2_label_idx``).
        reprs_between: int64 ``[F − 1]`` representations between consecutive frames (``2k``).
    """

    frame_ts: np.ndarray
    labels: np.ndarray
    label_index: np.ndarray
    reprs_between: np.ndarray


def rvt_label_frames(labels: np.ndarray, dataset: str, source: str = "labels") -> RvtLabelFrames:
    """Choose the label frames of filtered, time-sorted labels as RVT does (see the module docstring).

    Args:
        labels: output of :func:`rvt_filter_labels` (field ``t`` in µs), sorted by ``t``.
        dataset: ``"gen1"`` or ``"gen4"``. source: the label file, named in errors.
    Raises:
        NoLabelsError: ``labels`` is empty.
        ValueError: the cases where RVT's script fails (module docstring), naming ``source``.
    """
    if labels.size == 0:
        raise NoLabelsError(f"{source}: no label left after RVT's filters")
    t = np.asarray(labels["t"], dtype=np.int64)
    if np.any(t[1:] < t[:-1]):
        raise ValueError(f"{source}: labels are not sorted by t")
    unique_ts = np.unique(t)
    delta = rvt_label_period(unique_ts, dataset, source)
    first = int(np.searchsorted(unique_ts, RVT_ALIGN_US, side="left"))
    if first == len(unique_ts):
        raise ValueError(f"{source}: no label at or after {RVT_ALIGN_US} µs (last at {unique_ts[-1]} µs); "
                         f"RVT's preprocessing fails on this sequence")
    frames = [int(unique_ts[first])]
    between: list[int] = []
    for ts in unique_ts[first + 1:].tolist():
        gap = ts - frames[-1]
        count = round(gap / delta)
        if abs(gap - count * delta) <= RVT_JITTER_US:
            if count <= 0:
                raise ValueError(f"{source}: label times {frames[-1]} and {ts} µs are within "
                                 f"{RVT_JITTER_US} µs of each other; RVT's preprocessing fails on this "
                                 f"sequence")
            frames.append(ts)
            between.append(2 * count)  # one representation per 50 ms of a 100 ms frame step
    frame_ts = np.asarray(frames, dtype=np.int64)
    if frame_ts.size > 1 and np.diff(frame_ts).min() <= RVT_MIN_FRAME_GAP_US:
        raise ValueError(f"{source}: label frames only {np.diff(frame_ts).min()} µs apart; RVT's "
                         f"preprocessing requires more than {RVT_MIN_FRAME_GAP_US} µs")
    lo = np.searchsorted(t, frame_ts, side="left")
    hi = np.searchsorted(t, frame_ts, side="right")
    rows = np.concatenate([np.arange(a, b) for a, b in zip(lo.tolist(), hi.tolist(), strict=True)])
    label_index = np.r_[0, np.cumsum(hi - lo)[:-1]].astype(np.int64)
    return RvtLabelFrames(frame_ts, labels[rows], label_index, np.asarray(between, dtype=np.int64))


def rvt_repr_timestamps(frame_ts: np.ndarray, reprs_between: np.ndarray,
                        step: int = RVT_REPR_STEP_US) -> np.ndarray:
    """End times (µs, int64) of the event representations of a sequence (see the module docstring).

    Args:
        frame_ts: int64 ``[F]`` label-frame times (``F >= 1``). reprs_between: int64 ``[F − 1]``.
        step: grid before the first frame (µs; RVT: 50 000).
    """
    frame_ts = np.asarray(frame_ts, dtype=np.int64)
    if frame_ts.size == 0 or len(reprs_between) != frame_ts.size - 1:
        raise ValueError(f"rvt_repr_timestamps: {frame_ts.size} frames need "
                         f"{max(frame_ts.size - 1, 0)} counts, got {len(reprs_between)}")
    ends = list(reversed(range(int(frame_ts[0]), 0, -int(step))))[1:-1]
    last = len(reprs_between) - 1
    for i, n in enumerate(np.asarray(reprs_between).tolist()):
        edges = np.linspace(frame_ts[i], frame_ts[i + 1], int(n) + 1).astype(np.int64).tolist()
        ends.extend(edges if i == last else edges[:-1])
    if frame_ts.size == 1:
        ends.append(int(frame_ts[0]))
    return np.asarray(ends, dtype=np.int64)


def rvt_frame_to_repr(repr_ts: np.ndarray, frame_ts: np.ndarray) -> np.ndarray:
    """``objframe_idx_2_repr_idx``: the representation of each label frame, ``searchsorted(repr_ts,
    frame_ts, "left")`` (int64 ``[F]``)."""
    return np.searchsorted(repr_ts, frame_ts, side="left").astype(np.int64)
