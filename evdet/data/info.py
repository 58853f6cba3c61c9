"""``describe_dataset``: what a dataset directory holds (SPEC 2.6), checked for consistency."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evdet.data.rvt import is_rvt_sequence, rvt_label_map
from evdet.data.sources import VideoSpec, probe_video
from evdet.io.event_h5 import dsec_events_file
from evdet.io.files import is_listed_file
from evdet.io.label_map import LABEL_MAP_FILENAME, load_label_map
from evdet.io.layout import RECORDING_SUFFIXES, SPLITS


@dataclass(frozen=True)
class DatasetInfo:
    """Facts read from a dataset directory.

    Attributes:
        dataset_dir: the directory. label_map: ``{id: name}``.
        splits: split name -> sorted list of recording files (``.h5``/``.hdf5``/``.dat``/``.raw``).
        in_channels: C per bin. representation, representation_params: how tensors were (or will be) made.
        delta_t: bin length (µs). sensor_size, stored_size: ``(height, width)`` of the sensor (label pixels)
            and of the stored tensors.
        videos: split name -> :class:`~evdet.data.sources.VideoSpec` per file (same order as ``splits``).
    """

    dataset_dir: Path
    label_map: dict[int, str]
    splits: dict[str, list[Path]]
    in_channels: int
    representation: str
    representation_params: Mapping[str, Any]
    delta_t: int
    sensor_size: tuple[int, int]
    stored_size: tuple[int, int]
    videos: dict[str, list[VideoSpec]] = field(default_factory=dict, repr=False)


def list_recordings(folder: str | os.PathLike) -> list[Path]:
    """Recordings of a split folder, sorted by name: files with a recording suffix, RVT sequence folders
    and the ``events/left/events.h5`` of DSEC sequence folders (``_bbox.npy``, hidden and other files
    ignored)."""
    folder = Path(folder)
    found = []
    for p in folder.iterdir():
        if p.name.startswith("."):
            continue
        if (is_listed_file(p) and p.name.lower().endswith(RECORDING_SUFFIXES)) or is_rvt_sequence(p):
            found.append(p)
        elif p.is_dir() and dsec_events_file(p) is not None:
            found.append(dsec_events_file(p))
    return sorted(found)


def expand_recordings(inputs: list[str | os.PathLike]) -> list[Path]:
    """Recordings named by ``inputs``: files and RVT sequence folders as given; other folders contribute,
    recursively and sorted, their recording files (``.dat``/``.raw``/``.h5``/``.hdf5``) and RVT sequence
    folders (whose own HDF5 files are not recordings by themselves).

    Raises:
        FileNotFoundError: an input does not exist, or a folder holds no recording.
    """
    out: list[Path] = []
    for item in map(Path, inputs):
        if not item.exists():
            raise FileNotFoundError(f"recording not found: {item}")
        if not item.is_dir() or is_rvt_sequence(item):
            out.append(item)
            continue
        found, stack = [], [item]
        while stack:
            folder = stack.pop()
            for p in folder.iterdir():
                if p.name.startswith("."):
                    continue
                if is_rvt_sequence(p) or (is_listed_file(p) and p.name.lower().endswith(RECORDING_SUFFIXES)):
                    found.append(p)
                elif p.is_dir():
                    stack.append(p)
        if not found:
            raise FileNotFoundError(f"no recordings ({', '.join(RECORDING_SUFFIXES)}, RVT sequence "
                                    f"folders) in folder {item}")
        out.extend(sorted(found))
    return out


CONSISTENT_ATTRIBUTES = ("channels", "delta_t", "representation", "params", "sensor_size", "stored_size")
"""What every video of a dataset must share (``params``: the representation parameters, e.g.
``max_incr_per_pixel``)."""


def check_consistent(specs: list[VideoSpec], problem: str = "inconsistent dataset") -> None:
    """Raise ``ValueError`` naming both files when channels, ``delta_t``, representation, its parameters,
    sensor size or stored size differ between videos; the message starts with ``problem``."""
    if not specs:
        return
    ref = specs[0]
    for spec in specs[1:]:
        for attr in CONSISTENT_ATTRIBUTES:
            if getattr(spec, attr) != getattr(ref, attr):
                name = "representation parameters" if attr == "params" else attr
                raise ValueError(f"{problem}: {name} = {_plain(getattr(ref, attr))!r} in "
                                 f"{ref.path} but {_plain(getattr(spec, attr))!r} in {spec.path}")


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def describe_dataset(dataset_dir: str | os.PathLike, *, delta_t: int | None = None,
                     representation: str | None = None, representation_params: Mapping[str, Any] | None = None
                     ) -> DatasetInfo:
    """Read and check a dataset directory: ``label_map_dictionary.json`` and ``train/``, ``val/``,
    ``test/`` folders (only ``train`` is required; ``val``/``test`` are used when present). Split folders of
    RVT sequence folders (RVT's preprocessed Gen1/1Mpx) are datasets too; without a label map file their
    class names are recognised from the data (:func:`evdet.data.rvt.rvt_label_map`).

    Args:
        dataset_dir: the directory.
        delta_t, representation, representation_params: used for raw recordings only (defaults 50_000 µs,
            ``"histo"``); an HDF5 file whose stored ``delta_t`` differs from a given one raises.
    Raises:
        FileNotFoundError: no such directory, no label map (and not a recognised RVT dataset), no ``train``
            split.
        ValueError: a split folder without recordings (names the folder); channels, ``delta_t``,
            representation, its parameters, sensor or stored size differing between files (names both
            files); bad HDF5 files (e.g. a non-integer ``delta_t``, named with the file).
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {root}")
    map_path = root / LABEL_MAP_FILENAME
    label_map = load_label_map(map_path) if map_path.exists() else None
    train = root / "train"
    if label_map is None and not (train.is_dir() and any(is_rvt_sequence(p) for p in train.iterdir())):
        raise FileNotFoundError(f"{root}: no {LABEL_MAP_FILENAME} (the label map is required)")
    if not (root / "train").is_dir():
        found = sorted(p.name for p in root.iterdir())
        raise FileNotFoundError(f"{root}: no train/ split folder (found {found})")
    splits: dict[str, list[Path]] = {}
    videos: dict[str, list[VideoSpec]] = {}
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        files = list_recordings(folder)
        if not files:
            raise ValueError(f"split folder {folder} holds no recording ({', '.join(RECORDING_SUFFIXES)})")
        splits[split] = files
        videos[split] = [probe_video(f, delta_t=delta_t, representation=representation,
                                     params=representation_params) for f in files]
    every = [s for split in splits for s in videos[split]]
    check_consistent(every)
    ref = every[0]
    if label_map is None:
        label_map = rvt_label_map(ref) if ref.kind == "rvt" else None
        if label_map is None:
            raise FileNotFoundError(f"{root}: no {LABEL_MAP_FILENAME} (the label map is required"
                                    + (f"; RVT data of size {ref.stored_size} is neither Gen1 nor 1Mpx)"
                                       if ref.kind == "rvt" else ")"))
    return DatasetInfo(root, label_map, splits, ref.channels, ref.representation, dict(ref.params),
                       ref.delta_t, ref.sensor_size, ref.stored_size, videos)
