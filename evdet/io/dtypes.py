"""Structured numpy dtypes for events and boxes (SPEC 2.1, 2.4) and conversion by field name."""

from __future__ import annotations

import mmap

import numpy as np

EVENT_DTYPE = np.dtype({"names": ["x", "y", "p", "t"], "formats": ["<u2", "<u2", "<i2", "<i8"],
                        "offsets": [0, 2, 4, 8], "itemsize": 16})
"""One event: ``x``, ``y`` (pixels), ``p`` (0 = OFF, 1 = ON), ``t`` (microseconds). Itemsize 16."""

BBOX_DTYPE = np.dtype({
    "names": ["t", "x", "y", "w", "h", "class_id", "track_id", "class_confidence"],
    "formats": ["<i8", "<f4", "<f4", "<f4", "<f4", "<u4", "<u4", "<f4"],
    "offsets": [0, 8, 12, 16, 20, 24, 28, 32],
    "itemsize": 40,
})
"""One box: ``t`` (µs), top-left ``x``, ``y`` and size ``w``, ``h`` (pixels), ``class_id``,
``track_id``, ``class_confidence`` (1.0 for ground truth, the score for detections). Itemsize 40."""

MAPPED_MIN_BYTES = 1 << 24
"""Event arrays of at least this size (16 MB, 1 M events) may be allocated by ``empty_events`` in their
own anonymous memory map."""
MAPPED_BUDGET_BYTES = 1 << 31
"""Bytes of event arrays a process allocates in anonymous maps before ``empty_events`` turns to numpy."""
_mapped_bytes = 0  # allocated in anonymous maps by this process so far


def empty_events(n: int) -> np.ndarray:
    """A new, uninitialised ``EVENT_DTYPE ndarray[n]``: what every decoder writes its output into.

    numpy asks Linux for transparent huge pages on large arrays (``madvise``). Where the kernel then
    compacts memory on the first write (``defrag`` set to ``madvise``, a common default), filling a fresh
    320 MB array takes 0.8 s the first time in a process and 0.035 s once freed huge pages are reused;
    plain 4 KiB pages take 0.14 s every time (measured on the 2-core development machine). So a process's
    first ``MAPPED_BUDGET_BYTES`` of arrays of ``MAPPED_MIN_BYTES`` or more come from private anonymous
    maps (POSIX), which spares a script that reads one file the compaction, and later ones from numpy,
    which a process that reads on and on repays. The array behaves like any other (writable, freed with
    its last view); only ``flags.owndata`` is False for a mapped one.
    """
    global _mapped_bytes
    nbytes = int(n) * EVENT_DTYPE.itemsize
    if (nbytes < MAPPED_MIN_BYTES or _mapped_bytes >= MAPPED_BUDGET_BYTES
            or not hasattr(mmap, "MAP_PRIVATE")):
        return np.empty(int(n), dtype=EVENT_DTYPE)
    _mapped_bytes += nbytes
    buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buffer, dtype=EVENT_DTYPE, count=int(n))


_BOX_ALIASES = {"t": ("t", "ts"), "class_confidence": ("class_confidence", "confidence")}


def as_events(array: np.ndarray, source: str = "events") -> np.ndarray:
    """Convert a structured array with fields ``x, y, p, t`` (any order, any numeric dtype,
    ``p`` possibly bool) to ``EVENT_DTYPE``. Returns the input itself when it already has it.

    Raises:
        TypeError: ``array`` is not a structured array.
        ValueError: a field is missing; the message names ``source``.
    """
    if array.dtype == EVENT_DTYPE:
        return array
    if array.dtype.names is None:
        raise TypeError(f"{source}: expected a structured array with fields x, y, p, t, got {array.dtype}")
    missing = [f for f in EVENT_DTYPE.names if f not in array.dtype.names]
    if missing:
        raise ValueError(f"{source}: events lack field(s) {missing}; have {list(array.dtype.names)}")
    out = np.empty(array.shape, dtype=EVENT_DTYPE)
    for name in EVENT_DTYPE.names:
        out[name] = array[name]
    return out


def _fits(values: np.ndarray, dtype: np.dtype, field: str, source: str) -> np.ndarray:
    """``values`` after checking that an integer field ``dtype`` holds them exactly: finite, whole and in
    range (a cast would turn NaN into -2^63 and -1 into 4294967295); float fields take any number."""
    if dtype.kind not in "iu" or values.dtype.kind not in "iuf" or not values.size:
        return values
    info = np.iinfo(dtype)
    bad = (values < info.min) | (values > info.max)
    if values.dtype.kind == "f":
        bad |= ~np.isfinite(values) | (values != np.floor(values))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"labels in {source}: box {i} has {field} = {values[i]}, which a {dtype} field "
                         f"cannot hold")
    return values


def as_boxes(array: np.ndarray, source: str = "boxes") -> np.ndarray:
    """Convert a structured box array to ``BBOX_DTYPE`` by field name.

    Accepts the legacy names ``ts`` (for ``t``) and ``confidence`` (for ``class_confidence``) and any
    numeric widths. A missing ``track_id`` becomes a unique id per box (0, 1, 2, ...) and a missing
    confidence becomes 1.0; any other missing field raises.

    Raises:
        TypeError: ``array`` is not a structured array.
        ValueError: a required field is missing (the message names ``source`` and the fields present); a
            value its field cannot hold exactly (NaN or fractional ``t``, a negative ``class_id``: names
            the box).
    """
    if array.dtype == BBOX_DTYPE:
        return array
    names = array.dtype.names
    if names is None:
        raise TypeError(f"{source}: expected a structured box array, got dtype {array.dtype}")
    out = np.empty(array.shape, dtype=BBOX_DTYPE)
    for field in BBOX_DTYPE.names:
        src = next((a for a in _BOX_ALIASES.get(field, (field,)) if a in names), None)
        if src is not None:
            out[field] = _fits(array[src], BBOX_DTYPE[field], field, source)
        elif field == "track_id":
            out[field] = np.arange(array.size, dtype=np.uint32)
        elif field == "class_confidence":
            out[field] = 1.0
        else:
            raise ValueError(f"{source}: box field '{field}' is missing; fields present: {list(names)}")
    return out


def concatenate_events(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate ``EVENT_DTYPE`` arrays into one ``EVENT_DTYPE ndarray[sum n]`` (a plain copy).

    Use it instead of ``np.concatenate``: numpy 2 returns a *packed* structured dtype (itemsize 14) from
    ``np.concatenate`` of arrays with padding, and ``np.concatenate(..., dtype=EVENT_DTYPE)`` converts
    field by field (an order of magnitude slower).
    """
    if len(parts) == 1:
        return parts[0]
    out = empty_events(sum(p.shape[0] for p in parts))
    start = 0
    for part in parts:
        out[start:start + part.shape[0]] = as_events(part)
        start += part.shape[0]
    return out
