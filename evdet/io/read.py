"""Open any event file: format detection (content first: the HDF5 signature, the ``%`` header; then the
extension), ``open_events``, ``read_events``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evdet.io.dtypes import concatenate_events
from evdet.io.event_h5 import EventH5Reader, event_h5_layout, has_hdf5_signature, is_event_h5
from evdet.io.files import require_regular_file
from evdet.io.header import parse_header
from evdet.io.layout import H5_SUFFIXES, RAW_SUFFIXES

if TYPE_CHECKING:
    from evdet.io.dat import DatReader
    from evdet.io.raw import RawReader

EVENT_FILE_FORMATS = ("dat", "evt2", "evt21", "evt3", "hdf5")
"""What :func:`detect_format` returns: Prophesee DAT, RAW EVT 2.0 / 2.1 / 3.0, event HDF5 (RVT mirror,
DSEC)."""


def detect_format(path: str | os.PathLike) -> str:
    """``"dat"``, ``"evt2"``, ``"evt21"``, ``"evt3"`` or ``"hdf5"``.

    A file that starts with the HDF5 signature is ``"hdf5"`` when it holds ``events/{x, y, p, t}``
    (:mod:`evdet.io.event_h5`), whatever its name. Otherwise the header decides when it declares an EVT
    version (``% evt 3.0``, ``% format EVT3;...``); otherwise a ``.raw`` extension means RAW of unknown
    version (error) and anything else with a ``%`` header or a ``.dat`` extension is DAT.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a ``.raw`` file without EVT version, an unsupported version, an unknown extension
            without a header, or an HDF5 file without events, e.g. an evdet tensor file (names the file).
    """
    path = require_regular_file(path, "event file")
    if has_hdf5_signature(path):
        if event_h5_layout(path) is None:
            raise ValueError(f"{path}: HDF5 file without an 'events' group holding x, y, p, t datasets: "
                             f"not an event file (an evdet tensor file is read by evdet.data, not as "
                             f"events)")
        return "hdf5"
    header = parse_header(path)
    version = header.evt_version
    if version is not None:
        from evdet.io.raw import RAW_CODECS

        if version in RAW_CODECS:
            return RAW_CODECS[version].name
        raise ValueError(f"{path}: unsupported EVT version {version!r} (supported: {', '.join(RAW_CODECS)})")
    suffix = path.suffix.lower()
    if suffix == ".raw":
        raise ValueError(f"{path}: RAW file without '% evt' or '% format EVT' header line: cannot tell "
                         f"the EVT version")
    if suffix == ".dat" or header.lines:
        return "dat"
    raise ValueError(f"{path}: unknown event file type (extension {suffix!r}, no '%' header, not HDF5); "
                     f"expected .dat, .raw or an event .h5")


RAW_READER_OPTIONS = ("chunk_words", "time_mode")
"""Keyword options of :class:`evdet.io.RawReader` that :func:`open_events` forwards."""


def is_event_file(path: str | os.PathLike) -> bool:
    """True for a ``.dat`` / ``.raw`` file, or an ``.h5`` / ``.hdf5`` file holding events (RVT's mirror,
    DSEC); an evdet tensor file is not an event file. Decided by name, then content for HDF5."""
    name = Path(path).name.lower()
    return name.endswith(RAW_SUFFIXES) or (name.endswith(H5_SUFFIXES) and is_event_h5(path))


def open_events(path: str | os.PathLike, height: int | None = None, width: int | None = None,
                **options) -> DatReader | RawReader | EventH5Reader:
    """A reader for ``path`` (``DatReader`` for DAT, ``RawReader`` for EVT 2.0/2.1/3.0, ``EventH5Reader`` for
    event HDF5); see ``detect_format``.

    Args:
        height, width: sensor size, overriding the file's (see each reader).
        options: reader options, forwarded to RAW files' ``RawReader`` (``chunk_words``, ``time_mode``);
            other formats have none.

    Use as a context manager: ``with open_events(p) as r: ...``.

    Raises:
        ValueError: an option the file's reader does not take (names the file and the option), and the
            errors of :func:`detect_format` and of the reader.
    """
    fmt = detect_format(path)
    if options and fmt in ("dat", "hdf5"):
        raise ValueError(f"{path}: {fmt} files take no reader options, got {sorted(options)}")
    unknown = sorted(set(options) - set(RAW_READER_OPTIONS))
    if unknown:
        raise ValueError(f"{path}: unknown reader option(s) {unknown} (RAW files take "
                         f"{', '.join(RAW_READER_OPTIONS)})")
    if fmt == "hdf5":
        return EventH5Reader(path, height=height, width=width)
    if fmt == "dat":  # the DAT/RAW decoders import numba (~0.2 s): only when needed
        from evdet.io.dat import DatReader
        return DatReader(path, height=height, width=width)
    from evdet.io.raw import RawReader
    return RawReader(path, height=height, width=width, **options)


def read_events(path: str | os.PathLike, t_start: int | None = None, t_end: int | None = None,
                height: int | None = None, width: int | None = None, **options) -> np.ndarray:
    """Events of a DAT / RAW / event HDF5 file, whole or in the half-open window ``[t_start, t_end)`` (µs).

    Returns:
        ``EVENT_DTYPE ndarray[N]`` sorted by ``t``.

    Args:
        options: reader options (RAW files: ``chunk_words``, ``time_mode``), see :func:`open_events`.

    Raises:
        ValueError: ``t_end <= t_start``; see ``open_events`` for file errors.
    Warns:
        UserWarning: unsorted timestamps in a whole-file read (they are sorted), truncated last record.
    """
    if t_start is not None and t_end is not None and int(t_end) <= int(t_start):
        raise ValueError(f"{path}: empty time window [{t_start}, {t_end})")
    with open_events(path, height=height, width=width, **options) as reader:
        if t_start is None and t_end is None:
            return reader.load_all()
        reader.seek_time(0 if t_start is None else int(t_start))
        if t_end is None:
            parts = []
            while not reader.done:
                parts.append(reader.load_n_events(1 << 22))
            return concatenate_events(parts) if parts else reader.load_n_events(0)
        return reader.load_delta_t(int(t_end) - reader.current_time)
