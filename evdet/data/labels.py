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


def _interpolate(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Boxes of tracks at times ``t`` between annotations ``a`` (at ``a.t <= t``) and ``b`` (``b.t > t``)."""
    out = a.copy()
    alpha = (t - a["t"]).astype(np.float64) / (b["t"] - a["t"]).astype(np.float64)
    for f in ("x", "y", "w", "h"):
        out[f] = (a[f] + alpha * (b[f].astype(np.float64) - a[f])).astype(np.float32)
    out["t"] = t
    return out


def assign_boxes_flat(boxes: np.ndarray, start_ts: int, delta_t: int, num_tbins: int, *,
                      num_valid_bins: int | None = None, include_start: bool = False,
                      interpolate: bool = False, max_interp_gap: int = 0, real_track_ids: bool = True
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`assign_boxes_to_bins` returning ``(boxes, bin_index, labeled)``: the boxes of every bin in one
    ``BBOX_DTYPE`` array, ``bin_index: ndarray[n]`` int64 (non-decreasing) and ``labeled: ndarray[T]`` bool.
    Vectorised over bins (no Python loop)."""
    valid = num_tbins if num_valid_bins is None else int(num_valid_bins)
    labeled = np.zeros(num_tbins, dtype=bool)
    nothing = (np.zeros(0, dtype=BBOX_DTYPE), np.zeros(0, dtype=np.int64), labeled)
    if boxes.size == 0 or valid <= 0:
        return nothing
    gap = int(max_interp_gap) if (interpolate and real_track_ids) else 0
    lo = int(np.searchsorted(boxes["t"], start_ts - gap - (1 if include_start else 0), side="right"))
    hi = int(np.searchsorted(boxes["t"], start_ts + valid * delta_t + gap, side="right"))
    window = boxes[lo:hi]
    if window.size == 0:
        return nothing
    instants = np.unique(window["t"])
    ends = start_ts + (np.arange(valid, dtype=np.int64) + 1) * delta_t  # [V]
    starts = ends - delta_t
    if include_start:
        starts[0] -= 1
    in_bin = np.searchsorted(instants, ends, side="right") > np.searchsorted(instants, starts, side="right")
    if real_track_ids:
        window = window[np.lexsort((window["t"], window["track_id"]))]
    t = window["t"]
    same_next = np.zeros(window.size, dtype=bool)
    if real_track_ids:
        same_next[:-1] = window["track_id"][1:] == window["track_id"][:-1]
    t_next = np.r_[t[1:], np.iinfo(np.int64).max]

    if gap <= 0:  # latest instant wins (per track, or per bin without real track ids)
        k = -((start_ts - t) // delta_t) - 1  # first bin whose end is >= t
        if include_start:
            k[t == start_ts] = 0
        ok = (k >= 0) & (k < valid)
        if real_track_ids:
            k_next = np.r_[k[1:], -1]
            keep = ok & ~(same_next & (k_next == k))
        else:
            latest = np.full(valid, np.iinfo(np.int64).min, dtype=np.int64)
            np.maximum.at(latest, k[ok], t[ok])
            keep = ok & (t == latest[np.clip(k, 0, valid - 1)])
        labeled[:valid] = in_bin
        order = np.argsort(k[keep], kind="stable")
        return window[keep][order], k[keep][order].astype(np.int64), labeled

    j = np.searchsorted(instants, ends, side="right")
    jc = np.clip(j, 1, instants.size - 1) if instants.size > 1 else np.zeros_like(j)
    bracketed = (j > 0) & (j < instants.size) & (instants[jc] - instants[jc - 1] <= gap)
    lab = in_bin | bracketed
    labeled[:valid] = lab
    e = ends[:, None]  # [V, 1] against boxes [1, n]
    last_prev = (t <= e) & ~(same_next & (t_next <= e))
    exact = last_prev & (t == e)
    interp = last_prev & (t < e) & same_next & (t_next - t <= gap)
    ends_here = last_prev & (t > starts[:, None]) & ~exact & ~interp
    k1, i1 = np.nonzero((exact | ends_here) & lab[:, None])
    k2, i2 = np.nonzero(interp & lab[:, None])
    merged = np.concatenate([window[i1], _interpolate(window[i2], window[i2 + 1], ends[k2])])
    bins = np.concatenate([k1, k2]).astype(np.int64)
    order = np.lexsort((merged["track_id"], bins))
    return merged[order], bins[order], labeled


def assign_boxes_to_bins(boxes: np.ndarray, start_ts: int, delta_t: int, num_tbins: int, *,
                         num_valid_bins: int | None = None, include_start: bool = False,
                         interpolate: bool = False, max_interp_gap: int = 0,
                         real_track_ids: bool = True) -> tuple[list[np.ndarray], np.ndarray]:
    """Boxes of each bin of a chunk (SPEC 4.1).

    Bin k covers ``(start_ts + k·delta_t, start_ts + (k+1)·delta_t]`` (µs): a box at τ belongs to the
    first bin whose end is ≥ τ. Within a bin the latest annotation of each track wins (without real
    track ids: every box of the latest instant in the bin). With ``interpolate`` (and real track ids),
    each track annotated at ``t0 ≤ end < t1`` with ``t1 − t0 ≤ max_interp_gap`` gets its box linearly
    interpolated (x, y, w, h) to the bin end; a bin counts as labelled when it holds an annotation
    instant or lies between two instants at most ``max_interp_gap`` apart. A track whose last
    annotation falls in the bin with no later one in reach keeps that annotation.

    Args:
        boxes: ``BBOX_DTYPE`` array sorted by ``t`` (sensor pixels), "empty" boxes included.
        start_ts: chunk start (µs). delta_t: bin length (µs). num_tbins: T.
        num_valid_bins: bins holding data (a video tail); later bins get nothing. None: all T.
        include_start: bin 0 also takes boxes at exactly ``start_ts`` (first chunk of a video).
    Returns:
        ``(per_bin, labeled)``: T ``BBOX_DTYPE`` arrays (box time set to the bin end when
        interpolated), and ``labeled``: ``ndarray[T]`` bool.
    """
    flat, bins, labeled = assign_boxes_flat(boxes, start_ts, delta_t, num_tbins,
                                            num_valid_bins=num_valid_bins, include_start=include_start,
                                            interpolate=interpolate,
                                            max_interp_gap=max_interp_gap, real_track_ids=real_track_ids)
    bounds = np.searchsorted(bins, np.arange(1, num_tbins))
    return list(np.split(flat, bounds)), labeled


def filter_boxes_to_targets(boxes: np.ndarray, *, sensor_size: tuple[int, int],
                            class_lookup: Mapping[int, int], network_size: tuple[int, int], clip: bool = True,
                            min_box_side: float = 2.0, min_box_diag_network: float = 0.0,
                            return_index: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Turn ``BBOX_DTYPE`` boxes (sensor pixels) into network targets, filters in SPEC 4.1 order:
    clip to the sensor frame; drop boxes with a side ≤ ``min_box_side`` (sensor px); keep classes of
    ``class_lookup`` and remap them (others and "empty" dropped); rescale to ``network_size``; drop boxes
    with a diagonal < ``min_box_diag_network`` or a side < ``min_box_diag_network / 3`` (network px).

    Args:
        sensor_size, network_size: ``(height, width)`` in pixels.
    Returns:
        ``ndarray[n, 5]`` float32 rows ``(x1, y1, x2, y2, class_idx)``, xyxy in network pixels; with
        ``return_index``, also the indices (into ``boxes``) of the rows kept.
    """
    if boxes.size == 0:
        empty = np.zeros((0, 5), dtype=np.float32)
        return (empty, np.zeros(0, dtype=np.int64)) if return_index else empty
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
    index = np.flatnonzero(keep)
    out = np.stack([x1 * fx, y1 * fy, x2 * fx, y2 * fy, values[pos] if keys.size else cid], axis=1)[index]
    if min_box_diag_network > 0 and out.size:
        w, h = out[:, 2] - out[:, 0], out[:, 3] - out[:, 1]
        diag = np.hypot(w, h)
        side = min_box_diag_network / 3.0
        ok = (diag >= min_box_diag_network) & (w >= side) & (h >= side)
        out, index = out[ok], index[ok]
    out = out.astype(np.float32)
    return (out, index) if return_index else out
