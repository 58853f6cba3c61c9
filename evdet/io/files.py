"""Only regular files are read as recordings, label files and label maps.

A FIFO, a device or a folder where evdet expects one of those is an error naming it and saying what it
is: reading a FIFO blocks until something writes to it, and a device such as ``/dev/zero`` never ends.
Listings of dataset folders include such entries when their names are those of recordings (so the error
is raised for them instead of skipping them silently).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["is_listed_file", "require_regular_file"]


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def require_regular_file(path: str | os.PathLike, what: str) -> Path:
    """``Path(path)`` after checking that it is a regular file (links followed).

    Args:
        what: what the file should be, for the messages (e.g. ``"label file"``).

    Raises:
        FileNotFoundError: ``"{what} not found: {path}"``.
        ValueError: it exists but is a FIFO, device, socket or folder (named).
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"{what} {path} is {_kind(mode)}, not a regular file: evdet reads recordings, "
                         f"labels and label maps only from regular files")
    return path


def is_listed_file(path: Path) -> bool:
    """Whether a folder listing should treat ``path`` as a file: anything that exists and is not a folder
    (FIFOs and devices included, so that reading them raises :func:`require_regular_file`'s error)."""
    return path.exists() and not path.is_dir()
