"""Open any event file: format detection (header first, then extension), ``open_events``, ``read_events``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from evdet.io.dat import DatReader
from evdet.io.dtypes import concatenate_events
from evdet.io.header import parse_header
from evdet.io.raw import RawReader

EVENT_FILE_FORMATS = ("dat", "evt2", "evt3")


def detect_format(path: str | os.PathLike) -> str:
    """``"dat"``, ``"evt2"`` or ``"evt3"``.

    The header decides when it declares an EVT version (``% evt 3.0``, ``% format EVT3;...``); otherwise
    a ``.raw`` extension means RAW of unknown version (error) and anything else with a ``%`` header or a
    ``.dat`` extension is DAT.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a ``.raw`` file without EVT version, an unsupported version, or an unknown extension
            without a header (names the file).
    """
    path = Path(path)
    header = parse_header(path)
    version = header.evt_version
    if version is not None:
        major = version.split(".")[0]
        if major in ("2", "3"):
            return f"evt{major}"
        raise ValueError(f"{path}: unsupported EVT version {version!r} (supported: 2.0, 3.0)")
    suffix = path.suffix.lower()
    if suffix == ".raw":
        raise ValueError(f"{path}: RAW file without '% evt' or '% format EVT' header line: cannot tell "
                         f"the EVT version")
    if suffix == ".dat" or header.lines:
        return "dat"
    raise ValueError(f"{path}: unknown event file type (extension {suffix!r}, no '%' header); "
                     f"expected .dat or .raw")


def open_events(path: str | os.PathLike, height: int | None = None,
                width: int | None = None) -> DatReader | RawReader:
    """A reader for ``path`` (``DatReader`` for DAT, ``RawReader`` for EVT 2.0/3.0); see ``detect_format``.

    Use as a context manager: ``with open_events(p) as r: ...``.
    """
    fmt = detect_format(path)
    if fmt == "dat":
        return DatReader(path, height=height, width=width)
    return RawReader(path, height=height, width=width)


def read_events(path: str | os.PathLike, t_start: int | None = None, t_end: int | None = None,
                height: int | None = None, width: int | None = None) -> np.ndarray:
    """Events of a DAT/RAW file, whole or in the half-open window ``[t_start, t_end)`` (µs).

    Returns:
        ``EVENT_DTYPE ndarray[N]`` sorted by ``t``.

    Raises:
        ValueError: ``t_end <= t_start``; see ``open_events`` for file errors.
    Warns:
        UserWarning: unsorted timestamps in a whole-file read (they are sorted), truncated last record.
    """
    if t_start is not None and t_end is not None and int(t_end) <= int(t_start):
        raise ValueError(f"{path}: empty time window [{t_start}, {t_end})")
    with open_events(path, height=height, width=width) as reader:
        if t_start is None and t_end is None:
            return reader.load_all()
        reader.seek_time(0 if t_start is None else int(t_start))
        if t_end is None:
            parts = []
            while not reader.done:
                parts.append(reader.load_n_events(1 << 22))
            return concatenate_events(parts) if parts else reader.load_n_events(0)
        return reader.load_delta_t(int(t_end) - reader.current_time)
