"""Box label files ``<recording>_bbox.npy`` (SPEC 2.4): load, validate, save, and name lookup."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from evdet.io.atomic import atomic_open
from evdet.io.dtypes import BBOX_DTYPE, as_boxes
from evdet.io.event_h5 import dsec_label_path
from evdet.io.files import require_regular_file

_RECORDING_SUFFIXES = ("_td.dat.h5", "_td.h5", "_td.dat", ".dat", ".raw", ".h5", ".hdf5")
"""Suffixes dropped from a recording's file name, longest first: Gen1 ``foo_td.dat``, RVT's mirror of it
``foo_td.dat.h5``, RVT's 1Mpx mirror ``foo_td.h5``, then plain extensions."""


def recording_stem(path: str | os.PathLike) -> str:
    """Name of a recording without its event suffix: ``a/foo_td.dat`` and ``a/foo_td.dat.h5`` -> ``foo``; a
    DSEC ``<sequence>/events/left/events.h5`` -> ``<sequence>``."""
    dsec = dsec_label_path(path)
    if dsec is not None:
        return dsec[0]
    name = Path(path).name
    for suffix in _RECORDING_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def label_path_for(recording: str | os.PathLike) -> Path:
    """Label file of a recording: ``foo_td.dat``, ``foo_td.dat.h5``, ``foo.dat``, ``foo.raw``, ``foo.h5`` ->
    ``foo_bbox.npy`` beside it; a DSEC ``events.h5`` -> its ``tracks.npy``
    (:func:`evdet.io.event_h5.dsec_label_path`)."""
    dsec = dsec_label_path(recording)
    if dsec is not None:
        return dsec[1]
    recording = Path(recording)
    return recording.with_name(recording_stem(recording) + "_bbox.npy")


def validate_boxes(boxes: np.ndarray, source: str) -> np.ndarray:
    """Check sizes and timestamps of a ``BBOX_DTYPE`` array; return it sorted by ``t``.

    Raises:
        ValueError: a coordinate, size or confidence is NaN/inf, or a size is negative (names box index and
            value).
    Warns:
        UserWarning: timestamps were not sorted (they are sorted, stably).
    """
    for field in ("x", "y", "w", "h", "class_confidence"):
        bad = np.flatnonzero(~np.isfinite(boxes[field]))
        if bad.size:
            raise ValueError(f"labels in {source}: box {bad[0]} has {field} = {boxes[field][bad[0]]}")
    for field in ("w", "h"):
        bad = np.flatnonzero(boxes[field] < 0)
        if bad.size:
            raise ValueError(f"labels in {source}: box {bad[0]} has {field} = {boxes[field][bad[0]]}")
    if boxes.size > 1 and np.any(np.diff(boxes["t"]) < 0):
        first = int(np.flatnonzero(np.diff(boxes["t"]) < 0)[0]) + 1
        warnings.warn(f"labels in {source}: timestamps not sorted (box {first} has t = {boxes['t'][first]}"
                      f" < previous); sorting them", UserWarning, stacklevel=3)
        boxes = boxes[np.argsort(boxes["t"], kind="stable")]
    return boxes


def load_boxes(path: str | os.PathLike) -> np.ndarray:
    """Load a ``_bbox.npy`` label file as a 1-D ``BBOX_DTYPE`` array sorted by ``t``.

    Legacy field names (``ts``, ``confidence``) and other integer/float widths are converted by name.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a regular file, empty or not ``.npy``, not a structured array, a field is missing,
            a value that its field cannot hold (NaN or fractional ``t``, a negative ``class_id``), NaN
            coordinates or confidences, negative sizes (naming the box).
    """
    path = require_regular_file(path, "label file")
    try:
        raw = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        what = "an empty file" if path.stat().st_size == 0 else f"not a numpy .npy array ({exc})"
        raise ValueError(f"labels in {path}: {what}") from None
    if raw.dtype.names is None:
        raise ValueError(f"labels in {path}: expected a structured array, got dtype {raw.dtype}")
    boxes = as_boxes(raw.reshape(-1), source=str(path))
    return validate_boxes(boxes, str(path))


def save_boxes(path: str | os.PathLike, boxes: np.ndarray) -> None:
    """Write boxes (converted to ``BBOX_DTYPE`` by field name, sorted by ``t``) to ``path`` atomically.

    The array is written to a temporary file in the same folder and renamed, so an interrupted
    write never leaves a partial ``_bbox.npy``.
    """
    path = Path(path)
    boxes = validate_boxes(as_boxes(np.asarray(boxes).reshape(-1), source=str(path)), str(path))
    with atomic_open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(boxes, dtype=BBOX_DTYPE))
