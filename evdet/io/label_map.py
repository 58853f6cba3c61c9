"""``label_map_dictionary.json`` files (SPEC 2.5) and the maps of the public datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path

from evdet.io.atomic import atomic_open
from evdet.io.files import require_regular_file

EMPTY_CLASS = "empty"
"""Reserved class name: a box of this class marks a frame as labelled with no objects."""

GEN1_LABEL_MAP: dict[int, str] = {0: "car", 1: "pedestrian"}
GEN4_LABEL_MAP: dict[int, str] = {0: "pedestrian", 1: "two wheeler", 2: "car", 3: "truck", 4: "bus",
                                  5: "traffic sign", 6: "traffic light"}
LABEL_MAP_FILENAME = "label_map_dictionary.json"


class _Pairs(list):
    """A JSON object as its ``(key, value)`` pairs in file order, a key given twice included (a ``dict``
    would keep the last one silently)."""


def load_label_map(path: str | os.PathLike) -> dict[int, str]:
    """Read a label map: ``{"0": "car", ...}`` -> ``{0: "car", ...}``. ``path`` may be the dataset folder.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a regular file, not UTF-8, not a JSON object of decimal-string keys to non-empty
            string names, a key given twice or two keys of one id (``"0"``, ``"00"``), or a duplicate name.
    """
    path = Path(path)
    if path.is_dir():
        path = path / LABEL_MAP_FILENAME
    require_regular_file(path, "label map")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"label map {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        raw = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as exc:
        raise ValueError(f"label map {path}: invalid JSON ({exc})") from exc
    if not isinstance(raw, _Pairs) or not raw:
        got = "an empty object" if isinstance(raw, _Pairs) else type(raw).__name__
        raise ValueError(f"label map {path}: expected a non-empty JSON object, got {got}")
    out: dict[int, str] = {}
    keys: dict[int, str] = {}  # class id -> the key that gave it
    for key, name in raw:
        if not str(key).lstrip("-").isdigit():
            raise ValueError(f"label map {path}: key {key!r} is not a decimal class id")
        if not isinstance(name, str) or not name:
            raise ValueError(f"label map {path}: class {key} has name {name!r}")
        if int(key) in keys:
            other = keys[int(key)]
            raise ValueError(f"label map {path}: key {key!r} is given twice" if other == key else
                             f"label map {path}: keys {other!r} and {key!r} are both class id {int(key)}")
        keys[int(key)] = key
        out[int(key)] = name
    names = [n for n in out.values() if n != EMPTY_CLASS]
    if len(set(names)) != len(names):
        raise ValueError(f"label map {path}: duplicate class names in {sorted(names)}")
    return dict(sorted(out.items()))


def save_label_map(path: str | os.PathLike, label_map: dict[int, str]) -> None:
    """Write ``{id: name}`` as ``label_map_dictionary.json``; ``path`` may be the dataset folder."""
    path = Path(path)
    if path.is_dir():
        path = path / LABEL_MAP_FILENAME
    with atomic_open(path, "w") as f:
        f.write(json.dumps({str(k): v for k, v in sorted(label_map.items())}, indent=1) + "\n")


def class_names(label_map: dict[int, str]) -> list[str]:
    """Object class names in id order, without the reserved ``empty`` class."""
    return [name for _, name in sorted(label_map.items()) if name != EMPTY_CLASS]
