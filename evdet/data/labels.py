"""Labels per time bin (SPEC 4.1): bin assignment on ``(start, end]``, latest-instant-wins, linear
interpolation per ``track_id`` to bin ends, the fallback for data without real track ids, and the box
filters (clip, small sides, class selection/remapping by name, rescale to network size, diagonal).

All functions are pure: they never modify their inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from evdet.io.dtypes import BBOX_DTYPE
from evdet.io.label_map import EMPTY_CLASS, class_names


def resolve_classes(label_map: Mapping[int, str], classes: Sequence[str] | None,
                    source: str = "label map") -> tuple[tuple[str, ...], dict[int, int]]:
    """Output class names and the lookup ``original class id -> output index``.

    Args:
        label_map: ``{id: name}`` of the dataset.
        classes: names to keep, in output order; None keeps every name but ``"empty"`` in id order.
        source: file named in errors.
    Returns:
        ``(names, lookup)``; ids absent from ``lookup`` (other classes, ``"empty"``) are dropped.
    Raises:
        ValueError: a name of ``classes`` is not in the label map (the message lists the valid names),
            or a name is repeated.
    """
    valid = class_names(dict(label_map))
    names = tuple(valid) if classes is None else tuple(classes)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"{source}: class(es) {unknown} not in the label map; valid names: {valid}")
    if len(set(names)) != len(names):
        raise ValueError(f"{source}: classes {list(names)} contain a repeated name")
    index = {name: i for i, name in enumerate(names)}
    lookup = {int(cid): index[name] for cid, name in label_map.items() if name in index}
    return names, lookup


def empty_class_ids(label_map: Mapping[int, str]) -> tuple[int, ...]:
    """Ids whose name is the reserved ``"empty"`` class."""
    return tuple(int(k) for k, v in label_map.items() if v == EMPTY_CLASS)


def detect_label_period(boxes: np.ndarray) -> int | None:
    """Median gap (µs) between consecutive distinct annotation instants; None with fewer than 2 instants."""
    instants = np.unique(boxes["t"])
    if instants.size < 2:
        return None
    return int(np.median(np.diff(instants)))


def has_real_track_ids(boxes: np.ndarray) -> bool:
    """True when some ``track_id`` occurs more than once (tracks span several instants); False when
    every id is unique (ids carry no tracking information: interpolation falls back to nearest)."""
    return boxes.size > 0 and np.unique(boxes["track_id"]).size < boxes.size


def _interpolate(a: np.ndarray, b: np.ndarray, t: int) -> np.ndarray:
    """Boxes of tracks at time ``t`` between annotations ``a`` (at ``a.t <= t``) and ``b`` (``b.t > t``)."""
    out = a.copy()
    alpha = (t - a["t"]).astype(np.float64) / (b["t"] - a["t"]).astype(np.float64)
    for f in ("x", "y", "w", "h"):
        out[f] = (a[f] + alpha * (b[f].astype(np.float64) - a[f])).astype(np.float32)
    out["t"] = t
    return out


def assign_boxes_to_bins(boxes: np.ndarray, start_ts: int, delta_t: int, num_tbins: int, *,
                         num_valid_bins: int | None = None, include_start: bool = False,
                         interpolate: bool = False, max_interp_gap: int = 0,
                         real_track_ids: bool = True) -> tuple[list[np.ndarray], np.ndarray]:
    """Boxes of each bin of a chunk (SPEC 4.1).

    Bin k covers ``(start_ts + k·delta_t, start_ts + (k+1)·delta_t]`` (µs): a box at τ belongs to the
    first bin whose end is ≥ τ. Within a bin the latest annotation of each track wins (without real
    track ids: every box of the latest instant in the bin). With ``interpolate`` (and real track ids),
    each track annotated at ``t0 ≤ end < t1`` with ``t1 − t0 ≤ max_interp_gap`` gets its box linearly
    interpolated (x, y, w, h) to the bin end; such a bin counts as labelled.

    Args:
        boxes: ``BBOX_DTYPE`` array sorted by ``t`` (sensor pixels), "empty" boxes included.
        start_ts: chunk start (µs). delta_t: bin length (µs). num_tbins: T.
        num_valid_bins: bins holding data (a video tail); later bins get nothing. None: all T.
        include_start: bin 0 also takes boxes at exactly ``start_ts`` (first chunk of a video).
    Returns:
        ``(per_bin, labeled)``: T ``BBOX_DTYPE`` arrays, box times set to the bin end when
        interpolated; ``labeled``: ``ndarray[T]`` bool.
    """
    valid = num_tbins if num_valid_bins is None else num_valid_bins
    per_bin = [np.zeros(0, dtype=BBOX_DTYPE) for _ in range(num_tbins)]
    labeled = np.zeros(num_tbins, dtype=bool)
    if boxes.size == 0 or valid <= 0:
        return per_bin, labeled
    gap = int(max_interp_gap) if (interpolate and real_track_ids) else 0
    end_ts = start_ts + valid * delta_t
    lo = int(np.searchsorted(boxes["t"], start_ts - gap - (1 if include_start else 0), side="right"))
    hi = int(np.searchsorted(boxes["t"], end_ts + gap, side="right"))
    window = boxes[lo:hi]
    if window.size == 0:
        return per_bin, labeled
    instants = np.unique(window["t"])
    if real_track_ids:
        window = window[np.lexsort((window["t"], window["track_id"]))]
    t = window["t"]
    same_next = np.zeros(window.size, dtype=bool)
    if real_track_ids:
        same_next[:-1] = window["track_id"][1:] == window["track_id"][:-1]
    t_next = np.r_[t[1:], np.iinfo(np.int64).max]

    for k in range(valid):
        bin_end = start_ts + (k + 1) * delta_t
        bin_start = start_ts + k * delta_t - (1 if (include_start and k == 0) else 0)
        in_bin_instant = bool(np.any((instants > bin_start) & (instants <= bin_end)))
        if not (interpolate and gap > 0):
            if not in_bin_instant:
                continue
            in_bin = (t > bin_start) & (t <= bin_end)
            if real_track_ids:
                keep = in_bin & ~(same_next & (t_next <= bin_end))
            else:
                keep = in_bin & (t == t[in_bin].max())
            per_bin[k] = window[keep]
            labeled[k] = True
            continue
        j = int(np.searchsorted(instants, bin_end, side="right"))
        bracketed = 0 < j < instants.size and instants[j] - instants[j - 1] <= gap
        if not (in_bin_instant or bracketed):
            continue
        prev = t <= bin_end
        last_prev = prev & ~(same_next & (t_next <= bin_end))
        exact = last_prev & (t == bin_end)
        interp = last_prev & (t < bin_end) & same_next & (t_next - t <= gap)
        ends_here = last_prev & (t > bin_start) & ~exact & ~interp
        idx = np.flatnonzero(interp)
        parts = [window[exact | ends_here], _interpolate(window[idx], window[idx + 1], bin_end)]
        merged = np.concatenate(parts)
        per_bin[k] = merged[np.argsort(merged["track_id"], kind="stable")]
        labeled[k] = True
    return per_bin, labeled


def filter_boxes_to_targets(boxes: np.ndarray, *, sensor_size: tuple[int, int],
                            class_lookup: Mapping[int, int], network_size: tuple[int, int], clip: bool = True,
                            min_box_side: float = 2.0,
                            min_box_diag_network: float = 0.0) -> np.ndarray:
    """Turn ``BBOX_DTYPE`` boxes (sensor pixels) into network targets, filters in SPEC 4.1 order:
    clip to the sensor frame; drop boxes with a side ≤ ``min_box_side`` (sensor px); keep classes of
    ``class_lookup`` and remap them (others and "empty" dropped); rescale to ``network_size``; drop boxes
    with a diagonal < ``min_box_diag_network`` or a side < ``min_box_diag_network / 3`` (network px).

    Args:
        sensor_size, network_size: ``(height, width)`` in pixels.
    Returns:
        ``ndarray[n, 5]`` float32 rows ``(x1, y1, x2, y2, class_idx)``, xyxy in network pixels.
    """
    if boxes.size == 0:
        return np.zeros((0, 5), dtype=np.float32)
    sh, sw = sensor_size
    x1 = boxes["x"].astype(np.float64)
    y1 = boxes["y"].astype(np.float64)
    x2 = x1 + boxes["w"]
    y2 = y1 + boxes["h"]
    if clip:
        x1, x2 = np.clip(x1, 0, sw), np.clip(x2, 0, sw)
        y1, y2 = np.clip(y1, 0, sh), np.clip(y2, 0, sh)
    keep = ((x2 - x1) > min_box_side) & ((y2 - y1) > min_box_side)
    keys = np.array(sorted(class_lookup), dtype=np.int64)
    values = np.array([class_lookup[k] for k in keys.tolist()], dtype=np.int64)
    cid = boxes["class_id"].astype(np.int64)
    pos = np.clip(np.searchsorted(keys, cid), 0, max(keys.size - 1, 0))
    known = (keys[pos] == cid) if keys.size else np.zeros(cid.shape, dtype=bool)
    keep &= known
    nh, nw = network_size
    fy, fx = nh / sh, nw / sw
    out = np.stack([x1 * fx, y1 * fy, x2 * fx, y2 * fy, values[pos] if keys.size else cid], axis=1)[keep]
    if min_box_diag_network > 0 and out.size:
        w, h = out[:, 2] - out[:, 0], out[:, 3] - out[:, 1]
        diag = np.hypot(w, h)
        side = min_box_diag_network / 3.0
        out = out[(diag >= min_box_diag_network) & (w >= side) & (h >= side)]
    return out.astype(np.float32)
